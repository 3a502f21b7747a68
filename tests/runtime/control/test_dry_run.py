"""Dry runs through the session: a plan and foresight for an instruction while the robot holds."""

import time

import pytest

from runtime.control.commands import DiscardDryRuns, DryRun, Mode, Pause, RunPolicy
from runtime.control.dry_run import DryRunBoard, Preview
from tests.fakes import FailingPolicy, ForesightPolicy
from tests.session_support import wait_until

TIMEOUT_S = 10.0


@pytest.fixture
def start(make_session):
    """A running session (ticking) whose default policy predicts frames, as a world model does."""

    def start_session(policy=None):
        session, robot = make_session(policy or ForesightPolicy(target=0.5, steps=50))
        wait_until(lambda s: s.tick > 2, session)
        return session, robot

    return start_session


def wait_for_previews(session, count: int) -> tuple[Preview, ...]:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        _, pending, previews = session.dry_runs.state()
        if len(previews) >= count and pending is None:
            return previews
        time.sleep(0.01)
    raise AssertionError(f"fewer than {count} previews: {session.dry_runs.state()}")


def test_a_dry_run_plans_and_foresees_without_moving_the_robot(start):
    session, robot = start()
    session.submit(DryRun("pick up the red block"))
    (preview,) = wait_for_previews(session, 1)
    assert preview.instruction == "pick up the red block" and preview.error == ""
    assert preview.actions.shape == (50, 3) and not preview.actions.flags.writeable
    assert preview.actions[-1, 0] == pytest.approx(0.5)  # the plan walks joint 1 to the target
    assert set(preview.foresight) == {"head", "wrist"} and set(preview.frames) == {"head", "wrist"}
    assert int(preview.frames["head"][0, 0, 0]) == preview.obs_tick % 256  # the frame it was computed from
    later = wait_until(lambda s: s.tick > preview.obs_tick + 10, session)
    assert later.mode is Mode.IDLE and later.action_source == "hold"
    assert all(sent["joint_1.pos"] == 0.0 for sent in robot.sent)  # nothing moved


def test_two_instructions_side_by_side_the_next_replaces_the_newest(start):
    session, _ = start()
    for instruction in ("red", "green"):
        session.submit(DryRun(instruction))
        wait_for_previews(session, 1 if instruction == "red" else 2)
    session.submit(DryRun("blue"))
    deadline = time.monotonic() + TIMEOUT_S
    while [p.instruction for p in session.dry_runs.state()[2]] != ["red", "blue"]:
        assert time.monotonic() < deadline, session.dry_runs.state()
        time.sleep(0.01)
    session.submit(DiscardDryRuns())
    deadline = time.monotonic() + TIMEOUT_S
    while session.dry_runs.state()[2]:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_running_clears_previews_and_dry_runs_are_refused_while_moving(start):
    session, _ = start()
    session.submit(DryRun("red"))
    wait_for_previews(session, 1)
    session.submit(RunPolicy("red"))
    wait_until(lambda s: s.mode is Mode.RUNNING, session)
    assert session.dry_runs.state()[2] == ()
    session.submit(DryRun("green"))
    refused = wait_until(lambda s: "Dry runs need a robot that holds still" in s.last_error, session)
    assert refused.mode is Mode.RUNNING and session.dry_runs.state()[1:] == (None, ())
    session.submit(Pause())  # paused: dry runs work again
    wait_until(lambda s: s.mode is Mode.PAUSED, session)
    session.submit(DryRun("green"))
    assert wait_for_previews(session, 1)[0].instruction == "green"


def test_a_failing_policy_gives_a_preview_with_the_error(start):
    session, _ = start(FailingPolicy())
    session.submit(DryRun("red"))
    (preview,) = wait_for_previews(session, 1)
    assert preview.actions is None and "no colour named" in preview.error
    assert session.snapshot().mode is Mode.IDLE


def test_an_empty_instruction_is_refused_before_queueing(start):
    session, _ = start()
    with pytest.raises(ValueError, match="empty"):
        session.submit(DryRun("   "))


def test_board_keeps_the_first_and_replaces_the_newest():
    board = DryRunBoard(max_previews=2)
    for name in ("a", "b", "c"):
        board.add(Preview(board.next_id(), name, 0, None, {}, {}, 0.0))
    version, pending, previews = board.state()
    assert [p.instruction for p in previews] == ["a", "c"] and pending is None and version == 3
    assert board.get(previews[1].preview_id).instruction == "c" and board.get(999) is None
    with pytest.raises(ValueError):
        DryRunBoard(max_previews=0)
