"""Recording beside the control loop, in a child process.

Video encoding holds Python's GIL for milliseconds at a time; in the control process it made
ticks late. So one writer process owns the `EpisodeRecorder` and the control thread only puts
requests on a queue (frames are pickled by the queue's feeder thread, a memcpy). The queue is
unbounded on purpose: a slow disk makes it grow (visible as `backlog`), it never drops a frame.

The writer ignores SIGINT/SIGTERM so a Ctrl-C in the terminal cannot cut an episode short: the
parent decides (save or discard) and then asks it to finalize. If the parent dies (SIGKILL), the
writer discards the episode in progress and finalizes what was saved.

Between episodes another part of the console may edit the dataset's folder (curation):
`released()` has the writer finalize and let go of the dataset, refuses new episodes meanwhile,
and has the writer reopen the (edited) dataset afterwards.
"""

from __future__ import annotations

import dataclasses
import contextlib
import multiprocessing as mp
import os
import queue
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from robot_io.datasets.schema import EpisodeSummary, UNKNOWN
from robot_io.datasets.recorder import EpisodeRecorder

PARENT_CHECK_S = 1.0  # how often an idle writer checks that the console is still alive
CLOSE_TIMEOUT_S = 300.0
RELEASE_TIMEOUT_S = 120.0  # the writer first writes what is queued, so this covers saving a long episode
WRITER_NICENESS = 10  # encoding yields the CPU to the control loop; its queue absorbs the delay  # saving a long episode and finalizing can take a while


class DatasetBusy(RuntimeError):
    """The dataset cannot be let go of now (an episode is being recorded), or is let go of (being edited)."""


@dataclass(frozen=True)
class RecorderSpec:
    """Everything the writer process needs to open the dataset (picklable)."""

    root: Path
    fps: int
    observation_features: dict
    action_features: dict
    robot_type: str


@dataclass(frozen=True)
class RecordingStatus:
    dataset: str
    active: bool  # an episode is being recorded
    episode_frames: int  # frames queued for the episode in progress (or the last one)
    saved_episodes: int
    backlog: int  # frames queued but not yet written
    frames_written: int
    last_message: str
    error: str
    episodes: tuple[EpisodeSummary, ...] = ()  # saved episodes on disk, oldest first (known once opened)


class RecordingWorker:
    def __init__(self, spec: RecorderSpec) -> None:
        self._spec = spec
        self._feature_keys = [*spec.observation_features]
        context = mp.get_context("spawn")  # no fork: the parent holds EGL contexts and threads
        self._requests = context.Queue()
        self._replies = context.Queue()
        self._process = context.Process(
            target=_writer_main, args=(spec, self._requests, self._replies), name="recording-writer", daemon=True
        )
        self._process.start()
        self._lock = threading.Lock()
        self._active = False
        self._episode_frames = 0
        self._saved = 0
        self._queued = 0
        self._written = 0
        self._pending = 0  # requests sent and not yet answered
        self._message = ""
        self._error = ""
        self._episodes: tuple[EpisodeSummary, ...] = ()
        self._released = False  # the dataset is let go of for an edit: no episode may start
        self._release_done = threading.Event()
        self._release_error = ""
        self._closed = threading.Event()
        self._listener = threading.Thread(target=self._listen, name="recording-replies", daemon=True)
        self._listener.start()

    # --- called from the control thread -------------------------------------------------
    @property
    def active(self) -> bool:
        return self._active

    @property
    def root(self) -> Path:
        return self._spec.root

    def start_episode(self, task: str) -> None:
        """Start recording an episode; DatasetBusy while the dataset is let go of for an edit."""
        with self._lock:
            if self._released:
                raise DatasetBusy(f"{self._spec.root.name} is being edited in the dataset panel: record when it is done.")
            self._active = True
            self._episode_frames = 0
            self._error = ""
        self._send("start", task)

    def add_frame(
        self, observation: dict, action: dict[str, float], intervention: bool, source: str,
        chunk_id: int = UNKNOWN, inference_latency_ms: float = UNKNOWN, foresight_psnr_db: float = UNKNOWN,
        surprise_score: float = UNKNOWN, segment: str | None = None,
    ) -> None:
        """One tick, tagged as robot_io/datasets/recorder.py documents."""
        if not self._active:
            return
        features = {k: observation[k] for k in self._feature_keys if k in observation}  # drop privileged extras
        with self._lock:
            self._episode_frames += 1
            self._queued += 1
        self._send("frame", (features, action, intervention, source, chunk_id, inference_latency_ms, foresight_psnr_db,
                             surprise_score, segment))

    def save_episode(self, outcome: str = "unknown") -> None:
        """Save the episode in progress with its outcome (robot_io.datasets.recorder.EPISODE_OUTCOMES)."""
        self._end_episode("save", outcome)

    def discard_episode(self) -> None:
        self._end_episode("discard", None)

    def close(self, save_in_progress: bool, outcome: str = "unknown", timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Save (with `outcome`) or discard the episode in progress, finalize the dataset, stop the writer."""
        if self._active and save_in_progress:
            self.save_episode(outcome)
        elif self._active:
            self.discard_episode()
        self._send("finalize", None)
        self._process.join(timeout_s)
        if self._process.is_alive():
            self._process.terminate()
        self._closed.set()
        self._listener.join(timeout=5)

    @contextlib.contextmanager
    def released(self, timeout_s: float = RELEASE_TIMEOUT_S) -> Iterator[None]:
        """The dataset closed by the writer (every queued request written first) for the duration
        of the block, no episode starting meanwhile; then the writer reopens it. DatasetBusy when an
        episode is being recorded, another edit holds it, or the writer does not let go in time."""
        with self._lock:
            if self._active:
                raise DatasetBusy(f"an episode is being recorded into {self._spec.root.name}: save or discard it first.")
            if self._released:
                raise DatasetBusy(f"{self._spec.root.name} is already being edited.")
            if not self._process.is_alive():
                raise DatasetBusy(f"the recording writer has stopped (exit code {self._process.exitcode}).")
            self._released = True
            self._release_done.clear()
            self._release_error = ""
        try:
            self._send("release", None)
            if not self._release_done.wait(timeout_s):
                raise DatasetBusy(f"the recording writer did not close {self._spec.root.name} within {timeout_s:.0f} s.")
            if self._release_error:
                raise DatasetBusy(f"the recording writer could not close {self._spec.root.name}: {self._release_error}")
            yield
        finally:
            self._send("reopen", None)  # queued before any start: the next episode sees the edited dataset
            with self._lock:
                self._released = False

    def status(self) -> RecordingStatus:
        with self._lock:
            return RecordingStatus(
                dataset=str(self._spec.root),
                active=self._active,
                episode_frames=self._episode_frames,
                saved_episodes=self._saved,
                backlog=self._queued - self._written,
                frames_written=self._written,
                last_message=self._message,
                error=self._error,
                episodes=self._episodes,
            )

    def _end_episode(self, how: str, payload: Any) -> None:
        with self._lock:
            self._active = False
        self._send(how, payload)

    def _send(self, kind: str, payload: Any) -> None:
        with self._lock:
            self._pending += 1
        self._requests.put((kind, payload))

    # --- replies from the writer --------------------------------------------------------------
    def _listen(self) -> None:
        while not (self._closed.is_set() and self._replies.empty()):
            try:
                kind, ok, info = self._replies.get(timeout=0.2)
            except queue.Empty:
                if not self._process.is_alive() and self._replies.empty():
                    with self._lock:
                        if self._pending and not self._closed.is_set():
                            self._error = f"The recording writer stopped (exit code {self._process.exitcode})."
                            self._active = False
                    if self._closed.is_set():
                        return
                continue
            if kind == "release":
                self._release_error = "" if ok else str(info)
                self._release_done.set()
            with self._lock:
                if kind != "open":
                    self._pending -= 1
                if kind == "frame":
                    self._written += 1
                if not ok and kind != "release":  # a failed release is the caller of released()'s to report
                    self._active = False
                    self._error = f"Recording failed ({kind}): {info}"
                elif kind in ("open", "save"):
                    self._saved = info["episodes"]
                    self._episodes = tuple(EpisodeSummary(**row) for row in info["summaries"])
                    if kind == "save":
                        summary = self._episodes[-1]
                        self._message = (f"Saved episode {info['index']} ({summary.frames} frames, "
                                         f"{summary.outcome}) to {self._spec.root}.")
                elif kind == "discard":
                    self._message = "Discarded the episode in progress."


def _writer_main(spec: RecorderSpec, requests: mp.Queue, replies: mp.Queue) -> None:
    """The writer process: applies requests in order; answers each one (kind, ok, info)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.nice(WRITER_NICENESS)
    parent = os.getppid()
    import lerobot.datasets.lerobot_dataset  # noqa: F401 - pay the slow import before the first episode
    recorder: EpisodeRecorder | None = None
    skipping = False  # the episode failed to start or write: drop its frames, keep the rest
    while True:
        try:
            kind, payload = requests.get(timeout=PARENT_CHECK_S)
        except queue.Empty:
            if os.getppid() != parent:  # the console died: keep what was saved
                if recorder is not None:
                    recorder.finalize()
                return
            continue
        info: Any = None
        try:
            if kind == "start":
                skipping = False
                if recorder is None:
                    recorder = _open_recorder(spec)
                    replies.put(("open", True, _listing(recorder)))  # not a request: no pending
                recorder.start_episode(payload)
            elif kind == "frame":
                if not skipping:
                    recorder.add_frame(*payload)
            elif kind == "save":
                if not skipping and recorder is not None:
                    index = recorder.save_episode(payload)
                    info = {"index": index, **_listing(recorder)}
                else:
                    kind = "discard"
            elif kind == "discard":
                if recorder is not None:
                    recorder.discard_episode()
            elif kind == "release":
                if recorder is not None:
                    recorder.finalize()
                    recorder = None
            elif kind == "reopen":
                if recorder is None and spec.root.exists():
                    recorder = _open_recorder(spec)
                    replies.put(("open", True, _listing(recorder)))  # not a request: no pending
            elif kind == "finalize":
                if recorder is not None:
                    recorder.finalize()
                replies.put((kind, True, None))
                return
            replies.put((kind, True, info))
        except Exception as err:  # noqa: BLE001 - any writer failure must reach the operator
            skipping = kind in ("start", "frame")
            if recorder is not None and kind != "finalize":
                try:
                    recorder.discard_episode()
                except Exception:  # noqa: BLE001 - the buffer may already be gone
                    pass
            replies.put((kind, False, f"{type(err).__name__}: {err}"))
            if kind == "finalize":
                return


def _open_recorder(spec: RecorderSpec) -> EpisodeRecorder:
    return EpisodeRecorder(spec.root, spec.fps, spec.observation_features, spec.action_features,
                           resume=spec.root.exists(), robot_type=spec.robot_type)


def _listing(recorder: EpisodeRecorder) -> dict:
    return {"episodes": recorder.num_episodes, "summaries": [dataclasses.asdict(e) for e in recorder.episodes]}
