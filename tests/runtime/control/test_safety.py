import math

import numpy as np
import pytest

from runtime.control.safety import SafetyLimits, WorkspaceBox, make_safe, stale_cameras

LIMITS = SafetyLimits(
    joint_limits={"a": (-1.0, 1.0), "g": (0.0, 1.0)},
    max_step={"a": 0.1, "g": 0.5},
)
PREVIOUS = {"a": 0.0, "g": 0.0}


def test_small_command_passes_unchanged():
    safe = make_safe({"a": 0.05, "g": 0.2}, PREVIOUS, LIMITS)
    assert safe.action == {"a": 0.05, "g": 0.2}
    assert not safe.held and safe.clamped == ()


def test_step_is_clamped_per_joint():
    safe = make_safe({"a": 0.9, "g": 1.0}, PREVIOUS, LIMITS)
    assert safe.action == {"a": 0.1, "g": 0.5}
    assert set(safe.clamped) == {"a", "g"}


def test_joint_limits_clamp_before_step():
    safe = make_safe({"a": -5.0, "g": -1.0}, {"a": -0.95, "g": 0.0}, LIMITS)
    assert safe.action == {"a": -1.0, "g": 0.0}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_value_holds_the_previous_command(bad):
    safe = make_safe({"a": bad, "g": 0.2}, {"a": 0.3, "g": 0.1}, LIMITS)
    assert safe.held and safe.action == {"a": 0.3, "g": 0.1}
    assert "non-finite" in safe.reason


def test_missing_action_or_key_holds():
    assert make_safe(None, PREVIOUS, LIMITS).held
    partial = make_safe({"a": 0.05}, PREVIOUS, LIMITS)
    assert partial.held and "g" in partial.reason


def test_limits_are_validated():
    with pytest.raises(ValueError, match="low < high"):
        SafetyLimits({"a": (1.0, -1.0)}, {"a": 0.1})
    with pytest.raises(ValueError, match="same joints"):
        SafetyLimits({"a": (-1.0, 1.0)}, {"b": 0.1})


BOX = WorkspaceBox((-1.0, -1.0, 0.0), (1.0, 1.0, 1.0))
BOXED = SafetyLimits({"x": (-5.0, 5.0), "z": (-5.0, 5.0)}, {"x": 1.0, "z": 1.0}, BOX)


def end_effector(joints):
    """A toy arm whose end effector sits at (x, 0, z)."""
    return np.array([joints["x"], 0.0, joints["z"]])


def test_a_command_leaving_the_workspace_box_is_held_with_where():
    inside = make_safe({"x": 0.5, "z": 0.5}, {"x": 0.0, "z": 0.5}, BOXED, end_effector)
    assert not inside.held and inside.action == {"x": 0.5, "z": 0.5}
    below = make_safe({"x": 0.0, "z": -0.2}, {"x": 0.0, "z": 0.1}, BOXED, end_effector)
    assert below.held and below.action == {"x": 0.0, "z": 0.1} and "workspace box" in below.reason and "-0.200" in below.reason


def test_outside_the_box_a_command_may_come_back_but_not_go_further():
    outside = {"x": 1.5, "z": 0.5}  # a robot started outside
    assert not make_safe({"x": 1.2, "z": 0.5}, outside, BOXED, end_effector).held
    assert make_safe({"x": 1.8, "z": 0.5}, outside, BOXED, end_effector).held


def test_without_forward_kinematics_the_box_is_not_applied():
    assert not make_safe({"x": 0.0, "z": -0.5}, {"x": 0.0, "z": 0.0}, BOXED).held


def test_workspace_boxes_parse_and_are_checked():
    assert WorkspaceBox.parse("-0.1,-0.5,0.02,0.6,0.5,0.6") == WorkspaceBox((-0.1, -0.5, 0.02), (0.6, 0.5, 0.6))
    for bad in ("1,2,3", "a,b,c,d,e,f", "0,0,0,0,1,1"):
        with pytest.raises(ValueError, match="workspace box"):
            WorkspaceBox.parse(bad)


def test_stale_cameras_are_the_old_and_the_frameless():
    assert stale_cameras({"head": 20.0, "wrist": 300.0, "side": None}, 250.0) == {"wrist": 300.0, "side": None}
    assert stale_cameras({"head": 20.0}, 250.0) == {}
