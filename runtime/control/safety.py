"""Safety applied to every command before it reaches the robot.

Order: a missing, NaN or infinite value makes the whole command a hold (a partial command is
never trusted); then each joint is clamped to its limits, then its change from the previous
command is clamped to `max_step` so no source can make the arm jump; then, for robots with forward
kinematics, a command whose end effector would leave the workspace box is held.

Also here: which cameras are stale (no fresh frame within a limit), for the session's lockout.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from robot_io.devices.robot import HasJointLimits, HasStepLimits, Robot

XYZ = 3
UNBOUNDED = (-1e9, 1e9)  # limits for joints a robot does not bound itself
# A command may move an end effector that is already outside the box (a robot started there) only
# if it does not go further out; this slack absorbs floating-point noise in forward kinematics.
WORKSPACE_SLACK_M = 1e-6

EndEffector = Callable[[Mapping[str, float]], np.ndarray]  # action -> (3,) world position of the end effector


@dataclass(frozen=True)
class WorkspaceBox:
    """An axis-aligned box in world metres the end effector must stay in."""

    low: tuple[float, float, float]
    high: tuple[float, float, float]

    def __post_init__(self) -> None:
        if len(self.low) != XYZ or len(self.high) != XYZ:
            raise ValueError(f"a workspace box needs (x, y, z) corners, got low={self.low}, high={self.high}")
        if not all(math.isfinite(v) for v in (*self.low, *self.high)) or not all(lo < hi for lo, hi in zip(self.low, self.high)):
            raise ValueError(f"a workspace box needs finite corners with low < high on every axis, got low={self.low}, high={self.high}")

    @classmethod
    def parse(cls, text: str) -> WorkspaceBox:
        """"x0,y0,z0,x1,y1,z1" (metres) -> the box between those corners."""
        try:
            values = [float(part) for part in text.split(",")]
        except ValueError:
            values = []
        if len(values) != 2 * XYZ:
            raise ValueError(f"a workspace box is six numbers x0,y0,z0,x1,y1,z1 in metres, got {text!r}")
        return cls(tuple(values[:XYZ]), tuple(values[XYZ:]))

    def distance(self, point: np.ndarray) -> float:
        """Metres from `point` (3,) to the box; 0 inside."""
        outside = np.maximum(np.asarray(self.low) - point, 0.0) + np.maximum(point - np.asarray(self.high), 0.0)  # (3,)
        return float(np.linalg.norm(outside))


@dataclass(frozen=True)
class SafetyLimits:
    joint_limits: dict[str, tuple[float, float]]  # key -> (low, high)
    max_step: dict[str, float]  # key -> largest change per control tick
    workspace: WorkspaceBox | None = None  # enforced only with an end_effector function (make_safe)

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



def limits_for(robot: Robot, max_step_per_tick: float, max_step_overrides: Mapping[str, float],
               workspace: WorkspaceBox | None) -> SafetyLimits:
    """The robot's own joint limits and step per tick where it names them; elsewhere unbounded
    joints and `max_step_per_tick`; `max_step_overrides` (action key -> step) over both."""
    keys = list(robot.action_features)
    limits = robot.joint_limits if isinstance(robot, HasJointLimits) else {}
    steps = robot.max_step if isinstance(robot, HasStepLimits) else {}
    return SafetyLimits(
        joint_limits={k: tuple(limits.get(k, UNBOUNDED)) for k in keys},
        max_step={k: max_step_overrides.get(k, steps.get(k, max_step_per_tick)) for k in keys},
        workspace=workspace,
    )

def make_safe(proposed: dict[str, float] | None, previous: dict[str, float], limits: SafetyLimits,
              end_effector: EndEffector | None = None) -> SafeCommand:
    """Turn a proposed command into one the robot may execute, relative to the previous command.
    `end_effector` (forward kinematics) enables the workspace box."""
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
    if limits.workspace is not None and end_effector is not None:
        point = end_effector(action)
        out = limits.workspace.distance(point)
        if out > 0 and out > limits.workspace.distance(end_effector(previous)) + WORKSPACE_SLACK_M:
            where = ", ".join(f"{v:.3f}" for v in point)
            return SafeCommand(dict(previous), held=True, clamped=(), reason=f"end effector would leave the workspace box, at ({where}) m")
    return SafeCommand(action, held=False, clamped=tuple(clamped))


def stale_cameras(frame_ages_ms: Mapping[str, float | None], limit_ms: float) -> dict[str, float | None]:
    """Cameras whose latest frame is older than `limit_ms` (or that have none yet) -> its age."""
    return {camera: age for camera, age in frame_ages_ms.items() if age is None or age > limit_ms}
