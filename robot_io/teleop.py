"""The Teleoperator interface: LeRobot's method names (connect / get_action / disconnect)."""

from __future__ import annotations

import abc


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

    @abc.abstractmethod
    def disconnect(self) -> None: ...
