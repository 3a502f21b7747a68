"""One episode of a local LeRobot dataset, for replaying it as a robot's cameras and state.

    read_summary(root)                    -> DatasetSummary from meta/info.json alone (cheap: for listings)
    open_replay_dataset(root, cache_root) -> ReplayDataset; v3.0 read in place, v2.1 converted once into
                                             cache_root with LeRobot's own converter (robot_io/datasets/conversion.py)
    ReplayDataset.episode(i)        -> EpisodeData: state, action, timestamps, task
    ReplayDataset.frames(episode, camera, positions) -> uint8 (H, W, 3) frames, decoded in order, a batch at a time

Frames are decoded with LeRobot's own `decode_video_frames` at the same timestamps (and tolerance)
LeRobotDataset uses, so a replay sees exactly the pictures training would. Every file is checked
before LeRobot opens it: LeRobot answers a missing local file by trying the Hugging Face Hub.
Each problem is a DatasetReadError that names the dataset and what is missing or unreadable.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robot_io.datasets.conversion import V21, ConversionError, convert_v21
from robot_io.datasets.schema import ACTION_KEY, EPISODES_DIR, IMAGE_PREFIX, INFO_PATH, STATE_KEY, TASKS_PATH, local_repo_id

V30 = "v3.0"
REQUIRED_INFO_KEYS = ("codebase_version", "fps", "features", "total_episodes")
TIMESTAMP_TOLERANCE_S = 1e-4  # LeRobotDataset's default: a decoded frame must sit this close to its timestamp
DECODE_BATCH = 16  # frames decoded per call: 16 x 640x480x3 is ~15 MB


class DatasetReadError(ValueError):
    """The dataset cannot be replayed; the message names the dataset and what is missing or unreadable."""


@dataclass(frozen=True)
class DatasetSummary:
    root: Path
    version: str  # codebase_version, e.g. "v3.0"
    fps: int
    robot_type: str | None
    total_episodes: int
    cameras: tuple[str, ...]  # video cameras, without the "observation.images." prefix
    state_names: tuple[str, ...] | None  # None: the feature has no names
    action_names: tuple[str, ...] | None


@dataclass(frozen=True)
class EpisodeData:
    index: int
    task: str
    state: np.ndarray  # (T, S) float32, in DatasetSummary.state_names order
    action: np.ndarray  # (T, A) float32, in DatasetSummary.action_names order
    timestamps: np.ndarray  # (T,) float seconds from the episode's start, as stored

    @property
    def length(self) -> int:
        return len(self.timestamps)


def read_summary(root: str | Path) -> DatasetSummary:
    """What meta/info.json says, checked: a v3.0 or v2.1 dataset with videos, state and action."""
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise DatasetReadError(f"no dataset folder at {root}")
    info_path = root / INFO_PATH
    if not info_path.is_file():
        raise DatasetReadError(f"{root} holds no LeRobot dataset: {INFO_PATH} is missing")
    try:
        info = json.loads(info_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetReadError(f"{info_path} is unreadable: {type(err).__name__}: {err}") from err
    if not isinstance(info, dict):
        raise DatasetReadError(f"{info_path} is unreadable: expected a JSON object, got {type(info).__name__}")
    missing = [key for key in REQUIRED_INFO_KEYS if key not in info]
    if missing:
        raise DatasetReadError(f"{info_path} lacks {missing}")
    version = str(info["codebase_version"])
    if version not in (V30, V21):
        raise DatasetReadError(f"{root} is a LeRobot {version} dataset: replay reads {V30} and converts {V21}")
    features = info["features"]
    fps = info["fps"]
    if not isinstance(features, dict) or not isinstance(fps, (int, float)) or fps <= 0:
        raise DatasetReadError(f"{info_path} is unreadable: 'features' must be an object and 'fps' a positive number")
    videos = [key for key, ft in features.items() if isinstance(ft, dict) and ft.get("dtype") == "video"]
    if not videos:
        images = [key for key, ft in features.items() if isinstance(ft, dict) and ft.get("dtype") == "image"]
        stored = f"its cameras {images} are stored as images, not videos" if images else "it has no camera features"
        raise DatasetReadError(f"{root} is a dataset without videos: replay needs camera videos ({IMAGE_PREFIX}*); {stored}")
    for key in videos:
        video_fps = (features[key].get("info") or {}).get("video.fps")
        if video_fps is not None and video_fps != fps:
            raise DatasetReadError(f"{root}: the video of {key} runs at {video_fps} fps, but the dataset says {fps} fps")
    for key in (STATE_KEY, ACTION_KEY):
        if key not in features:
            raise DatasetReadError(f"{root} has no {key!r} feature (it has {sorted(features)})")
    return DatasetSummary(
        root=root,
        version=version,
        fps=int(fps),
        robot_type=info.get("robot_type"),
        total_episodes=int(info["total_episodes"]),
        cameras=tuple(key.removeprefix(IMAGE_PREFIX) for key in videos),
        state_names=_vector_names(features[STATE_KEY], STATE_KEY, root),
        action_names=_vector_names(features[ACTION_KEY], ACTION_KEY, root),
    )


def open_replay_dataset(root: str | Path, cache_root: str | Path) -> ReplayDataset:
    """The dataset at `root`, read in place (v3.0) or from its v3.0 copy in `cache_root` (v2.1)."""
    source = read_summary(root)
    if source.version == V30:
        return ReplayDataset(source, source.root)
    try:
        converted = convert_v21(source.root, Path(cache_root))
    except ConversionError as err:
        raise DatasetReadError(str(err)) from err
    return ReplayDataset(read_summary(converted), source.root)


class ReplayDataset:
    """A local v3.0 dataset opened for reading episodes; `source` is the folder the user chose
    (`summary.root` differs from it when that was a v2.1 dataset, converted)."""

    def __init__(self, summary: DatasetSummary, source: Path) -> None:
        self.summary = summary
        self.source = source
        self.root = summary.root
        for relative in (TASKS_PATH, EPISODES_DIR):
            if not (self.root / relative).exists():
                raise DatasetReadError(f"{self._name}: {relative} is missing")
        os.environ["HF_HUB_OFFLINE"] = "1"  # every file is local; never wait on the Hub
        from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata

        try:
            self.meta = LeRobotDatasetMetadata(local_repo_id(self.root), root=self.root)
            self._episodes = self.meta.episodes.to_pandas() if self.meta.episodes is not None else None
        except Exception as err:  # noqa: BLE001 - any reader failure is this dataset's, and named
            raise DatasetReadError(f"cannot read the metadata of {self._name}: {type(err).__name__}: {err}") from err
        if self._episodes is None or len(self._episodes) != summary.total_episodes:
            found = 0 if self._episodes is None else len(self._episodes)
            raise DatasetReadError(
                f"{self._name}: {EPISODES_DIR} lists {found} episodes, {INFO_PATH} says {summary.total_episodes}"
            )
        self._episodes = self._episodes.set_index("episode_index", drop=False)

    @property
    def converted(self) -> bool:
        return self.root != self.source

    @property
    def _name(self) -> str:
        return f"{self.source} (converted copy {self.root})" if self.converted else str(self.source)

    def episode(self, index: int) -> EpisodeData:
        """State, action, timestamps and task of one episode; its videos are checked to exist."""
        if index not in self._episodes.index:
            raise DatasetReadError(f"episode {index} is not in {self._name} (it holds episodes 0..{self.summary.total_episodes - 1})")
        data_file = self.root / self.meta.get_data_file_path(index)
        if not data_file.is_file():
            raise DatasetReadError(f"{self._name}: the data file {data_file.relative_to(self.root)} of episode {index} is missing")
        for camera in self.summary.cameras:
            self._video_file(index, camera)
        import pandas as pd

        columns = ["episode_index", "frame_index", "timestamp", STATE_KEY, ACTION_KEY]
        try:
            table = pd.read_parquet(data_file, columns=columns, filters=[("episode_index", "==", index)])
        except Exception as err:  # noqa: BLE001 - pyarrow raises many kinds; all mean "unreadable"
            raise DatasetReadError(f"{self._name}: the data file {data_file} is unreadable: {type(err).__name__}: {err}") from err
        if table.empty:
            raise DatasetReadError(f"{self._name}: the data file {data_file} holds no frames of episode {index}")
        table = table.sort_values("frame_index")
        state = np.stack(table[STATE_KEY].to_numpy()).astype(np.float32)  # (T, S)
        action = np.stack(table[ACTION_KEY].to_numpy()).astype(np.float32)  # (T, A)
        tasks = self._episodes.loc[index, "tasks"]
        return EpisodeData(
            index=index,
            task=str(tasks[0]) if len(tasks) else "",
            state=state,
            action=action,
            timestamps=table["timestamp"].to_numpy(dtype=np.float64),
        )

    def frames(self, episode: EpisodeData, camera: str, positions: Sequence[int]) -> Iterator[np.ndarray]:
        """uint8 (H, W, 3) frames of `camera` at the episode's frame positions, in order, decoded
        DECODE_BATCH at a time (memory stays bounded however long the episode)."""
        from lerobot.datasets.video_utils import decode_video_frames

        path = self._video_file(episode.index, camera)
        start = float(self._episodes.loc[episode.index, f"videos/{IMAGE_PREFIX}{camera}/from_timestamp"])
        for first in range(0, len(positions), DECODE_BATCH):
            wanted = positions[first : first + DECODE_BATCH]
            timestamps = [start + float(episode.timestamps[p]) for p in wanted]
            try:
                batch = decode_video_frames(path, timestamps, TIMESTAMP_TOLERANCE_S, return_uint8=True)  # (N, 3, H, W)
            except Exception as err:  # noqa: BLE001 - a damaged or short video: name it
                raise DatasetReadError(
                    f"{self._name}: cannot decode camera {camera!r} of episode {episode.index} from {path} "
                    f"at {timestamps[0]:.3f}-{timestamps[-1]:.3f} s: {type(err).__name__}: {err}"
                ) from err
            yield from batch.permute(0, 2, 3, 1).numpy()  # each (H, W, 3)

    def _video_file(self, index: int, camera: str) -> Path:
        path = self.root / self.meta.get_video_file_path(index, IMAGE_PREFIX + camera)
        if not path.is_file():
            raise DatasetReadError(
                f"{self._name}: the video of camera {camera!r} for episode {index} ({path.relative_to(self.root)}) is missing"
            )
        return path


def _vector_names(feature: dict[str, Any], key: str, root: Path) -> tuple[str, ...] | None:
    """A vector feature's names as one flat tuple. LeRobot datasets store them as a list, a list
    holding one list (e.g. the Unitree G1 datasets), or a dict of lists (older LeRobot robots)."""
    names = feature.get("names")
    if names is None:
        return None
    if isinstance(names, dict):
        names = [name for group in names.values() for name in group]
    elif names and all(isinstance(group, list) for group in names):
        names = [name for group in names for name in group]
    shape = feature.get("shape") or [len(names)]
    if not all(isinstance(name, str) for name in names) or len(names) != int(np.prod(shape)):
        raise DatasetReadError(f"{root}: the names of {key!r} do not match its shape {list(shape)}: {names}")
    return tuple(names)
