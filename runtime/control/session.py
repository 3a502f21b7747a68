"""A session: one robot, one policy, one control thread, one dataset.

The control thread is the only code that touches the robot. Everyone else submits commands
(thread-safe queue) and reads the latest immutable `Snapshot`. Closing a browser changes nothing
here; closing the session stops the loop, saves or discards the episode in progress as
configured and finalizes the dataset.
"""

from __future__ import annotations

import collections
import os
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from robot_io.policy import Policy
from robot_io.devices.teleop import CartesianTeleoperator, Teleoperator
from robot_io.devices.robot import (
    CameraFreshness, CartesianControl, HasHomePose, HasJointLimits, HasStepLimits, ResettableScene, Robot,
    SceneGeometry, camera_keys, state_keys,
)
from robot_io.chunks.blending import SeamMeter
from robot_io.chunks.schedule import Chunk, ChunkConfig, ChunkSchedule
from runtime.control.command_history import CommandHistory
from runtime.control.foresight_reckoning import ForesightReckoner, foresight_horizon, frame_encoder
from runtime.control.commands import (
    RECORDING_MODES, Command, DiscardDryRuns, DiscardRecording, DryRun, Mode, Pause, PolicyFailed, Release,
    Reconnect, RerecordEpisode, ResetScene, RunPolicy, SetRecordingMode, StartRecording, StopRecording, SwapPolicy,
    TakeOver, TeleopKeys, validate_instruction,
)
from runtime.control.dry_run import DryRunBoard, Preview
from runtime.control.plan_overlay import plan_overlays
from runtime.control.loop_timing import LoopClock
from runtime.control.policy_runner import PolicyRunner
from robot_io.datasets.schema import SOURCE_HOLD, SOURCE_POLICY, UNKNOWN
from robot_io.datasets.journal import check_recordable
from runtime.control.recording import RecorderSpec, RecordingWorker
from runtime.control.safety import SafetyLimits, WorkspaceBox, make_safe, stale_cameras
from runtime.control.snapshot import Snapshot, freeze_frames
from runtime.control.step import choose_command, next_mode
from runtime.control.surprise import Surprise, SurpriseConfig, foresight_surprise, seam_surprise
from runtime.control.teleop_keys import KEYMAP_HELP, axes_to_delta, keys_to_delta, past_dead_zone


EVENT_LOG_LENGTH = 50
DEVICE_CLIENT = "teleop-device"  # the controller name of the session's teleoperator device
UNBOUNDED = (-1e9, 1e9)
REALTIME_PRIORITY_MAX = 99
FALLBACK_NICENESS = -10  # limits for joints a robot does not bound itself
# The stale-camera lockout: 250 ms is ~4 ticks at 15 Hz and ~7 frames of a 30 fps camera, and it
# is under LeRobot's own 500 ms read_latest limit, so the console names the camera before a LeRobot
# robot's read fails.
DEFAULT_STALE_FRAME_MS = 250.0
HOME_REACHED_TOLERANCE = 1e-6  # a command this close to the home pose has reached it


@dataclass
class SessionConfig:
    fps: float = 15.0
    # When the next chunk is asked for and how it takes over (robot_io/chunks/schedule.py): the
    # same ChunkConfig model.evaluate and runtime.collect_corrections run the sim with.
    chunks: ChunkConfig = field(default_factory=ChunkConfig)
    max_instruction_chars: int = 200
    max_step_per_tick: float = 0.2  # rad (or gripper units) a command may change per tick
    max_step_overrides: dict[str, float] = field(default_factory=dict)
    teleop_linear_step: float = 0.01  # m per tick while a key is held (0.15 m/s at 15 Hz)
    teleop_angular_step: float = 0.05  # rad per tick
    key_timeout_s: float = 0.3  # keys not refreshed by the browser this long count as released
    teleop_dead_zone: float = 0.15  # gamepad axes within this of 0 count as 0 (sticks never rest at 0)
    device_dead_zone: float = 0.02  # a teleop device (leader arm) moving this much in a tick is in use
    # Moving an input past its dead zone takes over at once, in that tick (no button needed).
    takeover_on_input: bool = True
    # One client holds control at a time; one silent this long (tab closed) loses its claim.
    control_lease_s: float = 5.0
    record_root: Path | None = None  # None: recording disabled
    recording_mode: str = "attempts"  # runtime.control.commands.RECORDING_MODES; switchable from the page
    save_on_exit: bool = True  # Ctrl-C / SIGTERM: save (True) or discard the episode in progress
    scene_seed: int | None = 0  # first scene; None for random
    # The control thread (and the render threads it starts) asks for SCHED_FIFO at this priority,
    # falling back to niceness -10, then to normal priority, saying which in the event log. On
    # 2 cores beside a browser this took the loop's p99 period error from ~23 ms to ~1.5 ms.
    # It sleeps every period, so it cannot hog a core. 0 = leave scheduling alone. Needs
    # CAP_SYS_NICE (root or `setcap`); ordinary users get the fallbacks.
    realtime_priority: int = 10
    surprise: SurpriseConfig = field(default_factory=SurpriseConfig)  # auto-hold (runtime/control/surprise.py), off by default
    # A camera (of a robot whose cameras run on their own clock) with no fresh frame this long holds
    # the robot and pauses the policy.
    stale_frame_ms: float = DEFAULT_STALE_FRAME_MS
    workspace: WorkspaceBox | None = None  # end-effector box (world metres), for robots with forward kinematics

    def __post_init__(self) -> None:
        if not 1 <= self.fps <= 1000:
            raise ValueError(f"fps must be between 1 and 1000, got {self.fps}")
        if self.max_instruction_chars < 1:
            raise ValueError("max_instruction_chars must be >= 1")
        if self.max_step_per_tick <= 0:
            raise ValueError(f"max_step_per_tick must be > 0, got {self.max_step_per_tick}")
        if not 0 <= self.realtime_priority <= REALTIME_PRIORITY_MAX:
            raise ValueError(f"realtime_priority must be between 0 and {REALTIME_PRIORITY_MAX}, got {self.realtime_priority}")
        if self.key_timeout_s <= 0:
            raise ValueError("key_timeout_s must be > 0")
        if not 0 <= self.teleop_dead_zone < 1:
            raise ValueError(f"teleop_dead_zone must be in [0, 1), got {self.teleop_dead_zone}")
        if self.device_dead_zone < 0:
            raise ValueError(f"device_dead_zone must be >= 0, got {self.device_dead_zone}")
        if self.control_lease_s <= 0:
            raise ValueError(f"control_lease_s must be > 0, got {self.control_lease_s}")
        if not isinstance(self.surprise, SurpriseConfig):
            raise TypeError(f"surprise must be a SurpriseConfig, got {type(self.surprise).__name__}")
        if not isinstance(self.chunks, ChunkConfig):
            raise TypeError(f"chunks must be a ChunkConfig, got {type(self.chunks).__name__}")
        if not self.stale_frame_ms > 0:
            raise ValueError(f"stale_frame_ms must be > 0, got {self.stale_frame_ms}")
        if self.workspace is not None and not isinstance(self.workspace, WorkspaceBox):
            raise TypeError(f"workspace must be a WorkspaceBox or None, got {type(self.workspace).__name__}")
        if self.record_root is not None:
            self.record_root = Path(self.record_root)
        if self.recording_mode not in RECORDING_MODES:
            raise ValueError(f"recording_mode must be one of {RECORDING_MODES}, got {self.recording_mode!r}")


class Session:
    def __init__(
        self,
        robot: Robot,
        policy: Policy,
        config: SessionConfig,
        teleoperator: Teleoperator | None = None,
        policy_label: str = "",
    ) -> None:
        """teleoperator: an operator device (leader arm, LeRobot teleop) whose `get_action()` gives
        the robot's action keys; moving it takes over when `takeover_on_input` is on."""
        self.config = config
        self.robot = robot
        self.teleoperator = teleoperator
        self.policy_label = policy_label or getattr(policy, "name", type(policy).__name__)  # what drives, for the page
        self.action_keys = list(robot.action_features)
        self.state_keys = state_keys(robot)
        self.camera_keys = camera_keys(robot)
        self.safety = self._safety_limits(robot, config)

        self._commands: queue.Queue[Command] = queue.Queue()
        # The schedule is pure; this lock guards it between the control thread and the runner's.
        self._schedule = ChunkSchedule(config.chunks)
        self._schedule_lock = threading.Lock()
        self._seams = SeamMeter()
        # Foresight is judged against reality here; the runner hands each result over the moment
        # it lands, so a new foresight picture does not wait for the next tick.
        self._foresight = ForesightReckoner(self.camera_keys, foresight_horizon(policy), frame_encoder(policy))
        self._dry_runs = DryRunBoard()
        self._sent = CommandHistory(self.action_keys)
        self._runner = PolicyRunner(
            policy, self._schedule, self._schedule_lock, len(self.action_keys), self._policy_failed, on_result=self._on_inference,
            on_preview=self._on_preview,
        )
        self._recording: RecordingWorker | None = None
        if config.record_root is not None:
            # A dataset there recorded for another robot is refused now, before anything records.
            check_recordable(config.record_root, int(config.fps), robot.observation_features, robot.action_features)
            self._recording = RecordingWorker(RecorderSpec(
                root=config.record_root.expanduser().absolute(),
                fps=int(config.fps),
                observation_features=robot.observation_features,
                action_features=robot.action_features,
                robot_type=robot.name,
            ))

        self._mode = Mode.IDLE
        self._recording_mode = config.recording_mode
        self._instruction = ""
        self._scene = ""
        self._scene_instruction = ""
        self._scene_seed: int | None = None  # the current scene's seed, for re-recording it
        self._keys: frozenset[str] = frozenset()
        self._axes: tuple[float, ...] = ()
        self._keys_at = 0.0
        self._last_surprise: Surprise | None = None
        self._controller: str | None = None  # the client holding control while taken over
        self._controller_seen = 0.0  # time.time() of its last command
        self._device_last: dict[str, float] | None = None  # the teleop device's previous reading
        self._device_action: dict[str, float] | None = None  # its command while it has control
        self._gripper_closed = False
        self._previous: dict[str, float] | None = None
        self._current_chunk: Chunk | None = None  # the chunk the snapshot shows, and the one before it
        self._previous_chunk: Chunk | None = None
        self._last_error = ""
        self._hint = ""
        self._events: collections.deque[str] = collections.deque(maxlen=EVENT_LOG_LENGTH)
        self._tick = 0
        self._clock = LoopClock(config.fps)
        self._snapshot: Snapshot | None = None
        self._snapshot_cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop_error: BaseException | None = None
        self._end_effector = self._end_effector_function()  # None: no workspace box, or no forward kinematics
        self._home: dict[str, float] | None = None  # set at the first tick
        self._stale: dict[str, float | None] = {}  # cameras without a fresh frame -> their age
        self._robot_fault = ""  # why the robot stopped answering; nothing reaches it until Reconnect
        self._teleop_fault = ""  # why the teleop device stopped answering
        self._was_held = False  # last tick's command was held by safety (its reason was noted then)
        self._dry_run_wanted: str | None = None  # a dry run's instruction, until the next observation

    # --- public API (any thread) ----------------------------------------------------------
    def start(self) -> None:
        if not self.robot.is_connected:
            self.robot.connect()
        if self.teleoperator is not None and not self.teleoperator.is_connected:
            self.teleoperator.connect()
        self._thread = threading.Thread(target=self._loop, name="control-loop", daemon=True)
        self._thread.start()

    def submit(self, command: Command) -> None:
        """Queue a request; RunPolicy instructions are validated here so bad ones never queue."""
        if isinstance(command, (RunPolicy, DryRun)):
            command = type(command)(validate_instruction(command.instruction, self.config.max_instruction_chars))
        self._commands.put(command)

    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    def wait_for_tick(self, after_tick: int, timeout_s: float = 5.0) -> Snapshot | None:
        """The first snapshot newer than `after_tick` (for MJPEG feeds and tests)."""
        with self._snapshot_cond:
            self._snapshot_cond.wait_for(
                lambda: self._snapshot is not None and self._snapshot.tick > after_tick, timeout_s
            )
            return self._snapshot

    @property
    def last_inference(self):
        return self._runner.last_result

    @property
    def sent_commands(self) -> CommandHistory:
        """What was sent to the robot over the last ticks, and by whom (thread-safe reads)."""
        return self._sent

    @property
    def dry_runs(self) -> DryRunBoard:
        """Dry-run previews (plan + foresight computed while holding), for side-by-side views."""
        return self._dry_runs

    @property
    def foresight(self) -> ForesightReckoner:
        """Latest foresight pictures, their reckonings against reality and the metric history
        (its read methods are thread-safe)."""
        return self._foresight

    def close(self) -> None:
        """Stop the loop, then the runner; save or discard the episode; finalize the dataset."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._runner.close()
        if self._recording is not None:
            self._recording.close(save_in_progress=self.config.save_on_exit, outcome=self._detected_outcome())
        if self.robot.is_connected:
            self.robot.disconnect()
        if self.teleoperator is not None and self.teleoperator.is_connected:
            self.teleoperator.disconnect()

    @property
    def loop_error(self) -> BaseException | None:
        return self._loop_error

    # --- the control thread -----------------------------------------------------------------
    def _loop(self) -> None:
        self._raise_priority()
        try:
            if isinstance(self.robot, ResettableScene):
                self._reset_scene(self.config.scene_seed)
            while not self._stop.is_set():
                started = self._clock.wait_for_tick()
                self._tick_once()
                self._clock.tick_done(started)
        except BaseException as err:  # noqa: BLE001 - a dead loop must be visible, not silent
            self._loop_error = err
            self._last_error = f"Control loop stopped: {type(err).__name__}: {err}"
            self._publish_error_snapshot()
            raise

    def _raise_priority(self) -> None:
        """Let the control thread win the CPU over the browser, encoders and the UI (best effort)."""
        if self.config.realtime_priority == 0:
            return
        tid = threading.get_native_id()
        try:
            os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(self.config.realtime_priority))
            self._note(f"Control thread runs with real-time priority {self.config.realtime_priority}.")
            return
        except (OSError, AttributeError):
            pass
        try:
            os.setpriority(os.PRIO_PROCESS, tid, FALLBACK_NICENESS)
            self._note(f"Control thread runs at niceness {FALLBACK_NICENESS} (no real-time permission).")
        except OSError as err:
            self._note(f"Control thread runs at normal priority ({err.strerror}): expect jitter under load.")

    def _tick_once(self) -> None:
        self._drain_commands()
        if self.teleoperator is not None:
            self._poll_device()
        if self._robot_fault:
            self._publish_error_snapshot()  # nothing reaches a robot that stopped answering until Reconnect
            return
        try:
            observation = self.robot.get_observation()
        except Exception as err:  # noqa: BLE001 - a robot that stops answering holds the loop, never ends it
            self._robot_failed("get_observation", err)
            return
        now = time.time()
        if self._previous is None:
            self._previous = self._current_positions(observation)
        if self._home is None:
            self._home = self._home_pose()
        stale = self._check_cameras()
        frames = freeze_frames(observation, self.camera_keys)  # camera -> read-only uint8 (H, W, 3)
        self._runner.observe(observation)
        if self._dry_run_wanted is not None:
            self._runner.preview(self._dry_run_wanted, self._tick, observation)
            self._dry_run_wanted = None

        running = self._mode is Mode.RUNNING
        with self._schedule_lock:
            queued, chunk = self._schedule.pop(self._tick) if running else (None, None)
            switch = self._schedule.take_switch()
            infer = running and self._schedule.wants_chunk(self._tick)
            queue_depth = self._schedule.remaining(self._tick) if chunk else 0
        if infer:
            self._runner.request(self._tick, observation)
        if switch is not None:
            # The seam is the jump from the command sent last tick, before safety clamps it.
            last_sent = np.array([self._previous[k] for k in self.action_keys], dtype=np.float32)  # (action_dim,)
            self._hold_on_surprise(seam_surprise(self.config.surprise, self._seams.record(switch, last_sent)))
        if chunk is not None and chunk is not self._current_chunk:
            self._previous_chunk, self._current_chunk = self._current_chunk, chunk
        proposed, source = choose_command(self._mode, queued, self._operator_command(now), self.action_keys, self._home)
        if stale:
            proposed = None  # the lockout: nobody moves the robot on a stale picture
        safe = make_safe(proposed, self._previous, self.safety, self._end_effector)
        if safe.held and proposed is not None:
            if not self._was_held:
                self._note(f"Unsafe command held ({safe.reason}).", error=True)
            if source == SOURCE_POLICY:
                self._apply(Pause())  # a policy that steers out of bounds waits for the operator
        self._was_held = safe.held and proposed is not None
        self._finish_homing(safe)
        try:
            sent = self.robot.send_action(safe.action)
        except Exception as err:  # noqa: BLE001 - as get_observation above
            self._robot_failed("send_action", err)
            return
        self._previous = {k: float(sent[k]) for k in self.action_keys}
        if safe.held:
            source = SOURCE_HOLD
        self._sent.append(self._tick, source, self._previous)
        result = self._runner.last_result
        self._publish(Snapshot(
            tick=self._tick,
            wall_time=now,
            mode=self._mode,
            instruction=self._instruction,
            scene=self._scene,
            scene_instruction=self._scene_instruction,
            success=self.robot.is_success() if isinstance(self.robot, ResettableScene) else None,
            frames=frames,
            state={k: float(observation[k]) for k in self.state_keys},
            action=dict(self._previous),
            action_source=source,
            loop=self._clock.stats(),
            recording=self._recording.status() if self._recording else None,
            chunk_id=chunk.chunk_id if chunk else None,
            chunk_step=chunk.step_for(self._tick) if chunk else None,
            chunk=chunk,
            previous_chunk=self._previous_chunk if chunk else None,
            queue_depth=queue_depth,
            inference_ms=result.latency_ms if result else None,
            inference_timings_ms=MappingProxyType(dict(result.output.timings_ms)) if result else MappingProxyType({}),
            seams=self._seams.stats(),
            teleop_available=isinstance(self.robot, CartesianControl),
            controller=self._controller if self._mode is Mode.TAKEOVER else None,
            last_surprise=self._last_surprise,
            last_error=self._last_error,
            hint=self._hint,
            events=tuple(self._events),
            device_fault=self._device_fault(),
            stale_cameras=tuple(stale),
        ))
        # After the action is sent and the snapshot published: judging a prediction (a few ms,
        # once per inference) and queueing the frame for the writer must not delay either.
        psnr = self._observe_foresight(frames)
        if self._recording is not None:
            from_policy = source == SOURCE_POLICY and chunk is not None
            self._recording.add_frame(
                # DAgger convention: every tick the operator has control counts, holds included.
                observation, self._previous, self._mode is Mode.TAKEOVER, source,
                chunk_id=chunk.chunk_id if from_policy else UNKNOWN,
                inference_latency_ms=chunk.latency_ms if from_policy else UNKNOWN,
                foresight_psnr_db=UNKNOWN if psnr is None else psnr,
            )
        self._tick += 1

    def _drain_commands(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            self._apply(command)

    def _apply(self, command: Command) -> None:
        if isinstance(command, TeleopKeys):
            self._apply_keys(command)
            return
        if isinstance(command, (StartRecording, StopRecording, DiscardRecording, RerecordEpisode, SetRecordingMode)):
            self._apply_recording(command)
            return
        if isinstance(command, (DryRun, DiscardDryRuns)):
            self._apply_dry_run(command)
            return
        if isinstance(command, SwapPolicy):
            self._swap_policy(command)
            return
        if isinstance(command, Reconnect):
            self._reconnect()
            return
        transition = next_mode(self._mode, command, has_instruction=bool(self._instruction))
        if transition.message:
            self._note(transition.message, error=transition.refused or isinstance(command, PolicyFailed))
        if transition.refused:
            return
        if isinstance(command, (TakeOver, Release)) and not self._may_control(command.client):
            self._note(f"{type(command).__name__} refused: {self._controller_label()} has control.", error=True)
            return
        previous_mode, self._mode = self._mode, transition.mode
        if isinstance(command, TakeOver):
            self._controller, self._controller_seen = command.client, time.time()
        elif self._mode is not Mode.TAKEOVER:
            self._controller = None
        self._record_correction(previous_mode)
        if self._mode in (Mode.RUNNING, Mode.TAKEOVER, Mode.ESTOP, Mode.HOMING):
            self._dry_runs.clear()  # the robot moves (or stopped hard): a preview no longer shows its future
        if isinstance(command, RunPolicy):
            self._instruction = command.instruction
            self._last_error = ""
        if isinstance(command, ResetScene):
            self._reset_scene(command.seed)
        if isinstance(command, TakeOver):
            self._keys = frozenset()
            self._gripper_closed = self._previous_gripper_closed()
        # Every mode change restarts inference: a chunk planned before it is stale.
        if self._mode is Mode.RUNNING and (previous_mode is not Mode.RUNNING or isinstance(command, (RunPolicy, Release))):
            self._runner.activate(self._instruction)
        elif self._mode is not Mode.RUNNING:
            self._runner.deactivate()
        self._hint = KEYMAP_HELP if self._mode is Mode.TAKEOVER else ""

    def _swap_policy(self, command: SwapPolicy) -> None:
        """Hold, then drive with the new policy: nothing planned by the old one runs after this tick."""
        if self._mode is Mode.RUNNING:
            self._apply(Pause())
        self._runner.set_policy(command.policy)
        self._foresight.use_policy(foresight_horizon(command.policy), frame_encoder(command.policy))
        self._dry_runs.clear()
        self.policy_label = command.label
        self._note(f"Model: {command.label}. Holding; Run continues with it.")

    def _apply_dry_run(self, command: DryRun | DiscardDryRuns) -> None:
        if isinstance(command, DiscardDryRuns):
            self._dry_runs.clear()
            return
        if self._mode not in (Mode.IDLE, Mode.PAUSED):
            self._note(f"Dry runs need a robot that holds still ({self._mode.value} now): pause first.", error=True)
            return
        self._dry_runs.set_pending(command.instruction)
        self._dry_run_wanted = command.instruction  # computed on the next tick's observation
        self._note(f"Dry run: {command.instruction}")

    def _apply_keys(self, command: TeleopKeys) -> None:
        moving = bool(command.keys) or past_dead_zone(command.axes, self.config.teleop_dead_zone)
        if self._mode is not Mode.TAKEOVER and moving and self._takes_over_on_input():
            self._apply(TakeOver(command.client))  # this tick: the input below moves the arm at once
        if self._mode is not Mode.TAKEOVER:
            if moving or command.toggle_gripper:
                self._hint = "Keys are ignored: press Take over to drive with the keyboard."
            return
        if self._controller != command.client and not self._lease_expired():
            if moving or command.toggle_gripper:
                self._hint = f"{self._controller_label()} has control: your input is ignored until they release."
            return
        if not isinstance(self.robot, CartesianControl):
            self._hint = "This robot has no end-effector control: keyboard teleop is unavailable."
            return
        self._controller = command.client
        self._keys, self._axes = command.keys, tuple(command.axes)
        self._keys_at = self._controller_seen = time.time()
        if command.toggle_gripper:
            self._gripper_closed = not self._gripper_closed

    def _poll_device(self) -> None:
        """Read the teleop device once per tick; its motion past the dead zone takes over."""
        device = self.teleoperator
        try:
            if isinstance(device, CartesianTeleoperator):  # a gamepad or keyboard: the browser's input path
                motion = device.get_motion()
            else:
                reading = {k: float(v) for k, v in device.get_action().items() if k in self.action_keys}
        except Exception as err:  # noqa: BLE001 - a device that fails holds the robot, never stops the loop
            if not self._teleop_fault:
                self._teleop_fault = f"Teleoperator {device.name!r} stopped ({type(err).__name__}: {err})"
                self._note(f"{self._teleop_fault}: holding. Reconnect tries it again.", error=True)
            self._device_last = self._device_action = None
            return
        if self._teleop_fault:
            self._teleop_fault = ""
            self._note(f"Teleoperator {device.name!r} answers again.")
        if isinstance(device, CartesianTeleoperator):
            toggle = motion.gripper_closed is not None and motion.gripper_closed != self._gripper_closed
            self._apply_keys(TeleopKeys(motion.keys, toggle, motion.axes, DEVICE_CLIENT))
            return
        last, self._device_last = self._device_last, reading
        moved = last is not None and any(abs(reading[k] - last.get(k, reading[k])) > self.config.device_dead_zone for k in reading)
        if moved and self._mode is not Mode.TAKEOVER and self._takes_over_on_input():
            self._apply(TakeOver(DEVICE_CLIENT))
        controls = self._mode is Mode.TAKEOVER and self._controller == DEVICE_CLIENT
        self._device_action = reading if controls else None
        if controls:
            self._controller_seen = time.time()

    def _takes_over_on_input(self) -> bool:
        return self.config.takeover_on_input and self._mode in (Mode.RUNNING, Mode.PAUSED, Mode.IDLE, Mode.HOMING)

    def _may_control(self, client: str) -> bool:
        """Take over / release is refused while another client holds control (and is still there)."""
        return self._mode is not Mode.TAKEOVER or client == self._controller or self._lease_expired()

    def _lease_expired(self) -> bool:
        return time.time() - self._controller_seen > self.config.control_lease_s

    def _controller_label(self) -> str:
        return "the teleop device" if self._controller == DEVICE_CLIENT else f"operator {self._controller or '(console)'}"

    def _operator_command(self, now: float) -> dict[str, float] | None:
        """The operator's command this tick: the teleop device's reading when it has control, else
        keys and gamepad axes as an end-effector step. None (hold) when nothing moves or the
        input went stale (a closed tab, a gamepad unplugged)."""
        if self._mode is not Mode.TAKEOVER:
            return None
        if self._controller == DEVICE_CLIENT and not isinstance(self.teleoperator, CartesianTeleoperator):
            return None if self._device_action is None else {**self._previous, **self._device_action}
        if not isinstance(self.robot, CartesianControl):
            return None
        fresh = now - self._keys_at <= self.config.key_timeout_s
        keys, axes = (self._keys, self._axes) if fresh else (frozenset(), ())
        c = self.config
        delta = keys_to_delta(keys, c.teleop_linear_step, c.teleop_angular_step)
        delta += axes_to_delta(axes, c.teleop_dead_zone, c.teleop_linear_step, c.teleop_angular_step)
        gripper = 1.0 if self._gripper_closed else 0.0
        if not delta.any() and gripper == self._previous.get("gripper.pos", gripper):
            return None
        return self.robot.ee_delta_action(delta, gripper)

    def _previous_gripper_closed(self) -> bool:
        return bool(self._previous and self._previous.get("gripper.pos", 0.0) >= 0.5)

    def _apply_recording(self, command: Command) -> None:
        if self._recording is None:
            self._note("Recording is disabled for this session (no dataset folder).", error=True)
            return
        if isinstance(command, SetRecordingMode):
            if command.mode not in RECORDING_MODES:
                self._note(f"Unknown recording mode {command.mode!r}; modes: {', '.join(RECORDING_MODES)}.", error=True)
                return
            self._recording_mode = command.mode
            self._note(f"Recording mode: {command.mode}.")
        elif isinstance(command, StartRecording):
            if self._recording.active:
                self._note("Already recording.", error=True)
                return
            self._start_episode()
        elif isinstance(command, RerecordEpisode):
            if self._recording.active:
                self._recording.discard_episode()
            if self._scene_seed is not None:
                self._mode = Mode.IDLE
                self._reset_scene(self._scene_seed)  # the same start: the attempt again
            self._start_episode()
        elif not self._recording.active:
            self._note("Not recording.", error=True)
        elif isinstance(command, StopRecording):
            outcome = command.outcome or self._detected_outcome()
            self._recording.save_episode(outcome)
            self._note(f"Recording stopped: saving the episode ({outcome}).")
        else:
            self._recording.discard_episode()
            self._note("Episode discarded.")

    def _start_episode(self) -> bool:
        task = self._instruction or self._scene_instruction
        if not task:
            self._note("Type an instruction before recording: every episode needs a task.", error=True)
            return False
        self._recording.start_episode(task)
        self._note(f"Recording started: {task}")
        return True

    def _record_correction(self, previous_mode: Mode) -> None:
        """In "corrections" mode each takeover is one episode: it starts when the operator takes
        over and is saved when control goes back (release, pause, reset, e-stop)."""
        if self._recording is None or self._recording_mode != "corrections":
            return
        if self._mode is Mode.TAKEOVER and previous_mode is not Mode.TAKEOVER and not self._recording.active:
            if self._start_episode():
                self._note("Correction recording started.")
        elif previous_mode is Mode.TAKEOVER and self._mode is not Mode.TAKEOVER and self._recording.active:
            outcome = self._detected_outcome()
            self._recording.save_episode(outcome)
            self._note(f"Correction saved ({outcome}).")

    def _detected_outcome(self) -> str:
        """The scene's success detector as an episode outcome; "unknown" without one."""
        if not isinstance(self.robot, ResettableScene):
            return "unknown"
        return "success" if self.robot.is_success() else "failure"

    def _reset_scene(self, seed: int | None) -> None:
        if not isinstance(self.robot, ResettableScene):
            self._note("This robot has no scene to reset; holding.")
            return
        if self._recording is not None and self._recording.active:
            outcome = self._detected_outcome()
            self._recording.save_episode(outcome)
            self._note(f"Scene reset while recording: the episode was saved ({outcome}).")
        episode = self.robot.reset_scene(seed)
        self._runner.deactivate()
        self._runner.reset_policy()
        self._foresight.reset()
        self._dry_runs.clear()
        self._device_last = None  # a new scene: the device's reading before it is no motion
        self._previous = None
        self._instruction = ""
        self._last_error = ""
        self._scene = describe_episode(episode)
        self._scene_instruction = episode.instruction
        self._scene_seed = episode.seed
        self._note(f"New scene: {self._scene}")

    def _current_positions(self, observation: dict[str, Any]) -> dict[str, float]:
        missing = [k for k in self.action_keys if k not in observation]
        if missing:
            raise KeyError(f"the robot's observation lacks the positions of action keys {missing}")
        return {k: float(observation[k]) for k in self.action_keys}

    def _observe_foresight(self, frames) -> float | None:
        """Judge predictions due this tick (holding when surprised); the mean PSNR over cameras
        of those judged, or None."""
        try:
            judged = self._foresight.observe_tick(self._tick, frames)
        except Exception as err:  # noqa: BLE001 - judging foresight must never stop the control loop
            self._note(f"Foresight view failed: {type(err).__name__}: {err}", error=True)
            return None
        self._hold_on_surprise(foresight_surprise(self.config.surprise, self._tick, judged))
        return float(np.mean([point.psnr_db for point in judged])) if judged else None

    def _hold_on_surprise(self, surprise: Surprise | None) -> None:
        """A running policy that surprised us holds (from this tick's command on, for a seam) and
        the operator is asked to take over."""
        if surprise is None or self._mode is not Mode.RUNNING:
            return
        self._last_surprise = surprise
        self._apply(Pause())
        message = f"Surprise at tick {surprise.tick}: {surprise.describe()}. Holding: take over to correct, or Run to go on."
        self._note(message, error=True)
        self._hint = message

    def _on_inference(self, result) -> None:
        """Runner thread: a bug in judging foresight must cost the foresight view, not the robot."""
        try:
            self._foresight.add_inference(result)
        except Exception as err:  # noqa: BLE001
            self._note(f"Foresight view failed: {type(err).__name__}: {err}", error=True)

    def _on_preview(self, instruction: str, tick: int, observation: dict[str, Any], result, error: str) -> None:
        """Runner thread: a dry run finished (result None when the policy failed: `error` says why)."""
        output = result.output if result is not None else None
        actions = None
        frames = freeze_frames(observation, self.camera_keys)
        plan_frames = {}
        if output is not None:
            actions = np.array(output.actions, dtype=np.float32)  # (steps, action_dim)
            actions.flags.writeable = False
            if isinstance(self.robot, SceneGeometry):
                joints = {k: float(observation[k]) for k in self.action_keys if k in observation}
                try:
                    plan_frames = plan_overlays(self.robot, self.action_keys, actions, joints, frames)
                except Exception as err:  # noqa: BLE001 - a drawing problem costs the overlay, not the preview
                    self._note(f"Could not draw the dry run's plan over the cameras: {type(err).__name__}: {err}")
        self._dry_runs.add(Preview(
            preview_id=self._dry_runs.next_id(),
            instruction=instruction,
            obs_tick=tick,
            actions=actions,
            foresight=dict(output.foresight or {}) if output is not None else {},
            frames=frames,
            latency_ms=result.latency_ms if result is not None else 0.0,
            error=error,
            plan_frames=plan_frames,
        ))
        if error:
            self._note(f"Dry run failed: {error}", error=True)

    def _policy_failed(self, message: str) -> None:
        self._commands.put(PolicyFailed(message))

    def _note(self, message: str, error: bool = False) -> None:
        self._events.append(f"{time.strftime('%H:%M:%S')} {message}")
        if error:
            self._last_error = message

    def _publish(self, snapshot: Snapshot) -> None:
        with self._snapshot_cond:
            self._snapshot = snapshot
            self._snapshot_cond.notify_all()

    def _publish_error_snapshot(self) -> None:
        if self._snapshot is not None:
            self._publish(replace(self._snapshot, mode=self._mode, action_source=SOURCE_HOLD, last_error=self._last_error,
                                  hint=self._hint, events=tuple(self._events), device_fault=self._device_fault()))

    @staticmethod
    def _safety_limits(robot: Robot, config: SessionConfig) -> SafetyLimits:
        keys = list(robot.action_features)
        limits = robot.joint_limits if isinstance(robot, HasJointLimits) else {}
        joint_limits = {k: tuple(limits.get(k, UNBOUNDED)) for k in keys}
        steps = robot.max_step if isinstance(robot, HasStepLimits) else {}
        max_step = {k: config.max_step_overrides.get(k, steps.get(k, config.max_step_per_tick)) for k in keys}
        return SafetyLimits(joint_limits, max_step, config.workspace)

    def _end_effector_function(self):
        """action -> end-effector position, for the workspace box; None when there is no box or the
        robot has no forward kinematics (said once in the event log)."""
        if self.config.workspace is None:
            return None
        if not isinstance(self.robot, SceneGeometry):
            self._note(f"Workspace box not enforced: robot {self.robot.name!r} has no forward kinematics (SceneGeometry).")
            return None
        robot = self.robot
        return lambda joints: robot.link_positions(joints)[-1]

    def _home_pose(self) -> dict[str, float]:
        """The robot's home pose, else the pose of the first tick; within the joint limits, so it can be reached."""
        pose = self.robot.home_pose if isinstance(self.robot, HasHomePose) else None
        if pose is None:
            pose = self._previous
            self._note("Home pose: where the robot was at the first tick (it names none).")
        return {k: min(max(float(pose.get(k, self._previous[k])), low), high) for k, (low, high) in self.safety.joint_limits.items()}

    def _finish_homing(self, safe) -> None:
        if self._mode is not Mode.HOMING or self._home is None or safe.held:
            return
        if all(abs(safe.action[k] - self._home[k]) <= HOME_REACHED_TOLERANCE for k in self.action_keys):
            self._mode = Mode.IDLE
            self._note("Home reached: holding.")

    def _check_cameras(self) -> dict[str, float | None]:
        """The stale-camera lockout: cameras with no fresh frame -> their age; the policy pauses when one goes stale."""
        if not isinstance(self.robot, CameraFreshness):
            return {}
        stale = stale_cameras(self.robot.frame_ages_ms(), self.config.stale_frame_ms)
        if set(stale) != set(self._stale):
            if stale:
                ages = ", ".join(f"{c!r} ({'no frame yet' if a is None else f'last frame {a:.0f} ms ago'})" for c, a in stale.items())
                self._note(f"Stale camera {ages}: no fresh frame within {self.config.stale_frame_ms:.0f} ms, holding.", error=True)
                if self._mode is Mode.RUNNING:
                    self._apply(Pause())
            else:
                self._note("Every camera is fresh again: Run or take over to go on.")
        self._stale = stale
        return stale

    def _robot_failed(self, call: str, err: Exception) -> None:
        self._robot_fault = f"Robot {self.robot.name!r} stopped answering ({call}: {type(err).__name__}: {err})"
        self._note(f"{self._robot_fault}: holding. Press Reconnect when it is back.", error=True)
        if self._mode in (Mode.RUNNING, Mode.HOMING):
            self._apply(Pause())
        self._publish_error_snapshot()

    def _reconnect(self) -> None:
        """Connect again to whatever stopped answering (never calibrating: no terminal prompt here)."""
        if not self._robot_fault and not self._teleop_fault:
            self._note("Nothing to reconnect: every device answers.")
            return
        if self._robot_fault and self._connect_again(self.robot, f"robot {self.robot.name!r}"):
            self._robot_fault = ""
            self._previous = None  # hold where the arm is now, not where it was told to be before
        if self._teleop_fault and self._connect_again(self.teleoperator, f"teleoperator {self.teleoperator.name!r}"):
            self._teleop_fault = ""
            self._device_last = None

    def _connect_again(self, device, label: str) -> bool:
        try:
            if device.is_connected:
                device.disconnect()  # a half-open link first
        except Exception:  # noqa: BLE001, S110 - a device that is gone may fail to disconnect too
            pass
        try:
            device.connect(calibrate=False)
        except Exception as err:  # noqa: BLE001 - say why, stay holding
            self._note(f"Reconnecting {label} failed ({type(err).__name__}: {err}): still holding.", error=True)
            return False
        self._note(f"Reconnected {label}: holding where it is.")
        return True

    def _device_fault(self) -> str:
        return " · ".join(fault for fault in (self._robot_fault, self._teleop_fault) if fault)


def describe_episode(episode: Any) -> str:
    parts = [f"seed {episode.seed}"]
    if hasattr(episode, "belt_speed"):
        parts.append(f"belt {episode.belt_speed:.3f} m/s")
    if hasattr(episode, "target_color"):
        parts.append(f"target {episode.target_color}")
    return ", ".join(parts)
