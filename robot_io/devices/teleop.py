"""The Teleoperator interface: LeRobot's method names (connect / get_action / disconnect)."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from robot_io.datasets.schema import SEGMENT_CORRECTION


class Teleoperator(abc.ABC):
    """An operator input device. `get_action()` returns values for `action_features` keys."""

    name: str = "teleop"

    @property
    @abc.abstractmethod
    def action_features(self) -> dict[str, type]: ...

    @property
    def feedback_features(self) -> dict[str, type]:
        return {}

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @abc.abstractmethod
    def connect(self, calibrate: bool = True) -> None: ...

    @abc.abstractmethod
    def get_action(self) -> dict[str, float]: ...

    def send_feedback(self, feedback: dict[str, float]) -> None:
        return None

    def intervention_segment(self) -> str:
        """Which part of an intervention the reading `get_action()` last returned belongs to, as the
        recording tags it (robot_io.datasets.schema.INTERVENTION_SEGMENTS, RaC's terms): "recovery"
        while bringing the robot back to a state the policy knows, "correction" while completing the
        task. Only asked while the device has control; a device that cannot tell says "correction"."""
        return SEGMENT_CORRECTION

    @abc.abstractmethod
    def disconnect(self) -> None: ...


@dataclass(frozen=True)
class TeleopMotion:
    """End-effector motion from an input device, in the console's own terms (runtime/control/teleop_keys.py)."""

    keys: frozenset[str] = frozenset()  # console key codes held ("KeyW", "Space", ...)
    axes: tuple[float, ...] = ()  # (dx, dy, dz, droll, dpitch, dyaw), each in [-1, 1]
    gripper_closed: bool | None = None  # None: leave the gripper as it is


@runtime_checkable
class CartesianTeleoperator(Protocol):
    """An input device that moves the end effector (a gamepad, a keyboard) rather than giving joint
    positions as a leader arm does; the session drives it like the browser's keys and gamepad."""

    def get_motion(self) -> TeleopMotion: ...
