"""The Robot interface: LeRobot's shape, so a `lerobot.robots.Robot` fits without a wrapper."""

from __future__ import annotations

import abc
from typing import Any, Protocol, runtime_checkable

import numpy as np


class Robot(abc.ABC):
    """A robot the control loop can drive.

    `observation_features` maps each key of `get_observation()` to `float` (one scalar, e.g.
    "joint_1.pos") or to an image shape `(height, width, 3)` (a camera, uint8 RGB).
    `action_features` maps each key `send_action()` takes to `float`.
    """

    name: str = "robot"

    @property
    @abc.abstractmethod
    def observation_features(self) -> dict[str, type | tuple[int, ...]]: ...

    @property
    @abc.abstractmethod
    def action_features(self) -> dict[str, type]: ...

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @abc.abstractmethod
    def connect(self, calibrate: bool = True) -> None: ...

    @abc.abstractmethod
    def get_observation(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def send_action(self, action: dict[str, float]) -> dict[str, float]:
        """Command the robot; returns the action actually sent (after the robot's own limits)."""

    @abc.abstractmethod
    def disconnect(self) -> None: ...


def state_keys(robot: Robot) -> list[str]:
    """Scalar observation keys in declaration order: the robot's state vector."""
    return [k for k, v in robot.observation_features.items() if v is float]


def camera_keys(robot: Robot) -> list[str]:
    """Image observation keys in declaration order."""
    return [k for k, v in robot.observation_features.items() if isinstance(v, tuple)]


@runtime_checkable
class CartesianControl(Protocol):
    """A robot that can turn an end-effector delta into joint commands (keyboard teleop needs it)."""

    def ee_delta_action(self, delta: np.ndarray, gripper: float | None) -> dict[str, float]:
        """delta = (dx, dy, dz, droll, dpitch, dyaw) in metres / radians from the current pose;
        gripper in [0, 1] (0 open, 1 closed) or None to keep it."""
        ...


@runtime_checkable
class ResettableScene(Protocol):
    """A robot whose world can be reset to a seeded episode (the simulation)."""

    def reset_scene(self, seed: int | None) -> Any:
        """Returns the episode spec; it has at least `.seed` and `.instruction`."""
        ...

    def is_success(self) -> bool: ...


@runtime_checkable
class HasJointLimits(Protocol):
    @property
    def joint_limits(self) -> dict[str, tuple[float, float]]: ...
