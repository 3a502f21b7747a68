"""Safety applied to every command before it reaches the robot.

Order: a missing, NaN or infinite value makes the whole command a hold (a partial command is
never trusted); then each joint is clamped to its limits, then its change from the previous
command is clamped to `max_step` so no source can make the arm jump.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SafetyLimits:
    joint_limits: dict[str, tuple[float, float]]  # key -> (low, high)
    max_step: dict[str, float]  # key -> largest change per control tick

    def __post_init__(self) -> None:
        missing = sorted(set(self.joint_limits) ^ set(self.max_step))
        if missing:
            raise ValueError(f"joint_limits and max_step must name the same joints; mismatched: {missing}")
        for key, (low, high) in self.joint_limits.items():
            if not low < high:
                raise ValueError(f"joint limit for {key!r} must have low < high, got ({low}, {high})")
        for key, step in self.max_step.items():
            if not step > 0:
                raise ValueError(f"max_step for {key!r} must be > 0, got {step}")


@dataclass(frozen=True)
class SafeCommand:
    action: dict[str, float]
    held: bool  # the proposed command was rejected and the previous one repeated
    clamped: tuple[str, ...]  # joints whose value was changed by a limit or the step clamp
    reason: str = ""  # why it was held, for the status bar


def make_safe(proposed: dict[str, float] | None, previous: dict[str, float], limits: SafetyLimits) -> SafeCommand:
    """Turn a proposed command into one the robot may execute, relative to the previous command."""
    if proposed is None:
        return SafeCommand(dict(previous), held=True, clamped=(), reason="no action")
    missing = [k for k in limits.joint_limits if k not in proposed]
    if missing:
        return SafeCommand(dict(previous), held=True, clamped=(), reason=f"missing {missing}")
    bad = [k for k in limits.joint_limits if not math.isfinite(float(proposed[k]))]
    if bad:
        return SafeCommand(dict(previous), held=True, clamped=(), reason=f"non-finite {bad}")

    action: dict[str, float] = {}
    clamped: list[str] = []
    for key, (low, high) in limits.joint_limits.items():
        value = min(max(float(proposed[key]), low), high)
        step = limits.max_step[key]
        value = min(max(value, previous[key] - step), previous[key] + step)
        if value != float(proposed[key]):
            clamped.append(key)
        action[key] = value
    return SafeCommand(action, held=False, clamped=tuple(clamped))
