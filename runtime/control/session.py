"""A session: one robot, one policy, one control thread, one dataset.

The control thread is the only code that touches the robot. Everyone else submits commands
(thread-safe queue) and reads the latest immutable `Snapshot`. Closing a browser changes nothing
here; closing the session stops the loop, saves or discards the episode in progress as
configured and finalizes the dataset.

One tick (`tick(now)`), in order:

    commands -> teleop device -> observe -> chunk schedule -> choose -> safety -> send
             -> publish the snapshot -> judge foresight -> subscribers (recording, ...)

Its parts live beside it: the chunk schedule (robot_io/chunks/schedule.py) and the policy runner
(inference on its own thread), operator input and the control lease (operator_input.py), the
episode lifecycle (episodes.py), device faults and stale cameras (device_health.py), mode
transitions (step.py). Commands are dispatched through one table, `_handlers`. The thread only
paces `tick`; tests call `tick` themselves.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import replace
from types import MappingProxyType
from typing import Any, Callable

import numpy as np

from robot_io.chunks.blending import SeamMeter
from robot_io.chunks.schedule import Chunk, ChunkSchedule
from robot_io.datasets.journal import check_recordable
from robot_io.datasets.schema import SOURCE_HOLD, SOURCE_POLICY
from robot_io.devices.robot import (
    CartesianControl, HasHomePose, ResettableScene, Robot, SceneGeometry, camera_keys, state_keys,
)
from robot_io.devices.teleop import Teleoperator
from robot_io.policy import Policy
from runtime.control.command_history import CommandHistory
from runtime.control.commands import (
    Command, DiscardDryRuns, DiscardRecording, DryRun, Mode, Pause, PolicyFailed, RerecordEpisode, Reconnect, Release, ResetScene,
    RunPolicy, SetRecordingMode, StartRecording, StopRecording, SwapPolicy, TakeOver, TeleopKeys, validate_instruction,
)
from runtime.control.device_health import DeviceHealth
from runtime.control.dry_run import DryRunBoard, build_preview
from runtime.control.episodes import Episodes
from runtime.control.event_log import EventLog
from runtime.control.foresight_reckoning import ForesightReckoner, foresight_horizon, frame_encoder
from runtime.control.loop_timing import LoopClock
from runtime.control.operator_input import DEVICE_CLIENT, OperatorInput  # noqa: F401 - DEVICE_CLIENT: tests name it here
from runtime.control.policy_runner import PolicyRunner
from runtime.control.recording import RecorderSpec, RecordingWorker
from runtime.control.safety import limits_for, make_safe
from runtime.control.session_config import SessionConfig  # noqa: F401 - app.py imports it here
from runtime.control.snapshot import Snapshot, freeze_frames
from runtime.control.step import choose_command, next_mode
from runtime.control.surprise import Surprise, SurpriseGauge, foresight_psnr, foresight_surprise, seam_surprise, surprise_gauge
from runtime.control.teleop_keys import KEYMAP_HELP
from runtime.control.tick_record import TickRecord, TickSubscriber

FALLBACK_NICENESS = -10
HOME_REACHED_TOLERANCE = 1e-6  # a command this close to the home pose has reached it
RECORDING_COMMANDS = (StartRecording, StopRecording, DiscardRecording, RerecordEpisode, SetRecordingMode)


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
        self.safety = limits_for(robot, config.max_step_per_tick, config.max_step_overrides, config.workspace)

        self._commands: queue.Queue[Command] = queue.Queue()
        self._log = EventLog()
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
            policy, self._schedule, self._schedule_lock, len(self.action_keys), self._policy_failed,
            on_result=self._on_inference, on_preview=self._on_preview,
        )
        worker = None
        if config.record_root is not None:
            # A dataset there recorded for another robot is refused now, before anything records.
            check_recordable(config.record_root, int(config.fps), robot.observation_features, robot.action_features)
            worker = RecordingWorker(RecorderSpec(
                root=config.record_root.expanduser().absolute(),
                fps=int(config.fps),
                observation_features=robot.observation_features,
                action_features=robot.action_features,
                robot_type=robot.name,
            ))
        self._episodes = Episodes(worker, config.recording_mode, robot, self._log,
                                  task=lambda: self._instruction or self._scene_instruction)
        self._input = OperatorInput(config, robot, teleoperator, self._log, take_over=self._take_over_by)
        self._health = DeviceHealth(robot, teleoperator, config.stale_frame_ms, self._log)
        self._subscribers: list[TickSubscriber] = [self._episodes]
        self._handlers: dict[type, Callable[[Any], None]] = {
            TeleopKeys: lambda command: self._input.keys(command, self._mode, self._now),
            **{kind: lambda command: self._episodes.apply(command, self._restart_scene) for kind in RECORDING_COMMANDS},
            DryRun: self._dry_run,
            DiscardDryRuns: lambda command: self._dry_runs.clear(),
            SwapPolicy: self._swap_policy,
            Reconnect: lambda command: self._reconnect(),
        }

        self._mode = Mode.IDLE
        self._instruction = ""
        self._scene = ""
        self._scene_instruction = ""
        self._scene_seed: int | None = None  # the current scene's seed, for re-recording it
        self._scene_ready = not isinstance(robot, ResettableScene)  # the first tick resets the scene
        self._last_surprise: Surprise | None = None
        self._surprise_gauge: SurpriseGauge | None = None  # the latest judged prediction's calibrated score
        self._previous: dict[str, float] | None = None  # the command sent last tick
        self._current_chunk: Chunk | None = None  # the chunk the snapshot shows, and the one before it
        self._previous_chunk: Chunk | None = None
        self._dry_run_wanted: str | None = None  # a dry run's instruction, until the next observation
        self._was_held = False  # last tick's command was held by safety (its reason was noted then)
        self._tick = 0
        self._now = time.time()  # the time of the tick being run
        self._clock = LoopClock(config.fps)
        self._snapshot: Snapshot | None = None
        self._snapshot_cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop_error: BaseException | None = None
        self._end_effector = self._end_effector_function()  # None: no workspace box, or no forward kinematics
        self._home: dict[str, float] | None = None  # set at the first tick

    # --- public API (any thread) ----------------------------------------------------------
    def connect(self) -> None:
        if not self.robot.is_connected:
            self.robot.connect()
        if self.teleoperator is not None and not self.teleoperator.is_connected:
            self.teleoperator.connect()

    def start(self) -> None:
        """Connect and run the control thread, one `tick` per period."""
        self.connect()
        self._thread = threading.Thread(target=self._loop, name="control-loop", daemon=True)
        self._thread.start()

    def submit(self, command: Command) -> None:
        """Queue a request; RunPolicy instructions are validated here so bad ones never queue."""
        if isinstance(command, (RunPolicy, DryRun)):
            command = type(command)(validate_instruction(command.instruction, self.config.max_instruction_chars))
        self._commands.put(command)

    def subscribe(self, subscriber: TickSubscriber) -> None:
        """`subscriber.on_tick(record)` after every tick's snapshot, on the control thread (keep it cheap)."""
        self._subscribers.append(subscriber)

    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    def wait_for_tick(self, after_tick: int, timeout_s: float = 5.0) -> Snapshot | None:
        """The first snapshot newer than `after_tick` (for MJPEG feeds and tests)."""
        with self._snapshot_cond:
            self._snapshot_cond.wait_for(
                lambda: self._snapshot is not None and self._snapshot.tick > after_tick, timeout_s
            )
            return self._snapshot

    def wait_for_policy(self, timeout_s: float = 10.0) -> bool:
        """Block until the policy runner has done everything asked so far (for callers that
        drive `tick` themselves); True when it has."""
        return self._runner.wait_until_idle(timeout_s)

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
        self._runner.policy.close()
        self._episodes.close(save_in_progress=self.config.save_on_exit)
        if self.robot.is_connected:
            self.robot.disconnect()
        if self.teleoperator is not None and self.teleoperator.is_connected:
            self.teleoperator.disconnect()

    @property
    def recording_worker(self) -> RecordingWorker | None:
        """The writer of the session's dataset (None: recording is off), for edits that must pause it."""
        return self._episodes.worker

    @property
    def loop_error(self) -> BaseException | None:
        return self._loop_error

    # --- the control thread -----------------------------------------------------------------
    def _loop(self) -> None:
        self._raise_priority()
        try:
            while not self._stop.is_set():
                started = self._clock.wait_for_tick()
                self.tick(time.time())
                self._clock.tick_done(started)
        except BaseException as err:  # noqa: BLE001 - a dead loop must be visible, not silent
            self._loop_error = err
            self._log.last_error = f"Control loop stopped: {type(err).__name__}: {err}"
            self._publish_error_snapshot()
            raise

    def _raise_priority(self) -> None:
        """Let the control thread win the CPU over the browser, encoders and the UI (best effort)."""
        if self.config.realtime_priority == 0:
            return
        tid = threading.get_native_id()
        try:
            os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(self.config.realtime_priority))
            self._log.note(f"Control thread runs with real-time priority {self.config.realtime_priority}.")
            return
        except (OSError, AttributeError):
            pass
        try:
            os.setpriority(os.PRIO_PROCESS, tid, FALLBACK_NICENESS)
            self._log.note(f"Control thread runs at niceness {FALLBACK_NICENESS} (no real-time permission).")
        except OSError as err:
            self._log.note(f"Control thread runs at normal priority ({err.strerror}): expect jitter under load.")

    def tick(self, now: float) -> None:
        """One control tick at wall time `now` (the control thread's, or a test's)."""
        self._now = now
        if not self._scene_ready:
            self._scene_ready = True
            self._reset_scene(self.config.scene_seed)
        self._drain_commands()
        if self.teleoperator is not None:
            self._health.teleop_answered(self._input.poll_device(self._mode, now))
        if self._health.robot_fault:
            self._publish_error_snapshot()  # nothing reaches a robot that stopped answering until Reconnect
            return
        try:
            observation = self.robot.get_observation()
        except Exception as err:  # noqa: BLE001 - a robot that stops answering holds the loop, never ends it
            self._robot_failed("get_observation", err)
            return
        if self._previous is None:
            self._previous = self._current_positions(observation)
        if self._home is None:
            self._home = self._home_pose()
        stale, went_stale = self._health.check_cameras()
        if went_stale and self._mode is Mode.RUNNING:
            self._apply(Pause())
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
            guide = self._schedule.guide(self._tick) if infer else None
            queue_depth = self._schedule.remaining(self._tick) if chunk else 0
            delay = self._schedule.last_delay()
        if infer:
            self._runner.request(self._tick, observation, guide)
        if switch is not None:
            # The seam is the jump from the command sent last tick, before safety clamps it.
            last_sent = np.array([self._previous[k] for k in self.action_keys], dtype=np.float32)  # (action_dim,)
            self._hold_on_surprise(seam_surprise(self.config.surprise, self._seams.record(switch, last_sent)))
        if chunk is not None and chunk is not self._current_chunk:
            self._previous_chunk, self._current_chunk = self._current_chunk, chunk
        operator = self._input.command(self._mode, self._previous, now)
        proposed, source = choose_command(self._mode, queued, operator, self.action_keys, self._home)
        if stale:
            proposed = None  # the lockout: nobody moves the robot on a stale picture
        safe = make_safe(proposed, self._previous, self.safety, self._end_effector)
        if safe.held and proposed is not None:
            if not self._was_held:
                self._log.note(f"Unsafe command held ({safe.reason}).", error=True)
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
        snapshot = self._snapshot_of(now, observation, frames, source, chunk, queue_depth, stale, delay)
        self._publish(snapshot)
        # After the action is sent and the snapshot published: judging a prediction (a few ms,
        # once per inference) and queueing the frame for the writer must not delay either.
        psnr, gauge = self._observe_foresight(frames)
        record = TickRecord(snapshot, observation, intervention=self._mode is Mode.TAKEOVER,
                            chunk=chunk if source == SOURCE_POLICY else None, foresight_psnr_db=psnr,
                            surprise_score=gauge.p_value if gauge else None, segment=self._input.segment(self._mode))
        for subscriber in self._subscribers:
            try:
                subscriber.on_tick(record)
            except Exception as err:  # noqa: BLE001 - a subscriber that fails costs its own view, never the robot
                self._log.note(f"{type(subscriber).__name__} failed: {type(err).__name__}: {err}", error=True)
        self._tick += 1

    def _snapshot_of(self, now: float, observation: dict[str, Any], frames, source: str, chunk: Chunk | None,
                     queue_depth: int, stale: dict[str, float | None], delay: int | None) -> Snapshot:
        result = self._runner.last_result
        return Snapshot(
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
            recording=self._episodes.status(),
            chunk_id=chunk.chunk_id if chunk else None,
            chunk_step=chunk.step_for(self._tick) if chunk else None,
            chunk=chunk,
            previous_chunk=self._previous_chunk if chunk else None,
            queue_depth=queue_depth,
            inference_ms=result.latency_ms if result else None,
            inference_timings_ms=MappingProxyType(dict(result.output.timings_ms)) if result else MappingProxyType({}),
            seams=self._seams.stats(),
            teleop_available=isinstance(self.robot, CartesianControl),
            controller=self._input.controller if self._mode is Mode.TAKEOVER else None,
            last_surprise=self._last_surprise,
            surprise_gauge=self._surprise_gauge,
            last_error=self._log.last_error,
            hint=self._log.hint,
            events=self._log.events(),
            device_fault=self._health.fault(),
            stale_cameras=tuple(stale),
            inference_delay_ticks=delay,
            execute_horizon=self.config.chunks.execute_horizon,
        )

    # --- commands ---------------------------------------------------------------------------
    def _drain_commands(self) -> None:
        while True:
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            self._apply(command)

    def _apply(self, command: Command) -> None:
        handler = self._handlers.get(type(command), self._change_mode)
        handler(command)

    def _change_mode(self, command: Command) -> None:
        """Run, pause, take over, release, e-stop, reset, home, a policy failure: step.py says where to go."""
        transition = next_mode(self._mode, command, has_instruction=bool(self._instruction))
        if transition.message:
            self._log.note(transition.message, error=transition.refused or isinstance(command, PolicyFailed))
        if transition.refused:
            return
        if isinstance(command, (TakeOver, Release)) and not self._input.may_control(command.client, self._mode, self._now):
            self._log.note(f"{type(command).__name__} refused: {self._input.controller_label()} has control.", error=True)
            return
        previous_mode, self._mode = self._mode, transition.mode
        if isinstance(command, TakeOver):
            self._input.took_over(command.client, self._previous, self._now)
        elif self._mode is not Mode.TAKEOVER:
            self._input.gave_up_control()
        self._episodes.mode_changed(previous_mode, self._mode)
        if self._mode in (Mode.RUNNING, Mode.TAKEOVER, Mode.ESTOP, Mode.HOMING):
            self._dry_runs.clear()  # the robot moves (or stopped hard): a preview no longer shows its future
        if isinstance(command, RunPolicy):
            self._instruction = command.instruction
            self._log.last_error = ""
        if isinstance(command, ResetScene):
            self._reset_scene(command.seed)
        # Every mode change restarts inference: a chunk planned before it is stale.
        if self._mode is Mode.RUNNING and (previous_mode is not Mode.RUNNING or isinstance(command, (RunPolicy, Release))):
            self._runner.activate(self._instruction)
        elif self._mode is not Mode.RUNNING:
            self._runner.deactivate()
        self._log.hint = KEYMAP_HELP if self._mode is Mode.TAKEOVER else ""

    def _take_over_by(self, client: str) -> Mode:
        """Operator input past its dead zone takes over (OperatorInput asks); the mode after it."""
        self._apply(TakeOver(client))
        return self._mode

    def _swap_policy(self, command: SwapPolicy) -> None:
        """Hold, then drive with the new policy: nothing planned by the old one runs after this tick."""
        if self._mode is Mode.RUNNING:
            self._apply(Pause())
        old = self._runner.policy
        self._runner.set_policy(command.policy)
        old.close()  # what it was computing is stale: its process or connection goes
        self._foresight.use_policy(foresight_horizon(command.policy), frame_encoder(command.policy))
        self.config.surprise = replace(self.config.surprise, calibration=command.calibration)
        self._surprise_gauge = None
        self._dry_runs.clear()
        self.policy_label = command.label
        self._log.note(f"Model: {command.label}. Holding; Run continues with it.")

    def _dry_run(self, command: DryRun) -> None:
        if self._mode not in (Mode.IDLE, Mode.PAUSED):
            self._log.note(f"Dry runs need a robot that holds still ({self._mode.value} now): pause first.", error=True)
            return
        self._dry_runs.set_pending(command.instruction)
        self._dry_run_wanted = command.instruction  # computed on the next observation
        self._log.note(f"Dry run: {command.instruction}")

    def _restart_scene(self) -> None:
        """Re-record: the current scene from its start (a robot without scenes stays where it is)."""
        if self._scene_seed is not None:
            self._mode = Mode.IDLE
            self._reset_scene(self._scene_seed)

    def _reset_scene(self, seed: int | None) -> None:
        if not isinstance(self.robot, ResettableScene):
            self._log.note("This robot has no scene to reset; holding.")
            return
        self._episodes.scene_reset()
        episode = self.robot.reset_scene(seed)
        self._runner.deactivate()
        self._runner.reset_policy()
        self._foresight.reset()
        self._dry_runs.clear()
        self._input.forget_device_reading()  # a new scene: the device's reading before it is no motion
        self._previous = None
        self._instruction = ""
        self._log.last_error = ""
        self._scene = describe_episode(episode)
        self._scene_instruction = episode.instruction
        self._scene_seed = episode.seed
        self._log.note(f"New scene: {self._scene}")

    def _reconnect(self) -> None:
        robot_back, teleop_back = self._health.reconnect()
        if robot_back:
            self._previous = None  # hold where the arm is now, not where it was told to be before
        if teleop_back:
            self._input.forget_device_reading()

    def _robot_failed(self, call: str, err: Exception) -> None:
        self._health.robot_failed(call, err)
        if self._mode in (Mode.RUNNING, Mode.HOMING):
            self._apply(Pause())
        self._publish_error_snapshot()

    # --- foresight, surprise, the runner's callbacks ----------------------------------------------
    def _observe_foresight(self, frames) -> tuple[float | None, SurpriseGauge | None]:
        """Judge predictions due this tick (holding when surprised); the mean PSNR over cameras
        of those judged and their calibrated score, each None when there is none."""
        try:
            judged = self._foresight.observe_tick(self._tick, frames)
        except Exception as err:  # noqa: BLE001 - judging foresight must never stop the control loop
            self._log.note(f"Foresight view failed: {type(err).__name__}: {err}", error=True)
            return None, None
        gauge = surprise_gauge(self.config.surprise.calibration, self._tick, judged)
        self._surprise_gauge = gauge or self._surprise_gauge
        self._hold_on_surprise(foresight_surprise(self.config.surprise, self._tick, judged))
        return (foresight_psnr(judged) if judged else None), gauge

    def _hold_on_surprise(self, surprise: Surprise | None) -> None:
        """A running policy that surprised us holds (from this tick's command on, for a seam) and
        the operator is asked to take over."""
        if surprise is None or self._mode is not Mode.RUNNING:
            return
        self._last_surprise = surprise
        self._apply(Pause())
        message = f"Surprise at tick {surprise.tick}: {surprise.describe()}. Holding: take over to correct, or Run to go on."
        self._log.note(message, error=True)
        self._log.hint = message

    def _on_inference(self, result) -> None:
        """Runner thread: a bug in judging foresight must cost the foresight view, not the robot."""
        try:
            self._foresight.add_inference(result)
        except Exception as err:  # noqa: BLE001
            self._log.note(f"Foresight view failed: {type(err).__name__}: {err}", error=True)

    def _on_preview(self, instruction: str, tick: int, observation: dict[str, Any], result, error: str) -> None:
        """Runner thread: a dry run finished (result None when the policy failed: `error` says why)."""
        joints = {k: float(observation[k]) for k in self.action_keys if k in observation}
        preview, note = build_preview(
            self._dry_runs.next_id(), instruction, tick, freeze_frames(observation, self.camera_keys), joints,
            result.output if result is not None else None, result.latency_ms if result is not None else 0.0, error,
            self.robot, self.action_keys)
        self._dry_runs.add(preview)
        if note:
            self._log.note(note)
        if error:
            self._log.note(f"Dry run failed: {error}", error=True)

    def _policy_failed(self, message: str) -> None:
        self._commands.put(PolicyFailed(message))

    # --- publishing -------------------------------------------------------------------------------
    def _publish(self, snapshot: Snapshot) -> None:
        with self._snapshot_cond:
            self._snapshot = snapshot
            self._snapshot_cond.notify_all()

    def _publish_error_snapshot(self) -> None:
        if self._snapshot is not None:
            self._publish(replace(self._snapshot, mode=self._mode, action_source=SOURCE_HOLD, last_error=self._log.last_error,
                                  hint=self._log.hint, events=self._log.events(), device_fault=self._health.fault()))

    # --- the robot's limits and poses -------------------------------------------------------------
    def _end_effector_function(self):
        """action -> end-effector position, for the workspace box; None when there is no box or the
        robot has no forward kinematics (said once in the event log)."""
        if self.config.workspace is None:
            return None
        if not isinstance(self.robot, SceneGeometry):
            self._log.note(f"Workspace box not enforced: robot {self.robot.name!r} has no forward kinematics (SceneGeometry).")
            return None
        robot = self.robot
        return lambda joints: robot.link_positions(joints)[-1]

    def _current_positions(self, observation: dict[str, Any]) -> dict[str, float]:
        missing = [k for k in self.action_keys if k not in observation]
        if missing:
            raise KeyError(f"the robot's observation lacks the positions of action keys {missing}")
        return {k: float(observation[k]) for k in self.action_keys}

    def _home_pose(self) -> dict[str, float]:
        """The robot's home pose, else the pose of the first tick; within the joint limits, so it can be reached."""
        pose = self.robot.home_pose if isinstance(self.robot, HasHomePose) else None
        if pose is None:
            pose = self._previous
            self._log.note("Home pose: where the robot was at the first tick (it names none).")
        return {k: min(max(float(pose.get(k, self._previous[k])), low), high) for k, (low, high) in self.safety.joint_limits.items()}

    def _finish_homing(self, safe) -> None:
        if self._mode is not Mode.HOMING or self._home is None or safe.held:
            return
        if all(abs(safe.action[k] - self._home[k]) <= HOME_REACHED_TOLERANCE for k in self.action_keys):
            self._mode = Mode.IDLE
            self._log.note("Home reached: holding.")


def describe_episode(episode: Any) -> str:
    parts = [f"seed {episode.seed}"]
    if hasattr(episode, "describe_belt"):
        parts.append(episode.describe_belt())
    if hasattr(episode, "target_color"):
        parts.append(f"target {episode.target_color}")
    return ", ".join(parts)
