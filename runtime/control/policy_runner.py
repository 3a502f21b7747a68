"""Inference beside the control loop, never inside it.

One thread watches the latest observation and, while the session runs the policy and the chunk
queue asks for more, calls `policy.infer` and pushes the chunk. Every activation bumps an epoch:
a result computed for an older epoch (paused, taken over, new instruction) is thrown away, so a
stale chunk never moves the robot.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from robot_io.policy import Policy, PolicyOutput, commands_after_observation
from robot_io.chunks.schedule import ChunkQueue

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


@dataclass(frozen=True)
class InferenceResult:
    output: PolicyOutput
    obs_tick: int
    latency_ms: float


class PolicyRunner:
    def __init__(
        self,
        policy: Policy,
        chunks: ChunkQueue,
        action_dim: int,
        on_failure: Callable[[str], None],
        on_result: Callable[[InferenceResult], None] | None = None,
        on_preview: Callable[[str, int, dict[str, Any], InferenceResult | None, str], None] | None = None,
    ) -> None:
        self._policy = policy
        self._chunks = chunks
        self._action_dim = action_dim
        self._on_failure = on_failure
        self._on_result = on_result  # called on this thread with every accepted result, outside the lock
        # called on this thread for every dry run: (instruction, obs tick, observation, result or None, error)
        self._on_preview = on_preview
        self._preview: str | None = None  # instruction of the dry run asked for, until it runs
        self._cond = threading.Condition()
        self._epoch = 0
        self._instruction: str | None = None
        self._obs: tuple[int, dict[str, Any]] | None = None
        self._last_obs_tick = -1
        self._stop = False
        self._reset_pending = False
        self._unobserved: collections.deque[dict[str, Any]] = collections.deque(maxlen=MAX_UNOBSERVED)
        self.last_result: InferenceResult | None = None
        self._thread = threading.Thread(target=self._run, name="policy-runner", daemon=True)
        self._thread.start()

    def activate(self, instruction: str) -> None:
        with self._cond:
            self._epoch += 1
            self._instruction = instruction
            self._chunks.clear()
            self._cond.notify()

    def deactivate(self) -> None:
        with self._cond:
            self._epoch += 1
            self._instruction = None
            self._chunks.clear()

    def preview(self, instruction: str) -> None:
        """Compute one chunk for `instruction` on the next observation and hand it to on_preview
        only: the chunk queue never sees it. A newer request replaces one not yet started."""
        with self._cond:
            self._preview = instruction
            self._cond.notify()

    def set_policy(self, policy: Policy) -> None:
        """Run `policy` from now on. Whatever the old one is computing is thrown away (a new epoch),
        the queue is emptied and the new one is reset before its first call; it sees every tick's
        observation from here on."""
        with self._cond:
            self._policy = policy
            self._epoch += 1
            self._chunks.clear()
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

    def observe(self, tick: int, observation: dict[str, Any]) -> None:
        with self._cond:
            self._obs = (tick, observation)
            self._unobserved.append(observation)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout=10)

    def _next_job(self) -> Job | None:
        """What the runner does next, in priority order; None means stop.

        Every tick's observation goes to `policy.observe` before anything else, on this thread,
        so a policy that keeps frame history (frame t-15) sees every tick, not only the ones it
        infers on."""
        with self._cond:
            while not self._stop:
                if self._unobserved:
                    observations = list(self._unobserved)
                    self._unobserved.clear()
                    return Job("observe", self._policy, observations=observations)
                if self._reset_pending:
                    self._reset_pending = False
                    return Job("reset", self._policy)
                if self._preview is not None and self._obs is not None:
                    instruction, self._preview = self._preview, None
                    tick, obs = self._obs
                    return Job("preview", self._policy, self._epoch, instruction, tick, obs)
                ready = (
                    self._instruction is not None
                    and self._obs is not None
                    and self._obs[0] > self._last_obs_tick
                    and self._chunks.needs_refill(self._obs[0])
                )
                if ready:
                    tick, obs = self._obs
                    self._last_obs_tick = tick
                    return Job("infer", self._policy, self._epoch, self._instruction, tick, obs)
                self._cond.wait(IDLE_WAIT_S)
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
            epoch, instruction, tick, obs = job.epoch, job.instruction, job.tick, job.observation
            started = time.perf_counter()
            try:
                output = policy.infer(obs, instruction)
                actions = self._checked_actions(policy, output)
            except Exception as err:  # noqa: BLE001 - any policy failure holds the robot and is shown
                if job.kind == "preview":
                    self._preview_done(instruction, tick, obs, None, f"{type(err).__name__}: {err}")
                    continue
                with self._cond:
                    stale = epoch != self._epoch
                if not stale:
                    self._on_failure(f"{type(err).__name__}: {err}")
                continue
            latency_ms = (time.perf_counter() - started) * 1e3
            if job.kind == "preview":
                self._preview_done(instruction, tick, obs, InferenceResult(output, tick, latency_ms), "")
                continue
            with self._cond:
                if epoch != self._epoch:
                    continue
                self._chunks.push(actions, obs_tick=tick, latency_ms=latency_ms)
                result = self.last_result = InferenceResult(output, tick, latency_ms)
            if self._on_result is not None:
                self._on_result(result)

    def _checked_actions(self, policy: Policy, output: PolicyOutput) -> np.ndarray:
        """The chunk's commands for the ticks after its observation's, checked."""
        actions = np.asarray(output.actions, dtype=np.float32)
        if actions.ndim != 2 or actions.shape[1] != self._action_dim or len(actions) == 0:
            raise ValueError(f"policy returned actions of shape {actions.shape}, expected (steps, {self._action_dim})")
        if not np.isfinite(actions).all():
            raise ValueError("policy returned NaN or infinite actions")
        return commands_after_observation(policy, actions)

    def _preview_done(self, instruction: str, tick: int, observation: dict[str, Any], result: InferenceResult | None, error: str) -> None:
        if self._on_preview is not None:
            self._on_preview(instruction, tick, observation, result, error)
