"""The session's control thread with our fake robot and policies (fast rate, bounded waits)."""

import itertools
import math

import pytest

from robot_io.chunks.blending import BlendConfig
from robot_io.chunks.schedule import ChunkConfig
from runtime.control.commands import EStop, Mode, Pause, Release, ResetScene, RunPolicy, TakeOver, TeleopKeys
from runtime.control.session import SessionConfig
from tests.session_support import wait_until
from tests.fakes import ConstantPolicy, FailingPolicy, OffsetPolicy

from tests.runtime.conftest import FPS


def test_loop_publishes_snapshots_with_frames_and_timing(make_session):
    session, _ = make_session()
    snap = wait_until(lambda s: s.tick > 20, session)
    assert snap.mode is Mode.IDLE and snap.scene.startswith("seed 0")
    assert set(snap.frames) == {"head", "wrist"} and not snap.frames["head"].flags.writeable
    assert snap.loop.achieved_hz > FPS / 2
    assert snap.action_source == "hold"


def test_run_policy_moves_the_robot_within_the_step_clamp(make_session):
    session, robot = make_session(ConstantPolicy(target=0.5), max_step_per_tick=0.02)
    wait_until(lambda s: s.tick > 2, session)
    session.submit(RunPolicy("pick up the red block"))
    snap = wait_until(lambda s: s.state["joint_1.pos"] > 0.45, session)
    assert snap.mode is Mode.RUNNING and snap.instruction == "pick up the red block"
    steps = [b["joint_1.pos"] - a["joint_1.pos"] for a, b in zip(robot.sent, robot.sent[1:])]
    assert max(abs(s) for s in steps) <= 0.02 + 1e-9


def test_pause_holds_position(make_session):
    session, robot = make_session(ConstantPolicy(target=1.0, steps=200), max_step_per_tick=0.005)
    session.submit(RunPolicy("go"))
    wait_until(lambda s: s.state["joint_1.pos"] > 0.05, session)
    session.submit(Pause())
    held = wait_until(lambda s: s.mode is Mode.PAUSED, session)
    later = wait_until(lambda s: s.tick > held.tick + 10, session)
    assert later.state["joint_1.pos"] == pytest.approx(held.action["joint_1.pos"])
    assert later.action_source == "hold"


def test_takeover_starts_where_the_robot_is_and_keys_move_it(make_session):
    session, robot = make_session(ConstantPolicy(target=1.0, steps=200), max_step_per_tick=0.005)
    session.submit(RunPolicy("go"))
    wait_until(lambda s: s.state["joint_1.pos"] > 0.05, session)
    session.submit(TakeOver())
    taken = wait_until(lambda s: s.mode is Mode.TAKEOVER, session)
    idle = wait_until(lambda s: s.tick > taken.tick + 5, session)
    assert idle.action["joint_1.pos"] == pytest.approx(taken.action["joint_1.pos"])  # no jump, no drift
    session.submit(TeleopKeys(frozenset({"KeyW"})))
    moved = wait_until(lambda s: s.action_source == "operator", session)
    assert moved.action["joint_1.pos"] > taken.action["joint_1.pos"]
    # Keys the browser stops refreshing count as released: the robot holds again.
    stale = wait_until(lambda s: s.action_source == "hold" and s.tick > moved.tick + 30, session)
    assert stale.mode is Mode.TAKEOVER


def test_gripper_toggle_in_takeover(make_session):
    session, _ = make_session(max_step_overrides={"gripper.pos": 1.0})
    session.submit(TakeOver())
    wait_until(lambda s: s.mode is Mode.TAKEOVER, session)
    session.submit(TeleopKeys(frozenset(), toggle_gripper=True))
    wait_until(lambda s: s.action["gripper.pos"] == 1.0, session)


def test_keys_when_not_taken_over_are_ignored_with_a_hint(make_session):
    session, robot = make_session(takeover_on_input=False)
    first = wait_until(lambda s: s.tick > 2, session)
    session.submit(TeleopKeys(frozenset({"KeyW"})))
    snap = wait_until(lambda s: "Take over" in s.hint, session)
    assert snap.action == first.action


def test_release_discards_the_stale_chunk_and_reinfers(make_session):
    policy = ConstantPolicy(target=0.5)
    session, _ = make_session(policy)
    session.submit(RunPolicy("go"))
    wait_until(lambda s: s.action_source == "policy", session)
    session.submit(TakeOver())
    wait_until(lambda s: s.mode is Mode.TAKEOVER, session)
    calls = policy.calls
    session.submit(Release())
    wait_until(lambda s: s.mode is Mode.RUNNING and s.action_source == "policy", session)
    assert policy.calls > calls


def test_nan_chunk_never_reaches_the_robot(make_session):
    session, robot = make_session(ConstantPolicy(fill=math.nan))
    session.submit(RunPolicy("go"))
    snap = wait_until(lambda s: s.mode is Mode.PAUSED, session)
    assert "NaN" in snap.last_error
    assert all(math.isfinite(v) for sent in robot.sent for v in sent.values())


def test_policy_error_pauses_with_its_message(make_session):
    session, _ = make_session(FailingPolicy())
    session.submit(RunPolicy("pick up the purple block"))
    snap = wait_until(lambda s: s.mode is Mode.PAUSED, session)
    assert "no colour named" in snap.last_error


def test_estop_holds_and_refuses_run_until_reset(make_session):
    session, robot = make_session(ConstantPolicy(target=1.0, steps=200), max_step_per_tick=0.005)
    session.submit(RunPolicy("go"))
    wait_until(lambda s: s.action_source == "policy", session)
    session.submit(EStop())
    stopped = wait_until(lambda s: s.mode is Mode.ESTOP, session)
    session.submit(RunPolicy("go again"))
    refused = wait_until(lambda s: "reset the scene first" in s.last_error, session)
    assert refused.mode is Mode.ESTOP
    assert refused.action["joint_1.pos"] == pytest.approx(stopped.action["joint_1.pos"])
    session.submit(ResetScene(seed=3))
    reset = wait_until(lambda s: s.mode is Mode.IDLE and s.scene.startswith("seed 3"), session)
    assert reset.state["joint_1.pos"] == 0.0


def test_bad_instruction_is_refused_before_queueing(make_session):
    session, _ = make_session()
    with pytest.raises(ValueError, match="empty"):
        session.submit(RunPolicy("   "))
    with pytest.raises(ValueError, match="limit"):
        session.submit(RunPolicy("x" * 500))


def test_policy_observes_every_tick_in_order(make_session):
    policy = ConstantPolicy()
    session, _ = make_session(policy)
    session.submit(RunPolicy("go"))
    wait_until(lambda s: s.tick > 40, session)
    seen = list(policy.observed_frames)
    assert len(seen) >= 30
    assert all(b == (a + 1) % 256 for a, b in zip(seen, seen[1:])), seen  # no tick skipped or repeated


OFFSET = 0.3  # how far consecutive OffsetPolicy chunks disagree about joint 1
BLENDED_SWITCHES = 4  # chunk switches with an overlap to look at


def blended_seams(snap):
    return [seam for seam in snap.seams.history if seam.overlap > 0]


def joint_1_steps(robot):
    return [abs(b["joint_1.pos"] - a["joint_1.pos"]) for a, b in itertools.pairwise(robot.sent)]


def test_blending_makes_the_executed_seam_smaller_than_the_raw_one(make_session):
    # A step clamp wider than the offset, so any smoothing seen here is the blend's, not safety's.
    session, robot = make_session(OffsetPolicy(high=OFFSET), max_step_per_tick=1.0, chunks=ChunkConfig(blend=BlendConfig(mode="linear")))
    session.submit(RunPolicy("go"))
    snap = wait_until(lambda s: len(blended_seams(s)) >= BLENDED_SWITCHES, session)
    seams = blended_seams(snap)
    assert snap.seams.last == snap.seams.history[-1]
    assert all(seam.blended < seam.raw for seam in seams), seams
    assert max(seam.raw for seam in seams) == pytest.approx(OFFSET)
    assert max(seam.blended for seam in seams) < OFFSET / 2
    assert max(joint_1_steps(robot)) < OFFSET / 2  # what the robot was sent, not only the measure


def test_blend_none_switches_at_once(make_session):
    session, robot = make_session(OffsetPolicy(high=OFFSET), max_step_per_tick=1.0, chunks=ChunkConfig(blend=BlendConfig(mode="none")))
    session.submit(RunPolicy("go"))
    snap = wait_until(lambda s: len(blended_seams(s)) >= BLENDED_SWITCHES, session)
    assert all(seam.blended == seam.raw for seam in snap.seams.history)
    assert max(joint_1_steps(robot)) == pytest.approx(OFFSET)


def test_safety_still_applies_after_blending(make_session):
    # Chunks reach for 1.5 (beyond joint 1's limit of 1.0) in steps wider than the step clamp,
    # and the fourth chunk is NaN: the blended commands are clamped, then the NaN holds.
    max_step = 0.05
    session, robot = make_session(
        OffsetPolicy(high=1.5, nan_from_call=4), max_step_per_tick=max_step, chunks=ChunkConfig(blend=BlendConfig(mode="exponential"))
    )
    session.submit(RunPolicy("go"))
    paused = wait_until(lambda s: s.mode is Mode.PAUSED, session)
    assert "NaN" in paused.last_error
    later = wait_until(lambda s: s.tick > paused.tick + 5, session)
    assert later.action_source == "hold" and later.action == paused.action
    assert len(blended_seams(paused)) >= 1  # blending did take place before the failure
    sent = [v for command in robot.sent for v in command.values()]
    assert all(math.isfinite(v) for v in sent)
    assert max(command["joint_1.pos"] for command in robot.sent) <= 1.0
    assert max(joint_1_steps(robot)) == pytest.approx(max_step)  # the step clamp was active


def test_chunk_config_is_validated_on_the_session_config():
    with pytest.raises(TypeError, match="chunks must be a ChunkConfig"):
        SessionConfig(chunks=BlendConfig("linear"))


def test_snapshot_carries_the_running_chunk_the_one_before_and_the_queue_depth(make_session):
    session, _ = make_session(ConstantPolicy(target=0.5, steps=50), chunks=ChunkConfig(4))
    session.submit(RunPolicy("go"))
    first = wait_until(lambda s: s.chunk is not None, session)
    # actions[0] was for the observation's own tick, already sent: the chunk runs the other 49
    assert first.chunk.actions.shape == (49, len(session.action_keys)) and not first.chunk.actions.flags.writeable
    assert first.queue_depth == 49 - first.chunk.step_for(first.tick) - 1
    later = wait_until(lambda s: s.chunk is not None and s.chunk.chunk_id > first.chunk.chunk_id, session)
    assert later.previous_chunk is not None and later.previous_chunk.chunk_id < later.chunk.chunk_id
    session.submit(Pause())
    held = wait_until(lambda s: s.mode is Mode.PAUSED, session)
    assert held.chunk is None and held.previous_chunk is None and held.queue_depth == 0
