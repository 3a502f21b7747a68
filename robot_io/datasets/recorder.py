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
- `chunk_id`                  int64 (1,): the policy chunk the action came from, -1 when none
                              (operator, hold). Chunk ids count up within one console session.
- `inference_latency_ms`      float32 (1,): how long that chunk took to compute, -1 when none.
- `foresight_psnr_db`         float32 (1,): PSNR of the foresight judged at this tick (the
                              prediction made 15 ticks earlier against this frame, mean over
                              cameras), -1 on ticks where none was judged. (-1, not NaN, so
                              LeRobot's feature statistics stay finite.)
- `episode_outcome`           int64 (1,): index into `EPISODE_OUTCOMES`, the same on every frame
                              of an episode; set when it is saved (operator's verdict or the
                              sim's detector).
- `task`                      the instruction, as LeRobot's `add_frame` expects it.

The journal (below) also keeps a summary per saved episode (task, frames, outcome, frames with
an intervention) so a console can list what is on disk without reading the data files.

Durability (a SIGKILL at any moment loses at most the episode in progress): LeRobot keeps its
data and episode-metadata parquet writers open across episodes (footers only at rotation or
`finalize()`), buffers up to 10 episodes' metadata in memory, and writes info.json, stats.json and
tasks.parquet in place (a kill mid-write truncates them). So every `save_episode` *seals* the
episode before returning: it closes both parquet writers (footers written), then points LeRobot
at fresh files for the next episode exactly as `LeRobotDataset.resume` would, but from memory
(reloading the metadata from disk costs ~25 ms per episode already saved), and finally records
the dataset's metadata in a journal, `meta/recorder_journal.json`, replaced atomically. Each
episode thus has its own data, video and metadata files, all closed once it is saved; videos are
never concatenated into an older file, so a kill cannot damage an earlier episode's video. The
cost is one small file set per episode. Reopening a dataset (resume=True) restores the metadata
files from the journal and moves every file no journaled episode refers to (the killed
episode's half-written files) to a folder beside the dataset (see `_repair_from_journal`).

Nothing here talks to the Hugging Face Hub: `repo_id` is a local name, nothing is pushed, and
the recorder checks the folder itself before LeRobot gets a chance to "download" missing files.

Not thread-safe: one thread (runtime/control/recording.py's writer) calls it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# --- configuration --------------------------------------------------------------------------

SOURCE_POLICY, SOURCE_OPERATOR, SOURCE_HOLD = "policy", "operator", "hold"  # who produced a tick's action
ACTION_SOURCES: tuple[str, ...] = (SOURCE_POLICY, SOURCE_OPERATOR, SOURCE_HOLD)  # code = index; never reorder
EPISODE_OUTCOMES: tuple[str, ...] = ("failure", "success", "unknown")  # code = index; never reorder
INTERVENTION_KEY = "intervention"  # lerobot 0.6.1's DAgger name for "the human produced this action"
ACTION_SOURCE_KEY = "actor"
CHUNK_KEY = "chunk_id"
LATENCY_KEY = "inference_latency_ms"
FORESIGHT_KEY = "foresight_psnr_db"
OUTCOME_KEY = "episode_outcome"
UNKNOWN = -1  # chunk id, latency and PSNR of frames that have none
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
# The last durable state of the dataset (see module docstring), replaced atomically after each save.
JOURNAL_PATH = "meta/recorder_journal.json"
JOURNAL_VERSION = 1
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
    features[CHUNK_KEY] = {"dtype": "int64", "shape": (1,), "names": None}
    features[LATENCY_KEY] = {"dtype": "float32", "shape": (1,), "names": None}
    features[FORESIGHT_KEY] = {"dtype": "float32", "shape": (1,), "names": None}
    features[OUTCOME_KEY] = {"dtype": "int64", "shape": (1,), "names": list(EPISODE_OUTCOMES)}
    return features


@dataclass(frozen=True)
class EpisodeSummary:
    """One saved episode, as the console's episode list shows it."""

    index: int
    task: str
    frames: int
    outcome: str  # one of EPISODE_OUTCOMES
    intervention_frames: int  # frames the operator produced; -1 when not known (older datasets)


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


def read_journal(root: Path) -> dict | None:
    """The recorder's journal of the dataset at `root` (see the module docstring), or None."""
    path = Path(root) / JOURNAL_PATH
    if not path.is_file():
        return None
    try:
        journal = json.loads(path.read_text())
    except ValueError as err:  # cannot happen by a kill (atomic replace); someone edited it
        raise RecorderError(f"{path} is not valid JSON: {err}") from err
    if journal.get("version") != JOURNAL_VERSION:
        raise RecorderError(f"{path} has version {journal.get('version')}, expected {JOURNAL_VERSION}.")
    return journal


def check_existing_dataset(root: Path, fps: int, features: dict[str, dict]) -> dict:
    """The info of the dataset at `root`, or a RecorderError naming every way it differs from
    `features` (and fps) or why it is no dataset. Reads only metadata: callers can check a
    dataset before recording starts, and nothing is ever written."""
    root = Path(root)
    info_path = root / "meta" / "info.json"
    journal = read_journal(root)
    if not info_path.is_file() and journal is None:
        raise RecorderError(f"{root} is not empty and holds no LeRobot dataset (no meta/info.json).")
    if not os.access(root, os.W_OK | os.X_OK):
        raise RecorderError(f"Cannot record to {root}: it is not writable.")
    if journal is not None:
        info = journal["info"]  # info.json itself may be half-written by a killed process
    else:
        try:
            info = json.loads(info_path.read_text())
        except ValueError as err:
            raise RecorderError(f"{info_path} is not valid JSON: {err}") from err
    diffs = feature_differences(features, info.get("features", {}))
    if info.get("fps") != fps:
        diffs.append(f"fps: dataset has {info.get('fps')}, recorder has {fps}")
    if diffs:
        raise RecorderError(
            f"The dataset at {root} was recorded with different features; nothing was "
            "written. Differences:\n  " + "\n  ".join(diffs)
        )
    return info


def check_recordable(root: Path, fps: int, observation_features: dict, action_features: dict) -> None:
    """Everything that would make recording to `root` fail, checked before any recording starts:
    the folder writable, and an existing dataset there recorded with this robot's features."""
    check_writable(root)
    root = Path(root).expanduser()
    if root.exists() and not _is_empty_dir(root):
        check_existing_dataset(root, int(fps), dataset_features(observation_features, action_features))


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


TASKS_PATH = "meta/tasks.parquet"


def _write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` by `data` so a kill leaves either the old or the new content, never a mix.
    (Survives a killed process; surviving a power cut would also need fsync.)"""
    temporary = path.with_name(path.name + ".partial")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _write_tasks_atomically(path: Path, tasks: list[str]) -> None:
    """meta/tasks.parquet as LeRobot's `write_tasks` lays it out: index "task", column task_index."""
    import pandas as pd

    temporary = path.with_name(path.name + ".partial")
    pd.DataFrame({"task_index": range(len(tasks))}, index=pd.Index(tasks, name="task")).to_parquet(temporary)
    os.replace(temporary, path)


def _finite_or_unknown(value: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else float(UNKNOWN)


def _json_or_none(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _parquet_readable(path: Path) -> bool:
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
        return True
    except Exception:  # noqa: BLE001 - ArrowInvalid / OSError: no footer, truncated
        return False


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
        self._interventions = 0  # frames of the episode in progress the operator produced
        self._summaries: list[EpisodeSummary] = []
        self._finalized = False

        check_writable(self.root)
        exists = self.root.exists() and not _is_empty_dir(self.root)
        if exists and not resume:
            raise RecorderError(
                f"{self.root} already exists and is not empty. Pass resume=True to append episodes "
                "to the dataset there, or choose another folder."
            )
        if exists and resume and self._creation_was_interrupted():
            logger.warning("%s holds a dataset whose creation was interrupted; creating it again.", self.root)
            shutil.rmtree(self.root)
            exists = False
        if exists:
            self._check_existing_dataset(recover=True)
            self._remove_stale_temporaries()
            self._num_episodes = self._read_info()["total_episodes"]
            self._summaries = self._journaled_summaries()
        else:
            self._create()
            self._num_episodes = 0
            self._write_journal()

    # --- properties -------------------------------------------------------------------------
    @property
    def num_episodes(self) -> int:
        """Episodes saved in the dataset, earlier sessions included."""
        return self._num_episodes

    @property
    def episodes(self) -> list[EpisodeSummary]:
        """Every saved episode, oldest first."""
        return list(self._summaries)

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
        self._interventions = 0

    def add_frame(
        self,
        observation: dict,
        action: dict[str, float],
        intervention: bool,
        source: str,
        chunk_id: int = UNKNOWN,
        inference_latency_ms: float = UNKNOWN,
        foresight_psnr_db: float = UNKNOWN,
    ) -> None:
        """Buffer one control tick. Extra observation keys (e.g. "sim_state") are ignored."""
        if not self.is_recording:
            raise RecorderError("add_frame called with no episode in progress: call start_episode first.")
        frame = self._build_frame(observation, action, intervention, source)
        frame[CHUNK_KEY] = np.array([int(chunk_id)], dtype=np.int64)
        frame[LATENCY_KEY] = np.array([_finite_or_unknown(inference_latency_ms)], dtype=np.float32)
        frame[FORESIGHT_KEY] = np.array([_finite_or_unknown(foresight_psnr_db)], dtype=np.float32)
        frame[OUTCOME_KEY] = np.array([EPISODE_OUTCOMES.index("unknown")], dtype=np.int64)  # set at save
        self._wait_for_encoder_room()
        self._dataset.add_frame(frame)
        self._frames += 1
        self._interventions += bool(intervention)

    def save_episode(self, outcome: str = "unknown") -> int:
        """Write the episode in progress with its outcome (one of EPISODE_OUTCOMES); returns its
        index in the dataset (0, 1, ... across sessions)."""
        if outcome not in EPISODE_OUTCOMES:
            raise RecorderError(f"Episode outcome {outcome!r} is not one of {list(EPISODE_OUTCOMES)}.")
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
        summary = EpisodeSummary(index, self._task, self._frames, outcome, self._interventions)
        try:
            buffer = self._dataset.writer.episode_buffer  # frames are buffered until this save
            buffer[OUTCOME_KEY] = [np.array([EPISODE_OUTCOMES.index(outcome)], dtype=np.int64)] * self._frames
            self._dataset.save_episode()
            self._seal_saved_episode()
            self._summaries.append(summary)
            self._write_journal()
        except Exception as err:
            self._abandon_writer()
            reason = "the disk is full" if getattr(err, "errno", None) == errno.ENOSPC else str(err)
            raise RecorderError(
                f"Saving episode {index} to {self.root} failed ({reason}). That episode was dropped; "
                f"the {self._num_episodes} episodes saved before it are intact."
            ) from err
        finally:
            self._task = None
            self._frames = 0
        self._num_episodes = index + 1
        return index

    def _seal_saved_episode(self) -> None:
        """Close the files of the episode LeRobot just saved and start the next one in new files.

        LeRobot 0.6.1 internals (checked against dataset_writer.py / dataset_metadata.py):
        `DatasetWriter._pq_writer` holds the data file open, `LeRobotDatasetMetadata._close_writer`
        flushes the buffered episode rows and closes meta/episodes/. Both would *overwrite* their
        file if reopened at the same path, so the next episode must go to the next file. LeRobot
        does exactly that after `resume()`, where `latest_episode` is None and `meta.episodes[-1]`
        names the last files; we set up that state from memory instead of reloading from disk.
        Videos follow the same rule (`_save_episode_video` starts a new file, no concatenation).
        """
        writer, meta = self._dataset.writer, self._dataset.meta
        writer.close_writer()
        meta._close_writer()
        last = {key: value[0] if isinstance(value, list) else value for key, value in meta.latest_episode.items()}
        meta.episodes = [last]  # only [-1] is read while writing (see docstring)
        meta.latest_episode = None
        writer._latest_episode = None

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
        info = check_existing_dataset(self.root, self.fps, self.features)
        journal = self._read_journal()
        if recover and journal is not None:
            self._repair_from_journal(journal)
            info = self._read_info()
        elif recover:  # a dataset from before the journal, or from another tool
            self._recover_unfinalized()
            self._write_journal()
            info = self._read_info()
        # LeRobot treats any missing metadata file as "download it from the Hub".
        if info.get("total_episodes", 0) > 0:
            missing = [p for p in ("meta/tasks.parquet",) if not (self.root / p).is_file()]
            if not any((self.root / "meta" / "episodes").glob("*/*.parquet")):
                missing.append("meta/episodes/*/*.parquet")
            if missing:
                raise RecorderError(f"The dataset at {self.root} is damaged: missing {missing}.")

    # --- durability: journal and repair ---------------------------------------------------
    def _read_journal(self) -> dict | None:
        return read_journal(self.root)

    def _write_journal(self) -> None:
        """Record the dataset's metadata files as they are now, all of its episodes being complete."""
        info = self._read_info()
        stats_path = self.root / "meta" / "stats.json"
        journal = {
            "version": JOURNAL_VERSION,
            "episodes": info["total_episodes"],
            "info": info,
            "stats": json.loads(stats_path.read_text()) if stats_path.is_file() else None,
            "tasks": self._read_tasks() or [],
            "summaries": [asdict(summary) for summary in self._summaries],
        }
        _write_atomically(self.root / JOURNAL_PATH, json.dumps(journal).encode())

    def _journaled_summaries(self) -> list[EpisodeSummary]:
        """The journal's episode summaries; for datasets journaled before summaries existed (or
        without a journal), what meta/episodes tells: task and length, outcome unknown."""
        journal = self._read_journal() or {}
        kept = [EpisodeSummary(**row) for row in journal.get("summaries", []) if row["index"] < self._num_episodes]
        if len(kept) == self._num_episodes:
            return kept
        import pyarrow.parquet as pq

        rows = []
        for path in sorted((self.root / "meta" / "episodes").glob("*/*.parquet")):
            rows += pq.read_table(path, columns=["episode_index", "tasks", "length"]).to_pylist()
        rows.sort(key=lambda row: row["episode_index"])
        summaries = [EpisodeSummary(row["episode_index"], ", ".join(row["tasks"]), int(row["length"]), "unknown", -1)
                     for row in rows[: self._num_episodes]]
        self._summaries = summaries
        self._write_journal()
        return summaries

    def _read_tasks(self) -> list[str] | None:
        """Tasks in task_index order; None when meta/tasks.parquet is missing or unreadable."""
        import pandas as pd

        try:
            tasks = pd.read_parquet(self.root / TASKS_PATH)
        except Exception:  # noqa: BLE001 - missing, or half-written by a killed process
            return None
        return [str(task) for task in tasks.sort_values("task_index").index]

    def _creation_was_interrupted(self) -> bool:
        """A kill during `_create` leaves meta/ with no journal, maybe a half-written info.json,
        and no episode files. Such a folder holds nothing worth keeping."""
        if (self.root / JOURNAL_PATH).exists() or not (self.root / "meta").is_dir():
            return False
        with contextlib.suppress(OSError, ValueError):
            self._read_info()
            return False  # a readable info.json: the ordinary path handles it
        lerobot_entries = all(p.name in ("meta", "data", "videos", "images") or p.name.startswith("tmp")
                              for p in self.root.iterdir())
        episode_files = any(p.suffix in (".parquet", ".mp4") for p in self.root.rglob("*") if p.is_file())
        return lerobot_entries and not episode_files

    def _repair_from_journal(self, journal: dict) -> None:
        """Bring the folder back to the journal's state: the metadata files as journaled, the
        journaled episodes' files, nothing else.

        A kill mid-save can leave: info.json/stats.json/tasks.parquet half-written or counting
        the killed episode; a data or metadata parquet file without footer; finished or partial
        mp4s of the killed episode. Files no journaled episode refers to are moved to a folder
        beside the dataset (never deleted: a bug here must not destroy data). Idempotent, so a
        kill during the repair is repaired by the next open.
        """
        meta = self.root / "meta"
        restored = []
        if _json_or_none(meta / "info.json") != journal["info"]:
            _write_atomically(meta / "info.json", json.dumps(journal["info"], indent=4).encode())
            restored.append("info.json")
        stats_path = meta / "stats.json"
        if journal["stats"] is None and stats_path.exists():
            stats_path.unlink()
            restored.append("stats.json")
        elif journal["stats"] is not None and _json_or_none(stats_path) != journal["stats"]:
            _write_atomically(stats_path, json.dumps(journal["stats"], indent=4).encode())
            restored.append("stats.json")
        tasks_path = self.root / TASKS_PATH
        if not journal["tasks"] and tasks_path.exists():
            tasks_path.unlink()
            restored.append("tasks.parquet")
        elif journal["tasks"] and self._read_tasks() != journal["tasks"]:
            _write_tasks_atomically(tasks_path, journal["tasks"])
            restored.append("tasks.parquet")

        count, info = journal["episodes"], journal["info"]
        keep = {tasks_path} if journal["tasks"] else set()
        kept_rows = []
        for path, rows in self._episode_rows(info).items():
            durable = [row for row in rows or [] if row["episode_index"] < count]
            if durable and len(durable) != len(rows):  # sealing never mixes them in one file
                raise RecorderError(f"The dataset at {self.root} is damaged: {path} mixes saved and unsaved episodes.")
            if durable:
                keep.add(path)
                kept_rows += durable
        if sorted(row["episode_index"] for row in kept_rows) != list(range(count)):
            raise RecorderError(
                f"The dataset at {self.root} is damaged: the journal lists {count} episodes but "
                f"meta/episodes holds {sorted(row['episode_index'] for row in kept_rows)}."
            )
        keep |= self._check_referenced_files(info, kept_rows)
        moved, aside = self._move_aside(keep)
        if restored or moved:
            logger.warning(
                "%s was not closed cleanly (the recorder was killed?): kept its %d saved episodes, "
                "restored %s from the journal, moved %d unusable files to %s.",
                self.root, count, restored or "nothing", moved, aside,
            )

    def _episode_rows(self, info: dict) -> dict[Path, list[dict] | None]:
        """The rows of each meta/episodes parquet file (file references only); None: unreadable."""
        import pyarrow.parquet as pq

        video_keys = [k for k, ft in info["features"].items() if ft.get("dtype") == "video"]
        columns = ["episode_index", "length", "data/chunk_index", "data/file_index"]
        columns += [f"videos/{k}/{c}" for k in video_keys for c in ("chunk_index", "file_index")]
        rows: dict[Path, list[dict] | None] = {}
        for path in sorted((self.root / "meta" / "episodes").glob("*/*.parquet")):
            try:
                rows[path] = pq.read_table(path, columns=columns).to_pylist()
            except Exception:  # noqa: BLE001 - ArrowInvalid / OSError: no footer, truncated
                rows[path] = None
        return rows

    def _check_referenced_files(self, info: dict, rows: list[dict]) -> set[Path]:
        """The data and video files `rows` refer to; all must exist and data files be readable."""
        video_keys = [k for k, ft in info["features"].items() if ft.get("dtype") == "video"]
        files = set()
        for row in rows:
            files.add(self.root / info["data_path"].format(
                chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]))
            for key in video_keys:
                files.add(self.root / info["video_path"].format(
                    video_key=key,
                    chunk_index=row[f"videos/{key}/chunk_index"],
                    file_index=row[f"videos/{key}/file_index"],
                ))
        missing = sorted(str(p) for p in files if not p.exists())
        unreadable = sorted(str(p) for p in files if p.suffix == ".parquet" and p.exists() and not _parquet_readable(p))
        if missing or unreadable:
            raise RecorderError(
                f"The dataset at {self.root} is damaged beyond automatic repair: "
                f"unreadable {unreadable}, missing {missing}."
            )
        return files

    def _move_aside(self, keep: set[Path]) -> tuple[int, Path]:
        """Move every episode file not in `keep` to `<root>.unfinalized-<time>-<pid>/`."""
        aside = self.root.with_name(f"{self.root.name}.unfinalized-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        moved = 0
        for folder in ("data", "videos", "meta/episodes"):
            for path in sorted((self.root / folder).rglob("*")):
                if path.is_file() and path not in keep:
                    target = aside / path.relative_to(self.root)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(path), str(target))
                    moved += 1
        return moved, aside

    def _recover_unfinalized(self) -> None:
        """Repair a dataset without journal (recorded before it existed, or by another tool)
        whose writer never finalized.

        Every episode whose metadata row is readable on disk is complete; the rest cannot be
        read. So: keep those, move every file they do not reference aside (never delete), and
        set info.json's counts to the kept episodes. stats.json keeps the lost episodes'
        contribution (it is a running aggregate), a small bias in normalisation stats.
        """
        info = self._read_info()
        by_file = self._episode_rows(info)
        rows = sorted((row for file_rows in by_file.values() for row in file_rows or []),
                      key=lambda row: row["episode_index"])
        broken = [p for p, file_rows in by_file.items() if file_rows is None]
        broken += [p for p in (self.root / "data").glob("*/*.parquet") if not _parquet_readable(p)]
        if not broken and len(rows) == info["total_episodes"]:
            return  # finalized cleanly

        if [row["episode_index"] for row in rows] != list(range(len(rows))):
            raise RecorderError(f"The dataset at {self.root} is damaged beyond automatic repair (episode gaps).")
        keep = {self.root / TASKS_PATH} | {p for p, file_rows in by_file.items() if file_rows is not None}
        keep |= self._check_referenced_files(info, rows)
        moved, aside = self._move_aside(keep)
        lost = info["total_episodes"] - len(rows)
        info["total_episodes"] = len(rows)
        info["total_frames"] = int(sum(row["length"] for row in rows))
        info["splits"] = {"train": f"0:{len(rows)}"}
        _write_atomically(self.root / "meta" / "info.json", json.dumps(info, indent=4, ensure_ascii=False).encode())
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
        for partial in (self.root / "meta").glob("*.partial"):  # see _write_atomically
            partial.unlink()
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
        """After a failed save (disk full, ...): drop the episode and go back to the journal.

        LeRobot's buffered metadata row for the failed episode is thrown away first, so closing
        its writers cannot publish that episode; then the dataset is repaired exactly as after a
        kill. The next start_episode reopens it."""
        dataset, self._dataset = self._dataset, None
        with contextlib.suppress(Exception):
            dataset.writer.cancel_pending_videos()
        with contextlib.suppress(Exception):
            dataset.meta._metadata_buffer.clear()
        try:
            dataset.finalize()
        except Exception:  # noqa: BLE001 - best effort; the error that matters is re-raised
            logger.exception("Closing the dataset writer after a failed save")
        journal = self._read_journal()
        try:
            self._repair_from_journal(journal)
        except Exception:  # noqa: BLE001 - repaired again when the dataset is next opened
            logger.exception("Repairing %s after a failed save", self.root)
        self._remove_stale_temporaries()
        self._num_episodes = journal["episodes"]
        self._summaries = self._summaries[: self._num_episodes]

    def __repr__(self) -> str:
        return (
            f"EpisodeRecorder(root={str(self.root)!r}, episodes={self._num_episodes}, "
            f"recording={self.is_recording}, frames={self._frames})"
        )
