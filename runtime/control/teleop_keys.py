"""Browser teleop: which key (or gamepad axis) moves the end effector which way.

Keys are `KeyboardEvent.code` values, so the map holds on any keyboard layout. Gamepad axes come
already mapped to (dx, dy, dz, droll, dpitch, dyaw) by ui/gamepad.js, each in [-1, 1].
"""

from __future__ import annotations

import numpy as np

# key -> (axis of (dx, dy, dz, droll, dpitch, dyaw), sign)
MOTION_KEYS: dict[str, tuple[int, int]] = {
    "KeyW": (0, +1), "KeyS": (0, -1),  # forward / back (x)
    "KeyA": (1, +1), "KeyD": (1, -1),  # left / right (y)
    "KeyR": (2, +1), "KeyF": (2, -1),  # up / down (z)
    "KeyZ": (3, +1), "KeyC": (3, -1),  # roll
    "KeyT": (4, +1), "KeyG": (4, -1),  # pitch
    "KeyQ": (5, +1), "KeyE": (5, -1),  # yaw
}
GRIPPER_TOGGLE_KEY = "Space"

KEYMAP_HELP = (
    "W/S forward/back · A/D left/right · R/F up/down · Q/E yaw · T/G pitch · Z/C roll · "
    "Space open/close gripper"
)


def keys_to_delta(keys: frozenset[str], linear_step: float, angular_step: float) -> np.ndarray:
    """End-effector delta for one control tick: (dx, dy, dz, droll, dpitch, dyaw)."""
    delta = np.zeros(6)
    for key in keys:
        if key in MOTION_KEYS:
            axis, sign = MOTION_KEYS[key]
            delta[axis] += sign * (linear_step if axis < 3 else angular_step)
    return delta


AXES = 6  # dx, dy, dz, droll, dpitch, dyaw


def axes_to_delta(axes: tuple[float, ...], dead_zone: float, linear_step: float, angular_step: float) -> np.ndarray:
    """Gamepad axes -> end-effector delta for one tick. Inside the dead zone an axis counts as 0
    (sticks never rest exactly at 0); past it, speed rises linearly to a full step at +-1."""
    delta = np.zeros(AXES)
    for axis, value in enumerate(axes[:AXES]):
        value = float(np.clip(value, -1.0, 1.0))
        if abs(value) > dead_zone:
            scale = (abs(value) - dead_zone) / (1.0 - dead_zone)
            delta[axis] = np.sign(value) * scale * (linear_step if axis < 3 else angular_step)
    return delta


def past_dead_zone(axes: tuple[float, ...], dead_zone: float) -> bool:
    return any(abs(float(v)) > dead_zone for v in axes[:AXES])
