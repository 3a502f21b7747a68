"""Training from the console: one trainer process at a time, beside the control loop.

The trainer (runtime/training/trainers.py: our model.finetune or lerobot-train) runs as a process
of its own, started through `nice -n 19` (before it runs, so every thread it makes inherits it) with
its torch threads limited, so the control loop keeps its cores; bench/bench_train_beside.py
measures what is left. Its stdout and stderr go to files in the run's folder (runs/<kind>_<dataset>_<time>/),
which a monitor thread reads twice a second for progress and losses. When it fails or is stopped
the console's own model is untouched (nothing is swapped unless the operator asks), and a failure
is reported with the tail of its stderr. Only datasets under the dataset roots and checkpoints
under the checkpoint roots may be named, so the page cannot make the console read arbitrary paths.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from robot_io.datasets.reader import V30, DatasetReadError, read_summary
from runtime.control.checkpoint_loader import CHECKPOINT_FILES, is_checkpoint
from runtime.dataset_roots import DatasetListing, OutsideRoots, inside_roots, list_datasets, resolve_roots
from runtime.training.trainers import (
    FinetuneProgress, LerobotProgress, ProgressReader, TrainRequest, command, lerobot_result,
)

REPO = Path(__file__).resolve().parents[2]  # `python -m model.finetune` runs from here
POLL_S = 0.5  # how often the monitor reads the trainer's output
STOP_GRACE_S = 10.0  # after SIGTERM, the trainer gets this long before SIGKILL
TAIL_BYTES = 16_384  # of stderr, read to show why a trainer failed
TAIL_LINES = 12
STDOUT_FILE, STDERR_FILE = "stdout.log", "stderr.log"
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # torch's CPU threads, for trainers without a --threads flag
RUNNING = ("starting", "running")  # phases of a live trainer; then "done", "failed" or "stopped"


class TrainingError(ValueError):
    """A training cannot start; the message says why."""


class TrainingBusy(TrainingError):
    """A training was asked for while another runs."""


@dataclass
class TrainingConfig:
    dataset_roots: tuple[Path, ...]
    checkpoint_roots: tuple[Path, ...]  # where fine-tunes may start from (the console's hot-swap roots)
    out_root: Path = Path("runs")  # run folders go here; the hot-swap roots should include it
    default_base: Path | None = None  # the checkpoint a fine-tune starts from unless the page names another
    threads: int = 1  # torch CPU threads of the trainer
    niceness: int = 19  # `nice -n` of the trainer: 19 yields the CPU to everything else

    def __post_init__(self) -> None:
        self.dataset_roots, self.checkpoint_roots = resolve_roots(self.dataset_roots), resolve_roots(self.checkpoint_roots)
        self.out_root = Path(self.out_root).expanduser().absolute()
        self.default_base = None if self.default_base is None else Path(self.default_base).expanduser().resolve()
        problems = []
        if not self.dataset_roots:
            problems.append("training needs at least one dataset root folder")
        if self.threads < 1:
            problems.append(f"threads must be >= 1, got {self.threads}")
        if not 0 <= self.niceness <= 19:
            problems.append(f"niceness must be in 0..19, got {self.niceness}")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class TrainingStatus:
    phase: str  # one of RUNNING, or "done", "failed", "stopped"
    kind: str
    label: str  # what runs, in words
    folder: str  # the run folder: logs, checkpoints
    step: int
    total: int
    loss: float | None  # the latest
    points: int  # losses so far (TrainingJob.points)
    steps_per_s: float | None
    elapsed_s: float
    message: str
    error: str  # why it failed: the exit status and the tail of its stderr
    result: str  # done: the checkpoint to hot-swap (finetune) or the LeRobot policy folder


class TrainingJob:
    """One trainer process and the thread that follows it."""

    def __init__(self, request: TrainRequest, folder: Path, config: TrainingConfig) -> None:
        self.request, self.folder, self.config = request, folder, config
        self._reader: ProgressReader = (FinetuneProgress(folder, request.steps) if request.kind == "finetune"
                                        else LerobotProgress(folder / STDERR_FILE, request.steps))
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._started = time.monotonic()
        self._steps_seen: list[tuple[int, float]] = []  # (step, time) when steps were first and last seen
        self._stop_at: float | None = None
        self._status = self._make_status("starting", message="starting the trainer")
        self._process: subprocess.Popen | None = None
        self._thread = threading.Thread(target=self._follow, name="training-monitor", daemon=True)

    def start(self) -> TrainingJob:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", **{k: str(self.config.threads) for k in THREAD_ENV}}
        argv = ["nice", "-n", str(self.config.niceness), *command(self.request, self.folder, self.config.threads)]
        (self.folder / "command.txt").write_text(" ".join(argv) + "\n")
        with open(self.folder / STDOUT_FILE, "wb") as out, open(self.folder / STDERR_FILE, "wb") as err:
            # Its own session: stop() signals the whole group, whatever the trainer spawned.
            self._process = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                             start_new_session=True)
        self._thread.start()
        return self

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def status(self) -> TrainingStatus:
        with self._lock:
            return self._status

    def points(self, since: int = 0) -> list[tuple[int, float]]:
        """(step, loss) pairs from the `since`-th on."""
        with self._lock:
            return list(self._reader.progress.points[since:])

    def running(self) -> bool:
        return self.status().phase in RUNNING

    def stop(self) -> None:
        """SIGTERM now, SIGKILL after STOP_GRACE_S (the monitor sends it)."""
        with self._lock:
            if self._stop_at is not None or self._status.phase not in RUNNING:
                return
            self._stop_at = time.monotonic()
        self._signal(signal.SIGTERM)
        self._wake.set()

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the trainer and its monitor to end; True when they have."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _signal(self, sig: signal.Signals) -> None:
        if self._process.poll() is not None:
            return  # reaped: its group id may already belong to another process
        try:
            os.killpg(self._process.pid, sig)
        except ProcessLookupError:
            pass  # gone meanwhile

    def _follow(self) -> None:
        while True:
            code = self._process.poll()
            self._update()
            if code is not None:
                break
            if self._stop_at is not None and time.monotonic() - self._stop_at > STOP_GRACE_S:
                self._signal(signal.SIGKILL)
            self._wake.wait(POLL_S)
            self._wake.clear()
        self._finish(code)

    def _update(self) -> None:
        with self._lock:
            progress = self._reader.read()
            if progress.step and (not self._steps_seen or progress.step > self._steps_seen[-1][0]):
                self._steps_seen = [*self._steps_seen[:1], (progress.step, time.monotonic())]
            phase = "running" if progress.step else "starting"
            message = "training" if progress.step else "preparing: reading the dataset, building the model"
            self._status = self._make_status(phase, message=message)

    def _finish(self, code: int) -> None:
        with self._lock:
            progress = self._reader.read()
            result = self._result() if code == 0 else None
            if self._stop_at is not None and result is None:  # a stop that came too late to stop it keeps the result
                self._status = self._make_status("stopped", message=f"stopped at step {progress.step} of {progress.total}")
                return
            if result is None:
                why = f"exited with status {code}" if code >= 0 else f"was killed by {signal.Signals(-code).name}"
                if code == 0:
                    why = "finished without writing a result"
                error = f"The trainer {why}; the console's model is unchanged.\n{stderr_tail(self.folder / STDERR_FILE)}"
                self._status = self._make_status("failed", message="why, below:", error=error)
                return
            if self.request.kind == "finetune":
                message = "Load the checkpoint into the console: the robot holds while it swaps."
            else:
                message = (f"This console hot-swaps our model's checkpoints only; run the LeRobot policy with: "
                           f"python app.py --lerobot-policy {result}")
            self._status = self._make_status("done", message=message, result=str(result))

    def _result(self) -> Path | None:
        if self.request.kind == "finetune":
            checkpoint = self._reader.progress.checkpoint
            return Path(checkpoint) if checkpoint and is_checkpoint(Path(checkpoint)) else None
        folder = lerobot_result(self.folder)
        return folder.resolve() if folder.is_dir() else None

    def _make_status(self, phase: str, message: str = "", error: str = "", result: str = "") -> TrainingStatus:
        p, now = self._reader.progress, time.monotonic()
        (first, first_at), (last, last_at) = (self._steps_seen or [(0, 0.0)])[0], (self._steps_seen or [(0, 0.0)])[-1]
        rate = (last - first) / (last_at - first_at) if last > first else None
        return TrainingStatus(
            phase=phase, kind=self.request.kind, label=self.request.label, folder=str(self.folder), step=p.step,
            total=p.total, loss=p.points[-1][1] if p.points else None, points=len(p.points), steps_per_s=rate,
            elapsed_s=now - self._started, message=message, error=error, result=result,
        )


def stderr_tail(path: Path) -> str:
    """The last lines of a trainer's stderr, progress-bar redraws dropped."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - TAIL_BYTES))
            text = f.read().decode("utf-8", errors="replace")
    except OSError as err:
        return f"(its stderr is unreadable: {err})"
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    lines = [line.split("\r")[-1] for line in lines]  # a bar redrawn with \r: its last state
    return "\n".join(lines[-TAIL_LINES:]) or "(its stderr is empty)"


class TrainingJobs:
    """The console's training desk: which datasets and checkpoints may be named, one job at a time."""

    def __init__(self, config: TrainingConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._job: TrainingJob | None = None

    def datasets(self) -> list[DatasetListing]:
        return list_datasets(self.config.dataset_roots)

    def start(self, request: TrainRequest) -> TrainingJob:
        """Start a training; TrainingBusy (naming it) while one runs, TrainingError when the dataset or
        the checkpoint cannot be used. Nothing is started then."""
        request = TrainRequest(request.kind, self._dataset(request.dataset), request.steps, request.batch_size,
                               self._base(request.base) if request.kind == "finetune" else None, request.policy)
        with self._lock:
            if self._job is not None and self._job.running():
                s = self._job.status()
                raise TrainingBusy(f"a training is running: {s.label} (step {s.step} of {s.total or '?'}, "
                                   f"in {s.folder}); stop it first")
            folder = self._new_folder(request)
            self._job = TrainingJob(request, folder, self.config).start()
            return self._job

    def stop(self) -> None:
        job = self.job
        if job is not None:
            job.stop()

    @property
    def job(self) -> TrainingJob | None:
        """The running or latest training."""
        with self._lock:
            return self._job

    def close(self, timeout_s: float = STOP_GRACE_S + 5) -> None:
        """Stop a running trainer (it must not outlive the console) and wait for it."""
        job = self.job
        if job is not None:
            job.stop()
            job.join(timeout_s)

    def _dataset(self, dataset: Path) -> Path:
        try:
            path = inside_roots(dataset, self.config.dataset_roots)
            summary = read_summary(path)
        except (OutsideRoots, DatasetReadError) as err:
            raise TrainingError(str(err)) from err
        if summary.version != V30:
            raise TrainingError(f"{path} is a LeRobot {summary.version} dataset; training reads {V30} "
                                "(open-loop replay converts it into its cache folder)")
        if summary.total_episodes < 1:
            raise TrainingError(f"{path} holds no saved episode yet")
        return path

    def _base(self, base: Path) -> Path:
        path = Path(base).expanduser().resolve()
        if path != self.config.default_base:
            try:
                inside_roots(path, self.config.checkpoint_roots)
            except OutsideRoots as err:
                raise TrainingError(f"fine-tuning starts from the console's model or a checkpoint under the checkpoint roots: {err}") from err
        if not is_checkpoint(path):
            missing = [name for name in CHECKPOINT_FILES if not (path / name).is_file()]
            raise TrainingError(f"{path} is not a checkpoint folder (missing {', '.join(missing)})")
        return path

    def _new_folder(self, request: TrainRequest) -> Path:
        stem = f"{request.kind}_{request.dataset.name}_{time.strftime('%Y%m%d-%H%M%S')}"
        folder, n = self.config.out_root / stem, 1
        while folder.exists():
            n += 1
            folder = self.config.out_root / f"{stem}_{n}"
        folder.mkdir(parents=True)
        return folder
