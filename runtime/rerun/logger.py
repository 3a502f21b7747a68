"""The session in Rerun, live: the 3D scene with the planned end-effector paths, the camera images
with those paths projected on them, and per-joint time series of planned against executed.

A `RerunLogger` subscribes to the session's tick: the control thread hands it each tick's snapshot
(`on_tick`, a swap under a lock) and its own thread logs the newest one each time it is free:
when logging is slow it skips ticks rather than falling behind. The recording is served over gRPC on 127.0.0.1 (the embedded viewer and
Rerun's own viewer connect to it) and spooled to a file, so `save()` can copy the whole session
so far into one `.rrd`. The blueprint is sent once, at start. What each snapshot becomes (the
paths below, the blueprint) is runtime/rerun/snapshot_writer.py.

Entity paths (the only scheme; `world/` and the projected plans need a robot with
`robot_io.devices.robot.SceneGeometry`, others get `notice` instead):

    world/scene/fixed                  Boxes3D       belt, bin (static)
    world/scene/objects                Boxes3D       the blocks, as of the latest observation
    world/robot/links                  LineStrips3D  joint origins base -> end effector (FK of the state)
    world/robot/end_effector           Points3D
    world/plan/current                 LineStrips3D  FK path of the running chunk's 50 steps (bright)
    world/plan/previous                LineStrips3D  the same for the chunk it replaced (faded)
    world/cameras/{camera}             Transform3D + Pinhole (RDF): each camera's pose and frustum
    cameras/{camera}/image             Image         raw RGB (never compressed: the web viewer shows raw only)
    cameras/{camera}/plan/current      LineStrips2D  world/plan/current projected onto that camera
    cameras/{camera}/plan/previous     LineStrips2D
    timeseries/joints/{key}/planned    Scalars       the running chunk's raw command for this tick
    timeseries/joints/{key}/sent       Scalars       the command sent (after blending and safety)
    timeseries/joints/{key}/measured   Scalars       the robot's state, for keys it reports
    timeseries/joints/{key}/takeover   Scalars       a marker where the operator took over
    timeseries/seams/raw               Scalars       jump at each chunk switch before blending...
    timeseries/seams/blended           Scalars       ...and after (logged on the switch's tick)
    timeseries/chunk/age               Scalars       ticks since the observation the running chunk came from
    timeseries/chunk/queue_depth       Scalars       steps of the running chunk left
    timeseries/chunk/inference_delay   Scalars       ticks from the latest chunk's observation to its take-over...
    timeseries/chunk/execute_horizon   Scalars       ...against the steps a chunk runs before the next is asked for
    timeseries/surprises               Scalars       an auto-hold (runtime/control/surprise.py): the PSNR or jump that set it off
    timeseries/surprise_gauge/p_value  Scalars       calibrated score of each judged prediction (with a calibration)...
    timeseries/surprise_gauge/false_alarm Scalars    ...and the false-alarm rate it raises the alarm at or below
    events                             TextLog       mode changes, take-overs, the logger's own notes
    notice                             TextDocument  what this robot's view lacks

Timelines: `control_step` (sequence: the snapshot's tick) and `wall_time` (timestamp: when its
observation was taken).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import rerun as rr

from robot_io.devices.robot import SceneGeometry
from runtime.rerun.snapshot_writer import SnapshotWriter
from runtime.control.snapshot import Snapshot
from runtime.control.tick_record import TickRecord

if TYPE_CHECKING:
    from runtime.control.session import Session

LOOPBACK = "127.0.0.1"  # viewers connect from this machine only
APPLICATION_ID = "foresight_console"
WAIT_S = 0.5  # the logger re-checks for close at least this often
FLUSH_TIMEOUT_S = 10.0
LOGGER_NICENESS = 10  # the control loop (and the camera feeds) win the CPU over the logger
MB = 1024 * 1024
SPOOL_CHECK_EVERY = 15  # logged snapshots between looks at the session file's size


class RerunError(Exception):
    """Rerun could not start, or a session could not be saved; the message says why."""


@dataclass(frozen=True)
class RerunConfig:
    grpc_port: int = 9876  # on 127.0.0.1; viewers connect to rerun+http://127.0.0.1:{port}/proxy
    # The gRPC server's replay buffer for viewers that connect late (oldest dropped first; saving
    # does not use it). Small on purpose: a browser viewer rendering in software ingests a long
    # backlog slower than real time.
    memory_limit_mb: int = 64
    # Camera images (and the projected plans) every Nth tick: 3 Hz at 15 Hz. Raw images are most
    # of what a viewer ingests; raise this when the viewer's latency grows.
    image_every_ticks: int = 5
    save_dir: Path = Path("recordings/rerun")  # where save() writes session-*.rrd
    spool_dir: Path | None = None  # the live session file's folder; None: the system temp folder
    spool_limit_mb: int = 2048  # past this the session file stops receiving camera images
    application_id: str = APPLICATION_ID

    def __post_init__(self) -> None:
        if not 1 <= self.grpc_port <= 65535:
            raise ValueError(f"Rerun grpc_port must be between 1 and 65535, got {self.grpc_port}")
        if self.memory_limit_mb < 1:
            raise ValueError(f"Rerun memory_limit_mb must be >= 1, got {self.memory_limit_mb}")
        if self.image_every_ticks < 1:
            raise ValueError(f"Rerun image_every_ticks must be >= 1 (1: every tick), got {self.image_every_ticks}")
        if self.spool_limit_mb < 1:
            raise ValueError(f"Rerun spool_limit_mb must be >= 1, got {self.spool_limit_mb}")
        if not self.application_id:
            raise ValueError("Rerun application_id must not be empty")
        object.__setattr__(self, "save_dir", Path(self.save_dir))
        if self.spool_dir is not None:
            object.__setattr__(self, "spool_dir", Path(self.spool_dir))


@dataclass(frozen=True)
class LoggerStats:
    logged: int  # snapshots logged
    skipped: int  # ticks never logged because the logger was busy
    cpu_ms_per_tick: float  # logger thread CPU per logged snapshot (Rerun's own encoder threads not included)
    images_paused: bool  # the spool reached its limit: no more camera images in the session file
    last_error: str


class RerunLogger:
    """Serves and spools the session's Rerun recording from its own thread; `save()` copies it."""

    def __init__(self, session: Session, config: RerunConfig | None = None) -> None:
        self.config = config = config or RerunConfig()
        self._session = session
        _check_port_free(config.grpc_port)
        try:
            self._spool_folder = Path(tempfile.mkdtemp(prefix="foresight-rerun-", dir=config.spool_dir))
        except OSError as err:
            raise RerunError(f"cannot create the Rerun session file in {config.spool_dir or tempfile.gettempdir()}: "
                             f"{err.strerror or err}") from err
        self.spool_path = self._spool_folder / "session.rrd"
        self.recording_id = str(uuid.uuid4())
        self._rec, self.url = _call_niced(self._open_recording)
        robot = session.robot
        geometry = robot if isinstance(robot, SceneGeometry) else None
        self.has_geometry = geometry is not None
        image_sizes = {camera: robot.observation_features[camera][:2] for camera in session.camera_keys}
        self._writer = SnapshotWriter(self._rec, image_sizes, session.action_keys, session.state_keys,
                                      geometry, session.config.fps, config.image_every_ticks)
        _call_niced(self._writer.log_setup)  # sending the blueprint starts a stream of its own
        self._lock = threading.Lock()  # one log call sequence at a time: the thread's, or save()'s flush
        self._arrived = threading.Condition()
        self._latest: Snapshot | None = None  # the newest tick handed over by the session
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._logged = 0
        self._skipped = 0
        self._cpu_s = 0.0
        self._last_error = ""

    def _open_recording(self) -> tuple[rr.RecordingStream, str]:
        config = self.config
        rec = rr.RecordingStream(config.application_id, recording_id=self.recording_id)
        rec.set_log_time_enabled(False)  # the two timelines are ours; no implicit log_time / log_tick
        rec.set_log_tick_enabled(False)
        server = rr.GrpcServerSink(bind_ip=LOOPBACK, port=config.grpc_port,
                                   server_memory_limit=f"{config.memory_limit_mb}MiB")
        # No footer: a footer keeps per-chunk metadata in memory for the whole session.
        rec.set_sinks(server, rr.FileSink(self.spool_path, write_footer=False))
        return rec, server.uri

    def start(self) -> None:
        self._thread = threading.Thread(target=self._follow, name="rerun-logger", daemon=True)
        self._thread.start()
        self._session.subscribe(self)

    def on_tick(self, record: TickRecord) -> None:
        """The control thread: keep the newest snapshot and wake the logger's thread."""
        with self._arrived:
            self._latest = record.snapshot
            self._arrived.notify()

    def stats(self) -> LoggerStats:
        logged = self._logged
        return LoggerStats(logged, self._skipped, 1000 * self._cpu_s / logged if logged else 0.0,
                           not self._writer.images_enabled, self._last_error)

    def save(self) -> Path:
        """Copy the session so far into `save_dir/session-<time>.rrd` (written whole, then renamed)."""
        folder = self.config.save_dir.expanduser().absolute()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RerunError(f"cannot create {folder}: {err.strerror or err}") from err
        with self._lock:
            try:
                self._rec.flush(timeout_sec=FLUSH_TIMEOUT_S)
            except Exception as err:  # noqa: BLE001 - Rerun raises its own error types on a stuck flush
                raise RerunError(f"Rerun did not flush the session within {FLUSH_TIMEOUT_S:.0f} s: {err}") from err
            size = self.spool_path.stat().st_size  # whole messages only: nothing is logged until we let go
        target = _unused_name(folder / f"session-{time.strftime('%Y%m%d-%H%M%S')}.rrd")
        partial = target.with_name(target.name + ".partial")
        try:
            with open(self.spool_path, "rb") as source, open(partial, "wb") as out:
                _copy_bytes(source, out, size)
            os.replace(partial, target)
        except OSError as err:
            partial.unlink(missing_ok=True)
            raise RerunError(f"could not write {target}: {err.strerror or err}") from err
        return target

    def close(self) -> None:
        """Stop the thread, shut the gRPC server and delete the spool (saved copies stay)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            try:
                self._rec.flush(timeout_sec=FLUSH_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - closing goes on whatever Rerun says
                pass
            self._rec.disconnect()
        shutil.rmtree(self._spool_folder, ignore_errors=True)

    # --- the logger's thread ---------------------------------------------------------------
    def _follow(self) -> None:
        _lower_priority()
        tick = -1
        while not self._stop.is_set():
            with self._arrived:
                self._arrived.wait_for(lambda: self._latest is not None and self._latest.tick > tick, WAIT_S)
                snapshot = self._latest
            if snapshot is None or snapshot.tick <= tick:
                continue
            if tick >= 0:
                self._skipped += snapshot.tick - tick - 1  # the newest snapshot wins: no backlog
            tick = snapshot.tick
            started = time.thread_time()
            with self._lock:
                try:
                    self._log_snapshot(snapshot)
                except Exception as err:  # noqa: BLE001 - a bad frame must cost the view a tick, not the thread
                    message = f"Rerun logging failed at tick {snapshot.tick}: {type(err).__name__}: {err}"
                    if message != self._last_error:
                        self._last_error = message
                        self._writer.note(message, level=rr.TextLogLevel.ERROR)
            self._cpu_s += time.thread_time() - started
            self._logged += 1

    def _log_snapshot(self, snapshot: Snapshot) -> None:
        self._writer.log(snapshot)
        if self._writer.images_enabled and self._logged % SPOOL_CHECK_EVERY == 0:
            if self.spool_path.stat().st_size > self.config.spool_limit_mb * MB:
                self._writer.images_enabled = False
                self._writer.note(f"The session file reached {self.config.spool_limit_mb} MB: camera images are no "
                                  "longer logged (everything else is).", level=rr.TextLogLevel.WARN)


def _check_port_free(port: int) -> None:
    """Rerun only logs a failed bind and carries on; say so up front instead."""
    with socket.socket() as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError as err:
            raise RerunError(f"Rerun's gRPC port {LOOPBACK}:{port} is taken ({err.strerror}): "
                             "choose another with --rerun-port") from err


def _call_niced(fn):
    """`fn()` run in a short-lived thread at LOGGER_NICENESS: the threads Rerun starts meanwhile
    (batcher, file writer, gRPC server) inherit that niceness, so the control loop wins the CPU
    over all of them."""
    outcome: dict = {}

    def run() -> None:
        _lower_priority()
        try:
            outcome["value"] = fn()
        except BaseException as err:  # noqa: BLE001 - handed back to the caller below
            outcome["error"] = err

    thread = threading.Thread(target=run, name="rerun-setup")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _lower_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOGGER_NICENESS)
    except OSError:
        pass  # best effort: the loop still runs at its own priority


def _unused_name(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate


def _copy_bytes(source, out, size: int, block: int = MB) -> None:
    left = size
    while left > 0:
        data = source.read(min(block, left))
        if not data:
            break
        out.write(data)
        left -= len(data)
    out.flush()
    os.fsync(out.fileno())
