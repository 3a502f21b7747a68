"""Episode recorder: robot observations + actions -> a local LeRobot v3.0 dataset (lerobot 0.6.1).

One `EpisodeRecorder` owns one dataset folder and writes the features robot_io/datasets/schema.py
describes. Every `save_episode` *seals* the episode before returning: it closes both of LeRobot's
parquet writers (footers written), then points LeRobot at fresh files for the next episode
exactly as `LeRobotDataset.resume` would, but from memory (reloading the metadata from disk costs
~25 ms per episode already saved), and finally journals the dataset's metadata
(robot_io/datasets/journal.py). Each episode thus has its own data, video and metadata files, all
closed once it is saved; videos are never concatenated into an older file, so a kill cannot
damage an earlier episode's video. The cost is one small file set per episode. Reopening a
dataset (resume=True) repairs what a killed process left, from the journal.

Nothing here talks to the Hugging Face Hub: `repo_id` is a local name, nothing is pushed, and
the recorder checks the folder itself before LeRobot gets a chance to "download" missing files.

Not thread-safe: one thread (runtime/control/recording.py's writer) calls it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from robot_io.datasets import journal
from robot_io.datasets.lerobot_stats import subsample_image_stats
from robot_io.datasets.schema import (
    ACTION_KEY, ACTION_SOURCE_KEY, ACTION_SOURCES, CHUNK_KEY, EPISODE_OUTCOMES, EPISODES_DIR, FORESIGHT_KEY, IMAGE_PREFIX,
    INTERVENTION_KEY, INTERVENTION_SEGMENTS, LATENCY_KEY, OUTCOME_KEY, SEGMENT_CORRECTION, SEGMENT_KEY, SEGMENT_NONE,
    STATE_KEY, SURPRISE_KEY, TASKS_PATH, UNKNOWN, EpisodeSummary, RecorderError, dataset_features, local_repo_id,
)

logger = logging.getLogger(__name__)

# Streaming encoder queue per camera, in seconds of frames. LeRobot *drops* a frame when this
# queue is full (after blocking add_frame 0.1 s), which would leave a video shorter than its
# parquet; a few seconds of slack absorbs CPU hiccups (3 cams x 224x224 x 60 frames ~ 27 MB).
ENCODER_QUEUE_SECONDS = 4
ENCODER_POLL_S = 0.005  # how often a full encoder queue is re-checked
ENCODER_STALL_TIMEOUT_S = 30.0  # an encoder that accepts nothing this long has failed
# LeRobot's streaming encoder computes no video stats for a 1-frame episode, and the episode
# metadata table then fails to build at finalize(), taking every buffered episode with it
# (measured with lerobot 0.6.1). So an episode needs at least 2 frames.
MIN_EPISODE_FRAMES = 2
# H.264 (x264 "veryfast") instead of LeRobot's default AV1: it costs a fraction of AV1's CPU per
# frame (bench.bench_recording), which matters when 3 cameras encode beside a 15 Hz loop on 2 cores.
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


def _finite_or_unknown(value: float) -> float:
    value = float(value)
    return value if math.isfinite(value) else float(UNKNOWN)


def _segment(segment: str | None, intervention: bool) -> str:
    """The frame's intervention segment, checked against its intervention flag."""
    if segment is None:
        return SEGMENT_CORRECTION if intervention else SEGMENT_NONE
    if segment not in INTERVENTION_SEGMENTS:
        raise RecorderError(f"Intervention segment {segment!r} is not one of {list(INTERVENTION_SEGMENTS)}.")
    if (segment != SEGMENT_NONE) != bool(intervention):
        raise RecorderError(f"Intervention segment {segment!r} on a frame with intervention={bool(intervention)}: "
                            f"only intervention frames are {' or '.join(INTERVENTION_SEGMENTS[1:])}.")
    return segment


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
        self.repo_id = local_repo_id(self.root)
        self.robot_type = robot_type
        self.streaming_encoding = streaming_encoding
        self.features = dataset_features(observation_features, action_features)
        self._state_names: list[str] = list(self.features.get(STATE_KEY, {}).get("names", []))
        self._action_names: list[str] = list(self.features[ACTION_KEY]["names"])
        self._cameras = {
            key.removeprefix(IMAGE_PREFIX): ft["shape"] for key, ft in self.features.items() if key.startswith(IMAGE_PREFIX)
        }

        subsample_image_stats()
        self._dataset: Any = None  # LeRobotDataset in write mode while an episode is open
        self._task: str | None = None
        self._frames = 0
        self._interventions = 0  # frames of the episode in progress the operator produced
        self._summaries: list[EpisodeSummary] = []
        self._finalized = False

        journal.check_writable(self.root)
        exists = self.root.exists() and not journal.is_empty_dir(self.root)
        if exists and not resume:
            raise RecorderError(
                f"{self.root} already exists and is not empty. Pass resume=True to append episodes "
                "to the dataset there, or choose another folder."
            )
        if exists and resume and journal.creation_was_interrupted(self.root):
            logger.warning("%s holds a dataset whose creation was interrupted; creating it again.", self.root)
            shutil.rmtree(self.root)
            exists = False
        if exists:
            self._check_existing_dataset(recover=True)
            journal.remove_stale_temporaries(self.root)
            self._num_episodes = journal.read_info(self.root)["total_episodes"]
            self._summaries = journal.journaled_summaries(self.root, self._num_episodes)
        else:
            self._create()
            self._num_episodes = 0
            journal.write_journal(self.root, self._summaries)

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
        surprise_score: float = UNKNOWN,
        segment: str | None = None,
    ) -> None:
        """Buffer one control tick. Extra observation keys (e.g. "sim_state") are ignored.
        segment: one of INTERVENTION_SEGMENTS; None: "correction" on intervention frames, else "none"."""
        if not self.is_recording:
            raise RecorderError("add_frame called with no episode in progress: call start_episode first.")
        frame = self._build_frame(observation, action, intervention, source)
        frame[CHUNK_KEY] = np.array([int(chunk_id)], dtype=np.int64)
        frame[LATENCY_KEY] = np.array([_finite_or_unknown(inference_latency_ms)], dtype=np.float32)
        frame[FORESIGHT_KEY] = np.array([_finite_or_unknown(foresight_psnr_db)], dtype=np.float32)
        frame[SURPRISE_KEY] = np.array([_finite_or_unknown(surprise_score)], dtype=np.float32)
        frame[SEGMENT_KEY] = np.array([INTERVENTION_SEGMENTS.index(_segment(segment, intervention))], dtype=np.int64)
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
            journal.write_journal(self.root, self._summaries)
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
            journal.remove_stale_temporaries(self.root)
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
        journal.remove_stale_temporaries(self.root)
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

        if journal.is_empty_dir(self.root):
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

    def _check_existing_dataset(self, recover: bool = False) -> None:
        """The folder holds a LeRobot dataset with all its metadata and this robot's features.
        recover: also repair what a killed process left (only when this process opens the folder)."""
        info = journal.check_existing_dataset(self.root, self.fps, self.features)
        saved = journal.read_journal(self.root)
        if recover and saved is not None:
            journal.repair_from_journal(self.root, saved)
            info = journal.read_info(self.root)
        elif recover:  # a dataset from before the journal, or from another tool
            journal.recover_unfinalized(self.root)
            journal.write_journal(self.root, self._summaries)
            info = journal.read_info(self.root)
        # LeRobot treats any missing metadata file as "download it from the Hub".
        if info.get("total_episodes", 0) > 0:
            missing = [p for p in (TASKS_PATH,) if not (self.root / p).is_file()]
            if not any((self.root / EPISODES_DIR).glob("*/*.parquet")):
                missing.append(f"{EPISODES_DIR}/*/*.parquet")
            if missing:
                raise RecorderError(f"The dataset at {self.root} is damaged: missing {missing}.")

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
        saved = journal.read_journal(self.root)
        try:
            journal.repair_from_journal(self.root, saved)
        except Exception:  # noqa: BLE001 - repaired again when the dataset is next opened
            logger.exception("Repairing %s after a failed save", self.root)
        journal.remove_stale_temporaries(self.root)
        self._num_episodes = saved["episodes"]
        self._summaries = self._summaries[: self._num_episodes]

    def __repr__(self) -> str:
        return (
            f"EpisodeRecorder(root={str(self.root)!r}, episodes={self._num_episodes}, "
            f"recording={self.is_recording}, frames={self._frames})"
        )
