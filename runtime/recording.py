"""Recording beside the control loop: frames go through a queue to one writer thread, so
video encoding and episode saves never delay a control tick.

The queue is unbounded on purpose: a slow disk makes it grow (visible as `backlog`), it never
drops a frame. The writer owns the `EpisodeRecorder`; everything it does is in order.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from robot_io.recorder import EpisodeRecorder


@dataclass(frozen=True)
class RecordingStatus:
    dataset: str
    active: bool  # an episode is being recorded
    episode_frames: int  # frames queued for the episode in progress
    saved_episodes: int
    backlog: int  # frames queued but not yet written
    frames_written: int
    last_message: str
    error: str


class RecordingWorker:
    def __init__(self, make_recorder: Callable[[], EpisodeRecorder], dataset_name: str) -> None:
        self._make_recorder = make_recorder
        self._recorder: EpisodeRecorder | None = None
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._lock = threading.Lock()
        self._dataset = dataset_name
        self._active = False
        self._episode_frames = 0
        self._saved = 0
        self._written = 0
        self._queued = 0
        self._message = ""
        self._error = ""
        self._thread = threading.Thread(target=self._run, name="recording-writer", daemon=True)
        self._thread.start()

    # --- called from the control thread -------------------------------------------------
    @property
    def active(self) -> bool:
        return self._active

    def start_episode(self, task: str) -> None:
        with self._lock:
            self._active = True
            self._episode_frames = 0
            self._error = ""
        self._queue.put(("start", task))

    def add_frame(self, observation: dict, action: dict[str, float], intervention: bool, source: str) -> None:
        if not self._active:
            return
        with self._lock:
            self._episode_frames += 1
            self._queued += 1
        self._queue.put(("frame", (observation, action, intervention, source)))

    def save_episode(self) -> None:
        self._end_episode("save")

    def discard_episode(self) -> None:
        self._end_episode("discard")

    def close(self, save_in_progress: bool, timeout_s: float = 120.0) -> None:
        """Save or discard the episode in progress, finalize the dataset, stop the writer."""
        if self._active:
            self._end_episode("save" if save_in_progress else "discard")
        self._queue.put(("finalize", None))
        self._thread.join(timeout_s)

    def status(self) -> RecordingStatus:
        with self._lock:
            return RecordingStatus(
                dataset=self._dataset,
                active=self._active,
                episode_frames=self._episode_frames,
                saved_episodes=self._saved,
                backlog=self._queued - self._written,
                frames_written=self._written,
                last_message=self._message,
                error=self._error,
            )

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Block until every queued request is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.02)
        return False

    def _end_episode(self, how: str) -> None:
        with self._lock:
            self._active = False
        self._queue.put((how, None))

    # --- the writer thread ----------------------------------------------------------------
    def _run(self) -> None:
        skipping = False  # the episode failed to start or write: drop its frames, keep the rest
        while True:
            kind, payload = self._queue.get()
            try:
                if kind == "start":
                    skipping = False
                    if self._recorder is None:
                        self._recorder = self._make_recorder()
                        with self._lock:
                            self._saved = self._recorder.num_episodes
                    self._recorder.start_episode(payload)
                elif kind == "frame":
                    if not skipping:
                        self._recorder.add_frame(*payload)
                elif kind == "save" and not skipping and self._recorder is not None:
                    index = self._recorder.save_episode()
                    with self._lock:
                        self._saved = self._recorder.num_episodes
                        self._message = f"Saved episode {index} to {self._dataset}."
                elif kind == "discard" and self._recorder is not None:
                    self._recorder.discard_episode()
                    with self._lock:
                        self._message = "Discarded the episode in progress."
                elif kind == "finalize":
                    if self._recorder is not None:
                        self._recorder.finalize()
                    return
            except Exception as err:  # noqa: BLE001 - any writer failure must reach the operator
                skipping = True
                with self._lock:
                    self._active = False
                    self._error = f"Recording failed ({kind}): {err}"
                if self._recorder is not None and kind != "finalize":
                    try:
                        self._recorder.discard_episode()
                    except Exception:  # noqa: BLE001 - the buffer may already be gone
                        pass
                if kind == "finalize":
                    return
            finally:
                if kind == "frame":
                    with self._lock:
                        self._written += 1
                self._queue.task_done()
