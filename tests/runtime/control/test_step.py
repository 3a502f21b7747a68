import numpy as np
import pytest

from robot_io.datasets.schema import SOURCE_HOLD, SOURCE_OPERATOR, SOURCE_POLICY
from runtime.control.commands import (
    EStop, Mode, Pause, PolicyFailed, Release, ResetScene, ReturnHome, RunPolicy, StartRecording, TakeOver,
    validate_instruction,
)
from runtime.control.step import choose_command, next_mode

KEYS = ["a", "b"]


def test_policy_drives_only_when_running():
    queued = np.array([0.1, 0.2])
    assert choose_command(Mode.RUNNING, queued, None, KEYS) == ({"a": pytest.approx(0.1), "b": pytest.approx(0.2)}, SOURCE_POLICY)
    for mode in (Mode.IDLE, Mode.PAUSED, Mode.ESTOP):
        assert choose_command(mode, queued, {"a": 1.0, "b": 1.0}, KEYS) == (None, SOURCE_HOLD)


def test_operator_drives_when_taken_over_and_policy_is_ignored():
    operator = {"a": 0.3, "b": 0.4}
    assert choose_command(Mode.TAKEOVER, np.array([9.0, 9.0]), operator, KEYS) == (operator, SOURCE_OPERATOR)
    assert choose_command(Mode.TAKEOVER, None, None, KEYS) == (None, SOURCE_HOLD)


def test_running_without_a_chunk_holds():
    assert choose_command(Mode.RUNNING, None, None, KEYS) == (None, SOURCE_HOLD)


def test_estop_latches_until_reset():
    assert next_mode(Mode.RUNNING, EStop(), True).mode is Mode.ESTOP
    for command in (RunPolicy("go"), TakeOver(), Release(), Pause()):
        t = next_mode(Mode.ESTOP, command, True)
        assert t.refused and t.mode is Mode.ESTOP
    assert next_mode(Mode.ESTOP, ResetScene(), True).mode is Mode.IDLE


def test_takeover_and_release():
    assert next_mode(Mode.RUNNING, TakeOver(), True).mode is Mode.TAKEOVER
    assert next_mode(Mode.TAKEOVER, Release(), True).mode is Mode.RUNNING
    assert next_mode(Mode.TAKEOVER, Release(), False).mode is Mode.IDLE
    assert next_mode(Mode.IDLE, Release(), True).refused


def test_pause_and_policy_failure():
    assert next_mode(Mode.RUNNING, Pause(), True).mode is Mode.PAUSED
    assert next_mode(Mode.IDLE, Pause(), True).refused
    failed = next_mode(Mode.RUNNING, PolicyFailed("boom"), True)
    assert failed.mode is Mode.PAUSED and "boom" in failed.message
    assert next_mode(Mode.TAKEOVER, PolicyFailed("late"), True).mode is Mode.TAKEOVER


def test_recording_commands_keep_the_mode():
    assert next_mode(Mode.TAKEOVER, StartRecording(), True).mode is Mode.TAKEOVER


def test_instruction_validation():
    assert validate_instruction("  pick up   the red block ", 100) == "pick up the red block"
    with pytest.raises(ValueError, match="empty"):
        validate_instruction("   ", 100)
    with pytest.raises(ValueError, match="limit is 10"):
        validate_instruction("x" * 11, 10)


def test_returning_home_commands_the_home_pose_and_yields_to_any_mode_command():
    home = {"a": 0.0, "b": 1.0}
    assert choose_command(Mode.HOMING, np.array([9.0, 9.0]), {"a": 5.0, "b": 5.0}, KEYS, home) == (home, SOURCE_OPERATOR)
    assert choose_command(Mode.HOMING, None, None, KEYS, None) == (None, SOURCE_HOLD)  # no home known yet: hold
    for mode in (Mode.IDLE, Mode.PAUSED, Mode.RUNNING, Mode.TAKEOVER):
        assert next_mode(mode, ReturnHome(), True).mode is Mode.HOMING
    assert next_mode(Mode.ESTOP, ReturnHome(), True).refused
    assert next_mode(Mode.HOMING, Pause(), True).mode is Mode.IDLE
    assert next_mode(Mode.HOMING, RunPolicy("go"), True).mode is Mode.RUNNING
    assert next_mode(Mode.HOMING, TakeOver(), True).mode is Mode.TAKEOVER
    assert next_mode(Mode.HOMING, EStop(), True).mode is Mode.ESTOP
