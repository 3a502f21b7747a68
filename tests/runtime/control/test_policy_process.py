"""A policy in its own process: frames through shared memory, failures held, restarted by Run."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from runtime.control import policy_process
from runtime.control.commands import Mode, RunPolicy
from runtime.control.policy_process import PolicyProcess, PolicyProcessConfig, PolicyProcessError
from runtime.control.session import Session, SessionConfig
from tests.fakes import CAMERAS, FRAME_SHAPE, JOINTS, DeferredForesightPolicy, FakeRobot, ForesightPolicy
from tests.session_support import wait_until

SHAPES = {camera: FRAME_SHAPE for camera in CAMERAS}
HANG = "hang"  # the instruction HangingPolicy never answers
FAST = PolicyProcessConfig(hang_timeout_s=2.0, start_timeout_s=60.0)


class HangingPolicy(ForesightPolicy):
    def infer(self, observation, instruction):
        if instruction == HANG:
            time.sleep(60)
        return super().infer(observation, instruction)


def broken_policy():
    raise ValueError("no such checkpoint")


def observation(tick: int) -> dict:
    return {key: 0.1 * i for i, key in enumerate(JOINTS)} | {
        camera: np.full(FRAME_SHAPE, tick % 256, np.uint8) for camera in CAMERAS}


@pytest.fixture
def process():
    made = []

    def make(factory=ForesightPolicy, config=FAST):
        made.append(PolicyProcess(factory, SHAPES, config))
        return made[-1]

    yield make
    for p in made:
        p.close()


def test_the_child_sees_every_frame_and_answers_as_the_policy_does(process):
    remote, local = process(), ForesightPolicy()
    assert remote.foresight_horizon == local.foresight_horizon == 15  # capabilities come from the child's policy
    for tick in range(20):
        remote.observe(observation(tick))
    out = remote.infer(observation(20), "go")
    expected = local.infer(observation(20), "go")
    np.testing.assert_array_equal(out.actions, expected.actions)
    # ForesightPolicy draws frame t + 15 from the frame it saw: the shared-memory frame arrived intact
    assert {c: int(p[0, 0, 0]) for c, p in out.foresight.items()} == {c: 35 for c in CAMERAS}


def test_pictures_deferred_in_the_child_are_decoded_there_on_request(process):
    remote = process(DeferredForesightPolicy)
    remote.observe(observation(5))
    out = remote.infer(observation(5), "go")
    assert out.pictures_pending and out.foresight is None
    decoded = remote.decode_foresight(out)
    assert not decoded.pictures_pending and {int(p[0, 0, 0]) for p in decoded.foresight.values()} == {20}
    np.testing.assert_array_equal(decoded.actions, out.actions)


def test_an_observation_seen_before_a_reset_can_still_be_inferred_on(process):
    remote = process()
    first = observation(7)
    remote.observe(first)  # the runner observes the new scene's first frame, then resets, then infers on it
    remote.reset()
    out = remote.infer(first, "go")
    assert {int(p[0, 0, 0]) for p in out.foresight.values()} == {7 + 15}


def test_a_killed_child_fails_once_then_the_next_inference_restarts_it(process):
    remote = process()
    remote.observe(observation(0))
    os.kill(remote.pid, signal.SIGKILL)
    time.sleep(0.2)
    with pytest.raises(PolicyProcessError, match="Run starts it again"):
        remote.infer(observation(1), "go")
    remote.observe(observation(2))  # held: dropped quietly until the next inference
    assert remote.infer(observation(3), "go").actions.shape[1] == len(JOINTS)  # a fresh child


def test_a_hung_child_is_killed_after_the_timeout(process):
    remote = process(HangingPolicy)
    started = time.monotonic()
    with pytest.raises(PolicyProcessError, match="did not answer within 2 s"):
        remote.infer(observation(0), HANG)
    assert time.monotonic() - started < 10


def test_a_policy_that_cannot_be_built_is_named_at_start():
    with pytest.raises(PolicyProcessError, match="could not build its policy: ValueError"):
        PolicyProcess(broken_policy, SHAPES, FAST)


def test_shared_memory_that_is_too_small_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setattr(policy_process, "_shm_free_bytes", lambda: 1024)
    with pytest.raises(PolicyProcessError, match=r"enlarge it \(docker run --shm-size"):
        PolicyProcess(ForesightPolicy, SHAPES, FAST)


def test_the_session_holds_when_the_process_dies_and_run_restarts_it():
    remote = PolicyProcess(ForesightPolicy, SHAPES, FAST)
    session = Session(FakeRobot(), remote, SessionConfig(fps=30, realtime_priority=0))
    session.start()
    try:
        session.submit(RunPolicy("go"))
        wait_until(lambda s: s.mode is Mode.RUNNING and s.chunk is not None, session)
        os.kill(remote.pid, signal.SIGKILL)
        killed_at = session.snapshot().tick  # read at the kill: on a loaded machine ticks pass while the test polls
        held = wait_until(lambda s: s.mode is not Mode.RUNNING, session)
        assert "policy process" in held.last_error and held.action_source == "hold"
        # the next tick's observation finds it gone; the tick after that holds
        assert held.tick <= killed_at + 3
        session.submit(RunPolicy("go"))
        before = held.chunk_id or 0
        wait_until(lambda s: s.mode is Mode.RUNNING and (s.chunk_id or 0) > before, session, timeout_s=60)
    finally:
        session.close()
    assert remote.pid is None  # the session closed its policy
