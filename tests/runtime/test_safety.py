import math

import pytest

from runtime.safety import SafetyLimits, make_safe

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
