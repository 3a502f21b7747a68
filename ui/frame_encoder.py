"""JPEG encoding of camera frames, once per frame however many browsers watch."""

from __future__ import annotations

import threading

import cv2
import numpy as np

JPEG_QUALITY = 85


def encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"could not encode a frame of shape {rgb.shape} as JPEG")
    return buffer.tobytes()


class SharedJpegCache:
    """Latest JPEG per camera, keyed by control tick: the first viewer encodes, the rest reuse."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[int, bytes]] = {}

    def get(self, camera: str, tick: int, frame: np.ndarray) -> bytes:
        with self._lock:
            cached = self._cache.get(camera)
            if cached is not None and cached[0] == tick:
                return cached[1]
        jpeg = encode_jpeg(frame)
        with self._lock:
            self._cache[camera] = (tick, jpeg)
        return jpeg
