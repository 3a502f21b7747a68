"""What a client may send: one request message checked and mapped to our robot's observation keys
(the server's docstring, model/serve/__init__.py, describes the mapping)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from model.checkpoint import RobotLayout
from robot_io.wire.protocol import IMAGES_KEY, OBSERVE_ONLY_KEY, PROMPT_KEY, RESET_KEY, STATE_ARRAY_KEYS



RGB = 3
MAX_IMAGE_SIDE = 4096  # pixels; larger frames are refused before any resizing
MAX_PROMPT_CHARS = 2000


class BadRequest(ValueError):
    """The client sent something the server cannot use; the message says what."""


# ---- observation mapping ----------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    observation: dict[str, Any]  # state key -> float, camera key -> uint8 (H, W, 3); absent cameras left out
    prompt: str | None  # None only for observe_only
    reset: bool = False
    observe_only: bool = False


def parse_request(message: Any, layout: RobotLayout) -> Request:
    """An openpi-style observation dict -> our robot observation (see the module docstring)."""
    if not isinstance(message, dict):
        raise BadRequest(f"a request must be a msgpack map (dict), got {type(message).__name__}")
    reset = _flag(message, RESET_KEY)
    observe_only = _flag(message, OBSERVE_ONLY_KEY)
    prompt = message.get(PROMPT_KEY)
    if not observe_only or prompt is not None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise BadRequest(f"{PROMPT_KEY!r} must be a non-empty string (the instruction)")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise BadRequest(f"{PROMPT_KEY!r} is {len(prompt)} characters; at most {MAX_PROMPT_CHARS}")
    observation: dict[str, Any] = _state(message, layout)
    observation.update(_cameras(message, layout))
    return Request(observation, prompt, reset, observe_only)


def _flag(message: dict[str, Any], key: str) -> bool:
    value = message.get(key, False)
    if not isinstance(value, (bool, np.bool_)):
        raise BadRequest(f"{key!r} must be true or false, got {type(value).__name__}")
    return bool(value)


def _state(message: dict[str, Any], layout: RobotLayout) -> dict[str, float]:
    keys = layout.state_keys
    given = [name for name in STATE_ARRAY_KEYS if name in message]
    if len(given) > 1:
        raise BadRequest(f"send the state once, as one of {list(STATE_ARRAY_KEYS)}, not both")
    if given:
        state = np.asarray(message[given[0]]) if isinstance(message[given[0]], (list, np.ndarray)) else None
        if state is None or state.dtype.kind not in "iuf" or state.shape != (len(keys),):
            got = f"{state.dtype} {state.shape}" if state is not None else type(message[given[0]]).__name__
            raise BadRequest(f"{given[0]!r} must be a numeric array of shape ({len(keys)},) in the order {keys}, got {got}")
        return dict(zip(keys, state.astype(np.float64).tolist()))
    missing = [key for key in keys if key not in message]
    if missing:
        raise BadRequest(f"no state: send {STATE_ARRAY_KEYS[0]!r} ({len(keys)} values in the order {keys}) or each state key; missing {missing}")
    bad = [key for key in keys if isinstance(message[key], bool) or not isinstance(message[key], (int, float, np.integer, np.floating))]
    if bad:
        raise BadRequest(f"state values must be numbers; not numbers: {bad}")
    return {key: float(message[key]) for key in keys}


def _cameras(message: dict[str, Any], layout: RobotLayout) -> dict[str, np.ndarray]:
    images = message.get(IMAGES_KEY, {})
    if not isinstance(images, dict):
        raise BadRequest(f"{IMAGES_KEY!r} must map camera name -> uint8 image, got {type(images).__name__}")
    unknown = [name for name in images if name not in layout.cameras]
    if unknown:
        raise BadRequest(f"unknown cameras {unknown}; this policy's cameras are {layout.cameras}")
    frames: dict[str, np.ndarray] = {}
    for camera in layout.cameras:
        if camera in images and camera in message:
            raise BadRequest(f"camera {camera!r} is sent twice (in {IMAGES_KEY!r} and at the top level)")
        image = images.get(camera, message.get(camera))
        if image is not None:
            frames[camera] = _image(camera, image)
    return frames


def _image(camera: str, image: Any) -> np.ndarray:
    """uint8 (H, W, 3) or (3, H, W) -> a writable uint8 (H, W, 3) copy."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise BadRequest(f"camera {camera!r} must be a uint8 (H, W, 3) or (3, H, W) array, got {got}")
    if image.shape[-1] != RGB and image.shape[0] == RGB:
        image = image.transpose(1, 2, 0)  # (3, H, W) -> (H, W, 3), openpi's ALOHA layout
    h, w, channels = image.shape
    if channels != RGB or not (0 < h <= MAX_IMAGE_SIDE and 0 < w <= MAX_IMAGE_SIDE):
        raise BadRequest(f"camera {camera!r} must be (H, W, 3) with 1 <= H, W <= {MAX_IMAGE_SIDE}, got {image.shape}")
    return np.array(image, copy=True)
