"""The Camera interface: LeRobot's `Camera` method names (connect / read / async_read / disconnect)."""

from __future__ import annotations

import abc

import numpy as np


class Camera(abc.ABC):
    width: int
    height: int
    fps: int | None

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @abc.abstractmethod
    def connect(self, warmup: bool = True) -> None: ...

    @abc.abstractmethod
    def read(self) -> np.ndarray:
        """Block until a frame is captured; returns uint8 RGB (height, width, 3)."""

    def async_read(self, timeout_ms: float = 200) -> np.ndarray:
        """Latest frame without waiting for a new capture when the device allows it."""
        return self.read()

    @abc.abstractmethod
    def disconnect(self) -> None: ...
