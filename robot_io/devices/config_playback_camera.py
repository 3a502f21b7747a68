"""Config of the playback camera (robot_io/devices/playback_camera.py), registered with LeRobot as camera type
"playback", so any LeRobot robot's `cameras` may hold one:

    cameras: {front: {type: playback, path: recordings/demo.mp4}}
    cameras: {front: {type: playback, path: ../shared/datasets/g1_inspire_pick_bottle_v30, episode: 2}}

Its own file, named config_*.py beside the camera, because that is where LeRobot's factory
(`make_device_from_device_class`) looks for the device class of an unknown camera type.
Width, height and fps default to the source's own; others resize or re-time it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lerobot.cameras import CameraConfig

from robot_io.datasets.conversion import default_cache_root
from robot_io.datasets.reader import DatasetReadError, read_summary
from robot_io.datasets.schema import IMAGE_PREFIX, INFO_PATH

PLAYBACK_TYPE = "playback"


class PlaybackSourceError(ValueError):
    """The file or dataset to play cannot be used; the message names it and says why."""


@CameraConfig.register_subclass(PLAYBACK_TYPE)
@dataclass
class PlaybackCameraConfig(CameraConfig):
    path: Path  # a video file (anything FFmpeg decodes), or a LeRobot dataset folder (v3.0; v2.1 is converted)
    episode: int = 0  # the dataset's episode to play
    camera: str | None = None  # the dataset's camera (with or without "observation.images."); None: its only one
    loop: bool = True  # start over at the end; False: the last frame stays, and goes stale
    cache_root: Path | None = None  # where a v2.1 dataset is converted (default: the console's replay cache)

    def __post_init__(self) -> None:
        self.path = Path(self.path).expanduser()
        self.cache_root = Path(self.cache_root).expanduser() if self.cache_root is not None else default_cache_root()
        if isinstance(self.episode, bool) or not isinstance(self.episode, int) or self.episode < 0:
            raise PlaybackSourceError(f"playback episode must be an int >= 0, got {self.episode!r}")
        for name in ("fps", "width", "height"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise PlaybackSourceError(f"playback {name} must be a positive int (or left out for the source's own), got {value!r}")
        if not self.path.exists():
            raise PlaybackSourceError(f"nothing to play at {self.path}: no such video file or dataset folder")
        fps, width, height = self._probe_dataset() if self.is_dataset else self._probe_video()
        if self.fps is None and fps is None:
            raise PlaybackSourceError(f"{self.path} does not say its frame rate: give `fps`")
        self.fps = self.fps or fps
        self.width = self.width or width
        self.height = self.height or height

    @property
    def is_dataset(self) -> bool:
        return self.path.is_dir()

    def _probe_dataset(self) -> tuple[int, int, int]:
        try:
            summary = read_summary(self.path)
        except DatasetReadError as err:
            raise PlaybackSourceError(str(err)) from err
        if self.camera is None:
            if len(summary.cameras) != 1:
                raise PlaybackSourceError(f"{self.path} has cameras {list(summary.cameras)}: name the one to play with `camera`")
            self.camera = summary.cameras[0]
        self.camera = self.camera.removeprefix(IMAGE_PREFIX)
        if self.camera not in summary.cameras:
            raise PlaybackSourceError(f"{self.path} has no camera {self.camera!r}; its cameras are {list(summary.cameras)}")
        if self.episode >= summary.total_episodes:
            raise PlaybackSourceError(f"{self.path} holds episodes 0..{summary.total_episodes - 1}, not {self.episode}")
        feature = json.loads((self.path / INFO_PATH).read_text())["features"][IMAGE_PREFIX + self.camera]
        height, width = feature["shape"][:2]
        return summary.fps, int(width), int(height)

    def _probe_video(self) -> tuple[int | None, int, int]:
        import av

        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise PlaybackSourceError(f"{self.path} has no video stream")
                stream = container.streams.video[0]
                rate = stream.average_rate or stream.guessed_rate
                return (round(float(rate)) if rate else None), stream.codec_context.width, stream.codec_context.height
        except av.FFmpegError as err:
            raise PlaybackSourceError(f"{self.path} is not a video FFmpeg can read: {err}") from err
