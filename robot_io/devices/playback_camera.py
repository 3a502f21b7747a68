"""A camera that plays a video file or one episode of a LeRobot dataset, in real time, as a LeRobot
camera (type "playback", config in robot_io/devices/config_playback_camera.py): a robot without a camera
yet, a rehearsal of the console on recorded footage, or tests without hardware.

Like LeRobot's OpenCV camera, a background thread captures (here: decodes) frames at the camera's
fps and keeps the latest with its `latest_timestamp` (time.perf_counter()); `read_latest` returns it
and `async_read` waits for a new one. At the end it starts over, or (loop=False) keeps the last
frame, which then ages: the console's stale-camera lockout sees a camera that stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
from lerobot.cameras import Camera
from lerobot.utils.decorators import check_if_already_connected, check_if_not_connected

from robot_io.devices.config_playback_camera import PlaybackCameraConfig, PlaybackSourceError
from robot_io.datasets.reader import DatasetReadError, open_replay_dataset

DEFAULT_MAX_AGE_MS = 500  # LeRobot's read_latest default
READ_TIMEOUT_MS = 10_000  # read() waits this long for the next frame
JOIN_TIMEOUT_S = 5.0


class PlaybackCamera(Camera):
    def __init__(self, config: PlaybackCameraConfig) -> None:
        super().__init__(config)
        self.config = config
        self.latest_frame: np.ndarray | None = None  # uint8 RGB (height, width, 3)
        self.latest_timestamp: float | None = None
        self._lock = threading.Lock()
        self._new_frame = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def __str__(self) -> str:
        return f"PlaybackCamera({self.config.path})"

    @property
    def is_connected(self) -> bool:
        return self._thread is not None

    @staticmethod
    def find_cameras() -> list[dict[str, Any]]:
        return []  # nothing to discover: a playback camera is whatever file its config names

    @check_if_already_connected
    def connect(self, warmup: bool = True) -> None:
        """Open the source and show its first frame now, so a bad file fails here, not in the loop."""
        frames = self._source()
        try:
            first = next(frames)
        except StopIteration:
            raise PlaybackSourceError(f"{self.config.path} holds no frames") from None
        self._publish(first)
        self._stop.clear()
        self._error = None
        self._thread = threading.Thread(target=self._play, args=(frames,), name=f"{self}", daemon=True)
        self._thread.start()

    def read(self) -> np.ndarray:
        return self.async_read(READ_TIMEOUT_MS)

    @check_if_not_connected
    def async_read(self, timeout_ms: float = 200) -> np.ndarray:
        if not self._new_frame.wait(timeout_ms / 1e3):
            raise TimeoutError(f"{self} gave no new frame within {timeout_ms} ms{self._why()}")
        with self._lock:
            self._new_frame.clear()
            return self.latest_frame

    @check_if_not_connected
    def read_latest(self, max_age_ms: int = DEFAULT_MAX_AGE_MS) -> np.ndarray:
        with self._lock:
            frame, stamp = self.latest_frame, self.latest_timestamp
        age_ms = (time.perf_counter() - stamp) * 1e3
        if age_ms > max_age_ms:
            raise TimeoutError(f"{self} latest frame is too old: {age_ms:.1f} ms (max allowed: {max_age_ms} ms){self._why()}")
        return frame

    @check_if_not_connected
    def disconnect(self) -> None:
        self._stop.set()
        self._thread.join(JOIN_TIMEOUT_S)
        self._thread = None

    # --- the player thread ----------------------------------------------------------------------
    def _play(self, frames: Iterator[np.ndarray]) -> None:
        period = 1.0 / self.config.fps
        due = time.perf_counter() + period
        try:
            for frame in frames:
                if self._stop.wait(max(0.0, due - time.perf_counter())):
                    return
                self._publish(frame)
                # Behind by more than a frame (slow decoding): go on from now rather than rush.
                due = max(due + period, time.perf_counter())
        except Exception as err:  # noqa: BLE001 - kept for the next read's message; the frame goes stale
            self._error = err

    def _publish(self, frame: np.ndarray) -> None:
        if frame.shape[:2] != (self.height, self.width):
            frame = cv2.resize(frame, (self.width, self.height), interpolation=cv2.INTER_AREA)
        frame = np.ascontiguousarray(frame)
        frame.flags.writeable = False  # shared with every reader, as LeRobot's latest_frame
        with self._lock:
            self.latest_frame, self.latest_timestamp = frame, time.perf_counter()
        self._new_frame.set()

    def _source(self) -> Iterator[np.ndarray]:
        """uint8 RGB frames of the file or episode, over and over when looping."""
        c = self.config
        if c.is_dataset:
            try:
                dataset = open_replay_dataset(c.path, c.cache_root)
                episode = dataset.episode(c.episode)
            except DatasetReadError as err:
                raise PlaybackSourceError(str(err)) from err

            def play_once() -> Iterator[np.ndarray]:
                return dataset.frames(episode, c.camera, range(episode.length))
        else:
            def play_once() -> Iterator[np.ndarray]:
                return _video_frames(c.path)
        while True:
            yield from play_once()
            if not c.loop:
                return

    def _why(self) -> str:
        if self._error is not None:
            return f": playback stopped ({type(self._error).__name__}: {self._error})"
        if self._thread is not None and not self._thread.is_alive():
            return ": playback reached the end (loop is off)"
        return ""


def _video_frames(path) -> Iterator[np.ndarray]:
    import av

    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")  # (H, W, 3) uint8
    except av.FFmpegError as err:
        raise PlaybackSourceError(f"cannot decode {path}: {err}") from err
