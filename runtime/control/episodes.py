"""The episode lifecycle of the session's dataset: what is being recorded, and when it ends.

Two modes (`RECORDING_MODES`, switchable from the page):
- "attempts": the operator starts an episode, then saves it (the scene's success detector, or the
  operator's verdict, as its outcome), discards it, or re-records the same scene from its start;
  policy and corrections land in one episode, each frame tagged with who acted.
- "corrections": each takeover is its own episode, from Take over to handing back (release,
  pause, reset, e-stop).
A scene reset saves the episode in progress. Frames reach the writer process through
`on_tick`, a subscriber of the session's tick.
"""

from __future__ import annotations

from typing import Callable

from robot_io.datasets.schema import UNKNOWN
from robot_io.devices.robot import ResettableScene, Robot
from runtime.control.commands import (
    RECORDING_MODES, Command, Mode, RerecordEpisode, SetRecordingMode, StartRecording, StopRecording,
)
from runtime.control.event_log import EventLog
from runtime.control.recording import DatasetBusy, RecordingStatus, RecordingWorker
from runtime.control.tick_record import TickRecord


class Episodes:
    def __init__(self, worker: RecordingWorker | None, mode: str, robot: Robot, log: EventLog,
                 task: Callable[[], str]) -> None:
        """worker: None when recording is disabled. task: the instruction an episode starting now records."""
        self._worker = worker
        self.mode = mode
        self.robot = robot
        self._log = log
        self._task = task

    @property
    def active(self) -> bool:
        return self._worker is not None and self._worker.active

    @property
    def worker(self) -> RecordingWorker | None:
        return self._worker

    def status(self) -> RecordingStatus | None:
        return self._worker.status() if self._worker is not None else None

    def apply(self, command: Command, restart_scene: Callable[[], None]) -> None:
        """A recording command from the page. restart_scene: put the scene back to its start (RerecordEpisode)."""
        if self._worker is None:
            self._log.note("Recording is disabled for this session (no dataset folder).", error=True)
            return
        if isinstance(command, SetRecordingMode):
            if command.mode not in RECORDING_MODES:
                self._log.note(f"Unknown recording mode {command.mode!r}; modes: {', '.join(RECORDING_MODES)}.", error=True)
                return
            self.mode = command.mode
            self._log.note(f"Recording mode: {command.mode}.")
        elif isinstance(command, StartRecording):
            if self._worker.active:
                self._log.note("Already recording.", error=True)
                return
            self._start()
        elif isinstance(command, RerecordEpisode):
            if self._worker.active:
                self._worker.discard_episode()
            restart_scene()  # the same start: the attempt again
            self._start()
        elif not self._worker.active:
            self._log.note("Not recording.", error=True)
        elif isinstance(command, StopRecording):
            outcome = command.outcome or self.detected_outcome()
            self._worker.save_episode(outcome)
            self._log.note(f"Recording stopped: saving the episode ({outcome}).")
        else:
            self._worker.discard_episode()
            self._log.note("Episode discarded.")

    def mode_changed(self, previous: Mode, mode: Mode) -> None:
        """In "corrections" mode a takeover starts an episode and handing back saves it."""
        if self._worker is None or self.mode != "corrections":
            return
        if mode is Mode.TAKEOVER and previous is not Mode.TAKEOVER and not self._worker.active:
            if self._start():
                self._log.note("Correction recording started.")
        elif previous is Mode.TAKEOVER and mode is not Mode.TAKEOVER and self._worker.active:
            outcome = self.detected_outcome()
            self._worker.save_episode(outcome)
            self._log.note(f"Correction saved ({outcome}).")

    def scene_reset(self) -> None:
        """A new scene: the episode in progress is saved with the old scene's outcome."""
        if self.active:
            outcome = self.detected_outcome()
            self._worker.save_episode(outcome)
            self._log.note(f"Scene reset while recording: the episode was saved ({outcome}).")

    def on_tick(self, record: TickRecord) -> None:
        if not self.active:
            return
        snapshot, chunk = record.snapshot, record.chunk
        self._worker.add_frame(
            record.observation, dict(snapshot.action), record.intervention, snapshot.action_source,
            chunk_id=chunk.chunk_id if chunk is not None else UNKNOWN,
            inference_latency_ms=chunk.latency_ms if chunk is not None else UNKNOWN,
            foresight_psnr_db=UNKNOWN if record.foresight_psnr_db is None else record.foresight_psnr_db,
            surprise_score=UNKNOWN if record.surprise_score is None else record.surprise_score,
            segment=record.segment,
        )

    def close(self, save_in_progress: bool) -> None:
        if self._worker is not None:
            self._worker.close(save_in_progress=save_in_progress, outcome=self.detected_outcome())

    def detected_outcome(self) -> str:
        """The scene's success detector as an episode outcome; "unknown" without one."""
        if not isinstance(self.robot, ResettableScene):
            return "unknown"
        return "success" if self.robot.is_success() else "failure"

    def _start(self) -> bool:
        task = self._task()
        if not task:
            self._log.note("Type an instruction before recording: every episode needs a task.", error=True)
            return False
        try:
            self._worker.start_episode(task)
        except DatasetBusy as err:
            self._log.note(str(err), error=True)
            return False
        self._log.note(f"Recording started: {task}")
        return True
