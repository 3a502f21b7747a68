"""PolicyRunner: a policy that defers its foresight decoder gets its chunk into the schedule first."""

from __future__ import annotations

import threading

import numpy as np

from robot_io.chunks.schedule import ChunkSchedule
from runtime.control.policy_runner import PolicyRunner
from tests.fakes import DeferredForesightPolicy, JOINTS
from tests.runtime.control.test_policy_process import observation


def run_one_inference(policy, schedule):
    lock, failures, results = threading.Lock(), [], []
    runner = PolicyRunner(policy, schedule, lock, len(JOINTS), failures.append, on_result=results.append)
    try:
        runner.activate("go")
        runner.observe(observation(3))
        runner.request(3, observation(3))
        assert runner.wait_until_idle(10)
    finally:
        runner.close()
    return failures, results


def test_the_chunk_is_scheduled_before_the_pictures_are_decoded():
    schedule, seen_at_decode = ChunkSchedule(), []

    def on_decode():  # what the loop could pop while the decoder runs
        command, chunk = schedule.pop(4)
        seen_at_decode.append((command is not None, chunk is not None))

    failures, results = run_one_inference(DeferredForesightPolicy(on_decode=on_decode), schedule)
    assert failures == [] and seen_at_decode == [(True, True)]
    (result,) = results
    assert not result.output.pictures_pending and set(result.output.foresight) == set(result.output.foresight_latents)
    assert {int(p[0, 0, 0]) for p in result.output.foresight.values()} == {3 + 15}  # decoded from frame 3's latents
    assert "decode" in result.output.timings_ms


def test_a_decoder_that_fails_holds_the_robot_with_the_reason():
    failures, results = run_one_inference(DeferredForesightPolicy(fail_decode=True), ChunkSchedule())
    assert results == [] and len(failures) == 1
    assert "while decoding foresight" in failures[0] and "decoder out of memory" in failures[0]


def test_a_deferred_chunk_runs_the_same_commands():
    schedule = ChunkSchedule()
    failures, _ = run_one_inference(DeferredForesightPolicy(), schedule)
    command, _ = schedule.pop(4)
    assert failures == [] and np.isfinite(command).all()
