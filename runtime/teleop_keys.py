"""Keyboard teleop: which browser key moves the end effector which way.

Keys are `KeyboardEvent.code` values, so the map holds on any keyboard layout.
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
