"""Inference beside the control loop, never inside it.

One thread runs the policy's calls in order: every tick's observation goes to `policy.observe`
first (a policy with frame history, InternVLA-A1's frame t-15, sees every tick), then a reset
when one was asked for, then a dry run, then the inference the chunk schedule asked for, whose
chunk it pushes into the schedule. A policy that defers its foresight decoder gets the chunk to the
loop first and decodes the pictures after (`Policy.decode_foresight`). Every activation bumps an epoch: a result computed for an
older epoch (paused, taken over, new instruction) is thrown away, so a stale chunk never moves
the robot.

The schedule is the session's (robot_io/chunks/schedule.py, pure); both threads touch it under
the session's `schedule_lock`, which this runner takes inside its own lock and never the other
way round.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from robot_io.chunks.schedule import ChunkSchedule, Guide
from robot_io.policy import Policy, PolicyOutput, commands_after_observation, infer_with_guide

MAX_UNOBSERVED = 64  # ticks of history kept for policy.observe if the runner falls behind
IDLE_WAIT_S = 0.05  # how often an idle runner re-checks (also bounds shutdown time)


@dataclass(frozen=True)
class Job:
    kind: str  # "observe", "reset", "infer" or "preview" (a dry run: computed, never pushed)
    policy: Policy
    epoch: int = 0
    instruction: str = ""
    tick: int = -1
    observation: dict[str, Any] | None = None
    observations: list[dict[str, Any]] = field(default_factory=list)
    guide: Guide | None = None  # the running plan, for a guided inference


@dataclass(frozen=True)
class InferenceResult:
    output: PolicyOutput
    obs_tick: int
    latency_ms: float


class PolicyRunner:
    def __init__(
        self,
        policy: Policy,
        schedule: ChunkSchedule,
        schedule_lock: threading.Lock,
        action_dim: int,
        on_failure: Callable[[str], None],
        on_result: Callable[[InferenceResult], None] | None = None,
        on_preview: Callable[[str, int, dict[str, Any], InferenceResult | None, str], None] | None = None,
    ) -> None:
        self._policy = policy
        self._schedule = schedule
        self._schedule_lock = schedule_lock
        self._action_dim = action_dim
        self._on_failure = on_failure
        self._on_result = on_result  # called on this thread with every accepted result, outside the lock
        # called on this thread for every dry run: (instruction, obs tick, observation, result or None, error)
        self._on_preview = on_preview
        self._cond = threading.Condition()
        self._epoch = 0
        self._instruction: str | None = None
        self._request: tuple[int, dict[str, Any], Guide | None] | None = None  # (tick, observation, guide) the schedule asked for
        self._preview: tuple[str, int, dict[str, Any]] | None = None  # a dry run asked for, until it runs
        self._busy = False  # a job is running
        self._stop = False
        self._reset_pending = False
        self._unobserved: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_UNOBSERVED)
        self.last_result: InferenceResult | None = None
        self._thread = threading.Thread(target=self._run, name="policy-runner", daemon=True)
        self._thread.start()

    def activate(self, instruction: str) -> None:
        """Run `instruction` from a fresh plan: whatever was planned or is being computed is stale."""
        with self._cond:
            self._new_epoch()
            self._instruction = instruction
            self._cond.notify()

    def deactivate(self) -> None:
        with self._cond:
            self._new_epoch()
            self._instruction = None

    def observe(self, observation: dict[str, Any]) -> None:
        """Every tick's observation, in order, for `policy.observe`."""
        with self._cond:
            self._unobserved.append(observation)
            self._cond.notify()

    def request(self, tick: int, observation: dict[str, Any], guide: Guide | None = None) -> None:
        """Infer the next chunk from this observation (the schedule asked for it), guided by the
        running plan when the schedule gives one."""
        with self._cond:
            self._request = (tick, observation, guide)
            self._cond.notify()

    def preview(self, instruction: str, tick: int, observation: dict[str, Any]) -> None:
        """Compute one chunk for `instruction` on this observation and hand it to on_preview only:
        the schedule never sees it. A newer request replaces one not yet started."""
        with self._cond:
            self._preview = (instruction, tick, observation)
            self._cond.notify()

    def set_policy(self, policy: Policy) -> None:
        """Run `policy` from now on. Whatever the old one is computing is thrown away (a new epoch),
        the plan is dropped and the new one is reset before its first call; it sees every tick's
        observation from here on."""
        with self._cond:
            self._policy = policy
            self._new_epoch()
            self._preview = None
            self._unobserved.clear()
            self._reset_pending = True
            self._cond.notify()

    @property
    def policy(self) -> Policy:
        return self._policy

    def reset_policy(self) -> None:
        """Ask for `policy.reset()` before the next inference, on the runner's own thread."""
        with self._cond:
            self._reset_pending = True

    def wait_until_idle(self, timeout_s: float) -> bool:
        """Block until every job asked for so far has run (for callers that step the session
        themselves, e.g. tests driving `Session.tick`). True when idle."""
        with self._cond:
            return self._cond.wait_for(self._idle, timeout_s)

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._thread.join(timeout=10)

    def _idle(self) -> bool:
        return not (self._busy or self._unobserved or self._reset_pending or self._preview
                    or (self._request is not None and self._instruction is not None))

    def _new_epoch(self) -> None:
        """Caller holds the lock: what was planned or is being computed no longer counts."""
        self._epoch += 1
        self._request = None
        with self._schedule_lock:
            self._schedule.clear()

    def _next_job(self) -> Job | None:
        """What the runner does next, in priority order; None means stop."""
        with self._cond:
            self._busy = False
            self._cond.notify_all()  # wait_until_idle
            while not self._stop:
                job = self._take_job()
                if job is not None:
                    self._busy = True
                    return job
                self._cond.wait(IDLE_WAIT_S)
            return None

    def _take_job(self) -> Job | None:
        """Caller holds the lock."""
        if self._unobserved:
            observations = list(self._unobserved)
            self._unobserved.clear()
            return Job("observe", self._policy, observations=observations)
        if self._reset_pending:
            self._reset_pending = False
            return Job("reset", self._policy)
        if self._preview is not None:
            (instruction, tick, obs), self._preview = self._preview, None
            return Job("preview", self._policy, self._epoch, instruction, tick, obs)
        if self._request is not None and self._instruction is not None:
            (tick, obs, guide), self._request = self._request, None
            return Job("infer", self._policy, self._epoch, self._instruction, tick, obs, guide=guide)
        return None

    def _run(self) -> None:
        while (job := self._next_job()) is not None:
            policy = job.policy
            if job.kind == "observe":
                try:
                    for observation in job.observations:
                        policy.observe(observation)
                except Exception as err:  # noqa: BLE001 - a bad frame holds the robot and is shown
                    self._on_failure(f"{type(err).__name__} while observing: {err}")
                continue
            if job.kind == "reset":
                policy.reset()
                continue
            started = time.perf_counter()
            try:
                output = infer_with_guide(policy, job.observation, job.instruction, job.guide)
                actions = self._checked_actions(policy, output)
            except Exception as err:  # noqa: BLE001 - any policy failure holds the robot and is shown
                self._failed(job, f"{type(err).__name__}: {err}")
                continue
            result = InferenceResult(output, job.tick, (time.perf_counter() - started) * 1e3)
            if job.kind == "infer":
                with self._cond:
                    if job.epoch != self._epoch:
                        continue
                    with self._schedule_lock:
                        self._schedule.push(actions, obs_tick=job.tick, latency_ms=result.latency_ms)
            try:  # the chunk is running by now; a policy that deferred its pictures decodes them
                if output.pictures_pending:
                    result = replace(result, output=policy.decode_foresight(output))
            except Exception as err:  # noqa: BLE001 - a broken decoder is a broken policy: the robot holds
                self._failed(job, f"{type(err).__name__} while decoding foresight: {err}")
                continue
            if job.kind == "preview":
                self._preview_done(job, result, "")
                continue
            with self._cond:
                if job.epoch != self._epoch:
                    continue
                self.last_result = result
            if self._on_result is not None:
                self._on_result(result)

    def _failed(self, job: Job, message: str) -> None:
        if job.kind == "preview":
            self._preview_done(job, None, message)
            return
        with self._cond:
            if job.epoch != self._epoch:
                return  # a stale inference failed: nobody waits for it
            with self._schedule_lock:
                self._schedule.cancel_request()
        self._on_failure(message)

    def _checked_actions(self, policy: Policy, output: PolicyOutput) -> np.ndarray:
        """The chunk's commands for the ticks after its observation's, checked."""
        actions = np.asarray(output.actions, dtype=np.float32)
        if actions.ndim != 2 or actions.shape[1] != self._action_dim or len(actions) == 0:
            raise ValueError(f"policy returned actions of shape {actions.shape}, expected (steps, {self._action_dim})")
        if not np.isfinite(actions).all():
            raise ValueError("policy returned NaN or infinite actions")
        return commands_after_observation(policy, actions)

    def _preview_done(self, job: Job, result: InferenceResult | None, error: str) -> None:
        if self._on_preview is not None:
            self._on_preview(job.instruction, job.tick, job.observation, result, error)
