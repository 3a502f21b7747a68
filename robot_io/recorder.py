"""Episode recorder: robot observations + actions -> a local LeRobot v3.0 dataset (lerobot 0.6.1).

One `EpisodeRecorder` owns one dataset folder. Per frame it stores

- `observation.images.<cam>`  video per camera (H, W, 3) uint8
- `observation.state`         float32, names = the robot's scalar observation keys, in order
- `action`                    float32, names = the robot's action keys, in order
- `intervention`              bool (1,): True when the operator produced the action. Same name,
                              dtype and shape as lerobot 0.6.1's DAgger/HIL rollout
                              (`lerobot/rollout/strategies/dagger.py`, `rollout/context.py`).
- `actor`                     int64 (1,): index into `ACTION_SOURCES`; the list is stored as the
                              feature's `names` in meta/info.json so the codes explain themselves.
- `task`                      the instruction, as LeRobot's `add_frame` expects it.

Durability: LeRobot keeps its parquet writers open across episodes and only writes their footers
in `finalize()`; a killed process would leave every episode since the last finalize unreadable.
So `save_episode` also checkpoints (finalize now, reopen with `LeRobotDataset.resume` at the next
`start_episode`) once `CHECKPOINT_EVERY_S` has passed since the last checkpoint. A checkpoint
starts new data/video files, and reopening costs time that grows with the number of files
(measured ~50 ms per file set on 2 busy cores), hence by time and not after every episode: a crash
loses at most the episodes of the last few minutes, and the file count stays modest. Reopening a
dataset left by a killed process (resume=True) keeps every checkpointed episode, moves the files
written after the last checkpoint to a folder beside the dataset, and fixes the counts in
meta/info.json (see `_recover_unfinalized`).

Nothing here talks to the Hugging Face Hub: `repo_id` is a local name, nothing is pushed, and
the recorder checks the folder itself before LeRobot gets a chance to "download" missing files.

Not thread-safe: one thread (runtime/recording.py's writer) calls it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# --- configuration --------------------------------------------------------------------------

ACTION_SOURCES: tuple[str, ...] = ("policy", "operator", "hold")  # code = index; never reorder
INTERVENTION_KEY = "intervention"  # lerobot 0.6.1's DAgger name for "the human produced this action"
ACTION_SOURCE_KEY = "actor"
STATE_KEY = "observation.state"
ACTION_KEY = "action"
IMAGE_PREFIX = "observation.images."
REPO_ID_PREFIX = "local/"  # repo_id = "local/<folder name>"; it only names the dataset, never the Hub
# Streaming encoder queue per camera, in seconds of frames. LeRobot *drops* a frame when this
# queue is full (after blocking add_frame 0.1 s), which would leave a video shorter than its
# parquet; a few seconds of slack absorbs CPU hiccups (3 cams x 224x224 x 60 frames ~ 27 MB).
ENCODER_QUEUE_SECONDS = 4
# LeRobot's streaming encoder updates per-channel image statistics (quantile histograms) on every
# full frame below 300 px: 44 CPU-ms per 3-camera frame here, three times the encoding itself.
# Statistics from every 4th pixel in each direction are the same estimate for 1/16 of the cost
# (LeRobot's own offline path subsamples too), so the recorder lowers that threshold.
STATS_TARGET_SIZE = 56
STATS_MIN_SIZE_TO_SUBSAMPLE = 112
ENCODER_POLL_S = 0.005  # how often a full encoder queue is re-checked
ENCODER_STALL_TIMEOUT_S = 30.0  # an encoder that accepts nothing this long has failed
# Seconds of recording between checkpoints (see module docstring); 0 checkpoints every episode.
CHECKPOINT_EVERY_S = 300.0
# LeRobot's default video codec (libsvtav1 via PyAV 15.1) kills the whole process with SIGFPE for
# frames 24 pixels wide or less (measured); refuse such cameras up front instead.
MIN_IMAGE_SIDE = 32
# LeRobot's streaming encoder computes no video stats for a 1-frame episode, and the episode
# metadata table then fails to build at finalize(), taking every buffered episode with it
# (measured with lerobot 0.6.1). So an episode needs at least 2 frames.
MIN_EPISODE_FRAMES = 2
# H.264 (x264 "veryfast") instead of LeRobot's default AV1: measured 1.6 vs 5.1 CPU-ms per
# 224x224 frame here, which matters when 3 cameras encode beside a 15 Hz loop on 2 cores.
# Keyframe every 2 frames (LeRobot's default) keeps random access for training cheap.
VIDEO_CODEC = "h264"  # libx264 in the bundled FFmpeg
VIDEO_PRESET = "veryfast"
VIDEO_CRF = 23
VIDEO_GOP = 2
# Without streaming encoding, PNGs are written by background threads instead of inside add_frame.
IMAGE_WRITER_THREADS_PER_CAMERA = 2

# SVT-AV1 prints a 25-line banner and routine warnings per camera per episode at its default
# level; keep errors only (SVT_LOG=1). Read by the encoder library, so set before it starts.
os.environ.setdefault("SVT_LOG", "1")

_LEROBOT_AUTO_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")


def _subsample_image_stats() -> None:
    """Make LeRobot compute image statistics on subsampled frames (see STATS_TARGET_SIZE)."""
    from lerobot.datasets import compute_stats

    original = compute_stats.auto_downsample_height_width
    if getattr(original, "subsampled_by_recorder", False):
        return

    def subsampled(img, target_size=STATS_TARGET_SIZE, max_size_threshold=STATS_MIN_SIZE_TO_SUBSAMPLE):
        return original(img, target_size=target_size, max_size_threshold=max_size_threshold)

    subsampled.subsampled_by_recorder = True
    compute_stats.auto_downsample_height_width = subsampled


class RecorderError(RuntimeError):
    """A recording request that cannot be honoured; the message names the key or path at fault."""


def dataset_features(observation_features: dict, action_features: dict) -> dict[str, dict]:
    """The LeRobot feature dict for a robot's `observation_features` / `action_features`."""
    state_names = [k for k, v in observation_features.items() if v is float]
    cameras = {k: v for k, v in observation_features.items() if isinstance(v, tuple)}
    unknown = [k for k in observation_features if k not in state_names and k not in cameras]
    if unknown:
        raise RecorderError(f"Observation features {unknown} are neither float nor an image shape.")
    bad_actions = [k for k, v in action_features.items() if v is not float]
    if bad_actions:
        raise RecorderError(f"Action features {bad_actions} must be float.")
    if not action_features:
        raise RecorderError("The robot declares no action features; there is nothing to record.")

    features: dict[str, dict] = {}
    for cam, shape in cameras.items():
        if len(shape) != 3 or shape[2] != 3 or min(shape) <= 0:
            raise RecorderError(f"Camera '{cam}' has shape {shape}; expected (height, width, 3).")
        if min(shape[:2]) < MIN_IMAGE_SIDE:
            raise RecorderError(
                f"Camera '{cam}' is {shape[0]}x{shape[1]}; the video encoder needs at least "
                f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}."
            )
        # Same layout lerobot's hw_to_dataset_features writes for an RGB camera.
        features[IMAGE_PREFIX + cam] = {
            "dtype": "video",
            "shape": tuple(int(s) for s in shape),
            "names": ["height", "width", "channels"],
            "info": {"is_depth_map": False},
        }
    if state_names:
        features[STATE_KEY] = {"dtype": "float32", "shape": (len(state_names),), "names": state_names}
    features[ACTION_KEY] = {"dtype": "float32", "shape": (len(action_features),), "names": list(action_features)}
    features[INTERVENTION_KEY] = {"dtype": "bool", "shape": (1,), "names": None}
    features[ACTION_SOURCE_KEY] = {"dtype": "int64", "shape": (1,), "names": list(ACTION_SOURCES)}
    return features


def feature_differences(expected: dict[str, dict], existing: dict[str, dict]) -> list[str]:
    """Human-readable differences between two feature dicts (dtype, shape, names per key).

    Video encoder details in `info` (codec, pix_fmt, ...) are ignored: they are written by LeRobot
    after the first episode and do not change what a frame means.
    """
    diffs = []
    keys = [k for k in {**expected, **existing} if k not in _LEROBOT_AUTO_FEATURES]
    for key in keys:
        if key not in existing:
            diffs.append(f"'{key}' is missing from the existing dataset")
            continue
        if key not in expected:
            diffs.append(f"'{key}' exists in the dataset but this robot has no such feature")
            continue
        for field in ("dtype", "shape", "names"):
            want, have = expected[key].get(field), existing[key].get(field)
            if field == "shape":
                want, have = list(want or []), list(have or [])
            if want != have:
                diffs.append(f"'{key}' {field}: dataset has {have}, robot has {want}")
    return diffs


def check_writable(root: Path) -> None:
    """Fail early, naming the path, when `root` cannot be created or written.

    os.access is used rather than a probe file so nothing is left behind; note it reports True
    for root (uid 0) on any directory, except on read-only filesystems.
    """
    probe = root
    while not probe.exists():
        if probe.parent == probe:
            raise RecorderError(f"Cannot record to {root}: no existing parent folder.")
        probe = probe.parent
    if not probe.is_dir():
        raise RecorderError(f"Cannot record to {root}: {probe} is not a folder.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RecorderError(f"Cannot record to {root}: {probe} is not writable.")


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


class EpisodeRecorder:
    """Writes episodes of (observation, action, intervention, source) to a LeRobot dataset.

    root: dataset folder. It must not exist, be empty, or (with resume=True) hold a dataset whose
    features match this robot's. Checked here, before anything is written.
    """

    def __init__(
        self,
        root: Path,
        fps: int,
        observation_features: dict,
        action_features: dict,
        resume: bool = False,
        robot_type: str = "conveyor_sim",
        streaming_encoding: bool = True,
    ) -> None:
        self.root = Path(root).expanduser().absolute()
        self.fps = int(fps)
        if self.fps <= 0:
            raise RecorderError(f"fps must be positive, got {fps}.")
        self.repo_id = REPO_ID_PREFIX + self.root.name
        self.robot_type = robot_type
        self.streaming_encoding = streaming_encoding
        self.features = dataset_features(observation_features, action_features)
        self._state_names: list[str] = list(self.features.get(STATE_KEY, {}).get("names", []))
        self._action_names: list[str] = list(self.features[ACTION_KEY]["names"])
        self._cameras = {
            key.removeprefix(IMAGE_PREFIX): ft["shape"] for key, ft in self.features.items() if key.startswith(IMAGE_PREFIX)
        }

        _subsample_image_stats()
        self._dataset: Any = None  # LeRobotDataset in write mode while an episode is open
        self._task: str | None = None
        self._frames = 0
        self._finalized = False
        self._last_checkpoint = time.monotonic()

        check_writable(self.root)
        exists = self.root.exists() and not _is_empty_dir(self.root)
        if exists and not resume:
            raise RecorderError(
                f"{self.root} already exists and is not empty. Pass resume=True to append episodes "
                "to the dataset there, or choose another folder."
            )
        if exists:
            self._check_existing_dataset(recover=True)
            self._remove_stale_temporaries()
            self._num_episodes = self._read_info()["total_episodes"]
        else:
            self._create()
            self._num_episodes = 0

    # --- properties -------------------------------------------------------------------------
    @property
    def num_episodes(self) -> int:
        """Episodes saved in the dataset, earlier sessions included."""
        return self._num_episodes

    @property
    def is_recording(self) -> bool:
        return self._task is not None

    @property
    def frames_in_episode(self) -> int:
        return self._frames

    # --- episode lifecycle ------------------------------------------------------------------
    def start_episode(self, task: str) -> None:
        self._require_open()
        if self.is_recording:
            raise RecorderError("An episode is already being recorded: save or discard it first.")
        if not isinstance(task, str) or not task.strip():
            raise RecorderError(f"The task must be a non-empty instruction, got {task!r}.")
        if self._dataset is None:
            self._dataset = self._open_for_append()
        self._task = task.strip()
        self._frames = 0

    def add_frame(self, observation: dict, action: dict[str, float], intervention: bool, source: str) -> None:
        """Buffer one control tick. Extra observation keys (e.g. "sim_state") are ignored."""
        if not self.is_recording:
            raise RecorderError("add_frame called with no episode in progress: call start_episode first.")
        frame = self._build_frame(observation, action, intervention, source)
        self._wait_for_encoder_room()
        self._dataset.add_frame(frame)
        self._frames += 1

    def save_episode(self) -> int:
        """Write the episode in progress; returns its index in the dataset (0, 1, ... across sessions)."""
        if not self.is_recording:
            raise RecorderError("save_episode called with no episode in progress.")
        if self._frames < MIN_EPISODE_FRAMES:
            raise RecorderError(
                f"Cannot save an episode with {self._frames} frame(s): it needs at least "
                f"{MIN_EPISODE_FRAMES}. Add frames or discard it."
            )
        dropped = self._dropped_video_frames()
        if dropped:
            self.discard_episode()
            raise RecorderError(
                f"The video encoder fell behind and dropped frames {dropped}; the episode would have "
                "videos shorter than its data, so it was discarded."
            )
        index = self._num_episodes
        try:
            self._dataset.save_episode()
            if time.monotonic() - self._last_checkpoint >= CHECKPOINT_EVERY_S:
                self._checkpoint()
        except Exception as err:
            self._abandon_writer()
            raise RecorderError(f"Saving episode {index} to {self.root} failed: {err}") from err
        finally:
            self._task = None
            self._frames = 0
        self._num_episodes = index + 1
        return index

    def _checkpoint(self) -> None:
        """Write footers and close files so everything saved so far survives a crash."""
        self._dataset.finalize()
        self._dataset = None  # reopened by the next start_episode
        self._last_checkpoint = time.monotonic()

    def discard_episode(self) -> None:
        """Drop the episode in progress (frames and temporary video files). No-op when idle."""
        if self._dataset is not None and self.is_recording:
            self._dataset.clear_episode_buffer()
            self._remove_stale_temporaries()
        self._task = None
        self._frames = 0

    def finalize(self) -> None:
        """Close the dataset. An unsaved episode in progress is discarded. Idempotent."""
        if self._finalized:
            return
        if self.is_recording and self._frames > 0:
            logger.warning("Finalizing %s with %d unsaved frames: they are discarded.", self.root, self._frames)
        self.discard_episode()
        if self._dataset is not None:
            self._dataset.finalize()
            self._dataset = None
        self._remove_stale_temporaries()
        self._finalized = True

    def _require_open(self) -> None:
        if self._finalized:
            raise RecorderError(f"The recorder for {self.root} is finalized; make a new one to record more.")

    # --- frame building / validation --------------------------------------------------------
    def _build_frame(self, observation: dict, action: dict, intervention: bool, source: str) -> dict:
        frame: dict[str, Any] = {}
        for cam, shape in self._cameras.items():
            if cam not in observation:
                raise RecorderError(f"Observation is missing camera '{cam}'.")
            image = np.asarray(observation[cam])
            if image.shape != tuple(shape):
                raise RecorderError(f"Camera '{cam}' image has shape {image.shape}, expected {tuple(shape)}.")
            if image.dtype != np.uint8:
                raise RecorderError(f"Camera '{cam}' image has dtype {image.dtype}, expected uint8.")
            frame[IMAGE_PREFIX + cam] = image
        if self._state_names:
            frame[STATE_KEY] = self._vector(observation, self._state_names, "Observation")
        frame[ACTION_KEY] = self._vector(action, self._action_names, "Action")
        if source not in ACTION_SOURCES:
            raise RecorderError(f"Action source {source!r} is not one of {list(ACTION_SOURCES)}.")
        frame[INTERVENTION_KEY] = np.array([bool(intervention)], dtype=bool)
        frame[ACTION_SOURCE_KEY] = np.array([ACTION_SOURCES.index(source)], dtype=np.int64)
        frame["task"] = self._task
        return frame

    @staticmethod
    def _vector(values: dict, names: list[str], what: str) -> np.ndarray:
        out = np.empty(len(names), dtype=np.float32)
        for i, name in enumerate(names):
            if name not in values:
                raise RecorderError(f"{what} is missing '{name}'.")
            try:
                value = float(values[name])
            except (TypeError, ValueError) as err:
                raise RecorderError(f"{what} '{name}' is not a number: {values[name]!r}.") from err
            if not math.isfinite(value):
                raise RecorderError(f"{what} '{name}' is {value}; refusing to record a non-finite value.")
            out[i] = value
        return out

    # --- dataset folder ---------------------------------------------------------------------
    def _create(self) -> None:
        """Create an empty dataset (meta/info.json) so the folder is claimed and loadable."""
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        if _is_empty_dir(self.root):
            self.root.rmdir()  # LeRobotDataset.create insists on making the folder itself
        try:
            self._dataset = LeRobotDataset.create(
                self.repo_id,
                self.fps,
                root=self.root,
                features=self.features,
                robot_type=self.robot_type,
                use_videos=True,
                **self._writer_options(),
            )
        except OSError as err:
            raise RecorderError(f"Cannot create a dataset at {self.root}: {err}") from err

    def _open_for_append(self) -> Any:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        self._check_existing_dataset()  # never let LeRobot fall back to the Hub for missing files
        return LeRobotDataset.resume(self.repo_id, root=self.root, **self._writer_options())

    def _writer_options(self) -> dict:
        from lerobot.configs.video import RGBEncoderConfig

        encoder = RGBEncoderConfig(vcodec=VIDEO_CODEC, preset=VIDEO_PRESET, crf=VIDEO_CRF, g=VIDEO_GOP)
        if self.streaming_encoding:
            return {
                "rgb_encoder": encoder,
                "streaming_encoding": True,
                "encoder_queue_maxsize": ENCODER_QUEUE_SECONDS * self.fps,
            }
        return {"rgb_encoder": encoder, "image_writer_threads": IMAGE_WRITER_THREADS_PER_CAMERA * len(self._cameras)}

    def _read_info(self) -> dict:
        return json.loads((self.root / "meta" / "info.json").read_text())

    def _check_existing_dataset(self, recover: bool = False) -> None:
        """The folder holds a LeRobot dataset with all its metadata and this robot's features.
        recover: also repair what a killed process left (only when this process opens the folder)."""
        info_path = self.root / "meta" / "info.json"
        if not info_path.is_file():
            raise RecorderError(f"{self.root} is not empty and holds no LeRobot dataset (no meta/info.json).")
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise RecorderError(f"Cannot record to {self.root}: it is not writable.")
        try:
            info = self._read_info()
        except ValueError as err:
            raise RecorderError(f"{info_path} is not valid JSON: {err}") from err
        diffs = feature_differences(self.features, info.get("features", {}))
        if info.get("fps") != self.fps:
            diffs.append(f"fps: dataset has {info.get('fps')}, recorder has {self.fps}")
        if diffs:
            raise RecorderError(
                f"The dataset at {self.root} was recorded with different features; nothing was "
                "written. Differences:\n  " + "\n  ".join(diffs)
            )
        if recover:
            self._recover_unfinalized()
            info = self._read_info()
        # LeRobot treats any missing metadata file as "download it from the Hub".
        if info.get("total_episodes", 0) > 0:
            missing = [p for p in ("meta/tasks.parquet",) if not (self.root / p).is_file()]
            if not any((self.root / "meta" / "episodes").glob("*/*.parquet")):
                missing.append("meta/episodes/*/*.parquet")
            if missing:
                raise RecorderError(f"The dataset at {self.root} is damaged: missing {missing}.")

    def _recover_unfinalized(self) -> None:
        """Repair a dataset whose writer never finalized (killed process, power cut).

        Since the last checkpoint, LeRobot has written data parquet files without footers,
        buffered episode metadata in memory only, appended videos to new files, and counted those
        episodes in meta/info.json. Every episode whose metadata row is readable on disk is
        complete (checkpoints close all its files); the rest cannot be read. So: keep those,
        move every file they do not reference to `<root>.unfinalized-<time>/` beside the dataset
        (never delete), and set info.json's counts to the kept episodes. stats.json keeps the lost
        episodes' contribution (it is a running aggregate), a small bias in normalisation stats.
        """
        import pyarrow.parquet as pq

        def readable(path: Path) -> bool:
            try:
                pq.read_metadata(path)
                return True
            except Exception:  # noqa: BLE001 - ArrowInvalid / OSError: no footer, truncated
                return False

        info = self._read_info()
        video_keys = [k for k, ft in info["features"].items() if ft.get("dtype") == "video"]
        columns = ["episode_index", "length", "data/chunk_index", "data/file_index"]
        columns += [f"videos/{k}/{c}" for k in video_keys for c in ("chunk_index", "file_index")]
        meta_files = sorted((self.root / "meta" / "episodes").glob("*/*.parquet"))
        rows: list[dict] = []
        for path in meta_files:
            if readable(path):
                rows += pq.read_table(path, columns=columns).to_pylist()
        rows.sort(key=lambda row: row["episode_index"])
        broken = [p for p in meta_files if not readable(p)]
        broken += [p for p in (self.root / "data").glob("*/*.parquet") if not readable(p)]
        if not broken and len(rows) == info["total_episodes"]:
            return  # finalized cleanly

        if [row["episode_index"] for row in rows] != list(range(len(rows))):
            raise RecorderError(f"The dataset at {self.root} is damaged beyond automatic repair (episode gaps).")
        keep = {self.root / "meta" / "tasks.parquet"}
        keep |= {p for p in meta_files if readable(p)}
        for row in rows:
            data_file = info["data_path"].format(chunk_index=row["data/chunk_index"], file_index=row["data/file_index"])
            keep.add(self.root / data_file)
            for key in video_keys:
                keep.add(self.root / info["video_path"].format(
                    video_key=key,
                    chunk_index=row[f"videos/{key}/chunk_index"],
                    file_index=row[f"videos/{key}/file_index"],
                ))
        unusable = [p for p in keep if p.suffix == ".parquet" and p.exists() and not readable(p)]
        missing = [p for p in keep if not p.exists() and p.name != "tasks.parquet"]
        if unusable or missing:
            raise RecorderError(
                f"The dataset at {self.root} is damaged beyond automatic repair: "
                f"unreadable {sorted(map(str, unusable))}, missing {sorted(map(str, missing))}."
            )

        aside = self.root.with_name(f"{self.root.name}.unfinalized-{time.strftime('%Y%m%d-%H%M%S')}")
        moved = 0
        for folder in ("data", "videos", "meta/episodes"):
            for path in sorted((self.root / folder).rglob("*")):
                if path.is_file() and path not in keep:
                    target = aside / path.relative_to(self.root)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(path), str(target))
                    moved += 1
        lost = info["total_episodes"] - len(rows)
        info["total_episodes"] = len(rows)
        info["total_frames"] = int(sum(row["length"] for row in rows))
        info["splits"] = {"train": f"0:{len(rows)}"}
        (self.root / "meta" / "info.json").write_text(json.dumps(info, indent=4, ensure_ascii=False))
        logger.warning(
            "%s was not finalized (the recorder was killed?): kept %d episodes, %d unreadable episodes "
            "lost; %d unusable files moved to %s.", self.root, len(rows), lost, moved, aside,
        )

    def _remove_stale_temporaries(self) -> None:
        """Remove LeRobot's per-episode temporary folders (`root/tmpXXXX`, mkdtemp) that hold no
        more than partial mp4s: left by an interrupted or discarded episode (LeRobot only cleans a
        folder once its encoder has written a file). Only called when no episode is in progress."""
        for folder in self.root.glob("tmp*"):
            if folder.is_dir() and all(f.is_file() and f.suffix == ".mp4" for f in folder.iterdir()):
                logger.info("Removing leftover temporary folder %s", folder)
                shutil.rmtree(folder, ignore_errors=True)
        # Without streaming encoding, PNGs are staged under root/images; LeRobot leaves the folders.
        images = self.root / "images"
        if images.is_dir() and not any(p.is_file() for p in images.rglob("*")):
            shutil.rmtree(images, ignore_errors=True)

    def _wait_for_encoder_room(self) -> None:
        """Block while a camera's streaming-encoder queue is full.

        LeRobot drops a frame when its queue stays full for 0.1 s; a caller that feeds faster than
        real time (the writer process draining a backlog) must wait instead. The queues are
        LeRobot internals, so a LeRobot without them simply skips the wait."""
        writer = getattr(self._dataset, "writer", None)
        encoder = getattr(writer, "_streaming_encoder", None)
        queues = list((getattr(encoder, "_frame_queues", None) or {}).values())
        deadline = time.monotonic() + ENCODER_STALL_TIMEOUT_S
        while any(q.maxsize and q.qsize() >= q.maxsize for q in queues):
            if time.monotonic() > deadline:
                raise RecorderError(f"The video encoder made no progress for {ENCODER_STALL_TIMEOUT_S:.0f} s.")
            time.sleep(ENCODER_POLL_S)

    def _dropped_video_frames(self) -> dict[str, int]:
        """Frames the streaming encoder dropped this episode (lerobot keeps this count privately)."""
        writer = getattr(self._dataset, "writer", None)
        encoder = getattr(writer, "_streaming_encoder", None)
        counts = getattr(encoder, "_dropped_frames", None) or {}
        return {k: n for k, n in counts.items() if n > 0}

    def _abandon_writer(self) -> None:
        """After a failed save: release LeRobot's writer so the next episode starts clean."""
        try:
            self._dataset.clear_episode_buffer()
        except Exception:  # noqa: BLE001 - the buffer may already be half-consumed
            pass
        try:
            self._dataset.finalize()
        except Exception:  # noqa: BLE001 - best effort; the error that matters is re-raised
            logger.exception("Closing the dataset writer after a failed save")
        self._dataset = None
        self._num_episodes = self._read_info()["total_episodes"]  # whatever LeRobot got to write

    def __repr__(self) -> str:
        return (
            f"EpisodeRecorder(root={str(self.root)!r}, episodes={self._num_episodes}, "
            f"recording={self.is_recording}, frames={self._frames})"
        )
