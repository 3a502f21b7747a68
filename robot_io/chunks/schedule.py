"""Action chunks waiting to be executed, shared by the inference thread and the control loop.

A chunk computed from the observation of tick `t` holds the commands for ticks t+1, t+2, ...
(the command of tick t was already sent while the policy was thinking; the policy runner drops a
policy's own step for tick t: robot_io.policy.commands_after_observation). When it arrives late,
the steps whose tick has passed are skipped, so the robot never replays the past.

A pushed chunk takes over at the first `pop` for one of its ticks, on the control thread: there
it is blended with what remains of the running plan (robot_io/chunks/blending.py, `BlendConfig`),
and the switch is kept for `take_switch` so the session can measure the seam.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from robot_io.chunks.blending import BlendConfig, ChunkSwitch, Plan, blend_into_plan


@dataclass(frozen=True)
class Chunk:
    chunk_id: int
    obs_tick: int  # the tick whose observation produced it
    actions: np.ndarray  # (steps, action_dim)
    latency_ms: float

    def step_for(self, tick: int) -> int:
        return tick - self.obs_tick - 1


class ChunkQueue:
    def __init__(self, execute_horizon: int, blend: BlendConfig | None = None) -> None:
        if execute_horizon < 1:
            raise ValueError(f"execute_horizon must be >= 1, got {execute_horizon}")
        self._execute_horizon = execute_horizon  # steps executed before asking for the next chunk
        self._blend = blend if blend is not None else BlendConfig()
        self._lock = threading.Lock()
        self._chunk: Chunk | None = None  # the newest chunk pushed
        self._pending = False  # `_chunk` has not taken over yet (its first pop is to come)
        self._plan: Plan | None = None  # what pop proposes: the running chunk after blending
        self._switch: ChunkSwitch | None = None  # the latest take-over, until take_switch()
        self._next_id = 0
        self._executed = 0

    def push(self, actions: np.ndarray, obs_tick: int, latency_ms: float) -> Chunk:
        with self._lock:
            self._next_id += 1
            frozen = np.array(actions, dtype=np.float32)  # (steps, action_dim), our own copy
            frozen.flags.writeable = False  # snapshots share it with every viewer
            self._chunk = Chunk(self._next_id, obs_tick, frozen, latency_ms)
            self._pending = True
            self._executed = 0
            return self._chunk

    def clear(self) -> None:
        with self._lock:
            self._chunk = None
            self._pending = False
            self._plan = None
            self._switch = None
            self._executed = 0

    def pop(self, tick: int) -> tuple[np.ndarray | None, Chunk | None]:
        """The command for `tick` from the current plan, or None when it has none (hold)."""
        with self._lock:
            chunk = self._chunk
            if chunk is None:
                return None, None
            step = chunk.step_for(tick)
            # Until its first tick comes, a pushed chunk leaves the running plan in charge.
            if self._pending and step >= 0:
                self._take_over(chunk, tick, step)
            action = self._plan.action_for(tick) if self._plan is not None else None
            if action is None:
                return None, chunk
            if not self._pending:
                self._executed += 1  # counts toward the newest chunk's execute horizon only
            return action, chunk

    def take_switch(self) -> ChunkSwitch | None:
        """The latest chunk take-over not yet taken (for seam measurement), or None."""
        with self._lock:
            switch, self._switch = self._switch, None
            return switch

    def remaining(self, tick: int) -> int:
        """Steps of the current chunk left for ticks after `tick`."""
        with self._lock:
            if self._chunk is None:
                return 0
            return max(0, len(self._chunk.actions) - self._chunk.step_for(tick) - 1)

    def needs_refill(self, tick: int) -> bool:
        with self._lock:
            if self._chunk is None:
                return True
            used_up = self._chunk.step_for(tick) + 1 >= len(self._chunk.actions)
            return used_up or self._executed >= self._execute_horizon

    def _take_over(self, chunk: Chunk, tick: int, step: int) -> None:
        """Blend the pushed chunk's steps from `tick` on into the plan (lock held)."""
        self._pending = False
        new = chunk.actions[step:]  # (n, action_dim): the steps whose tick has not passed
        if len(new) == 0:  # every step is in the past: nothing to run, hold as for a used-up chunk
            self._plan = None
            return
        self._plan, overlap = blend_into_plan(self._plan, tick, new, self._blend)
        self._switch = ChunkSwitch(tick, chunk.chunk_id, new[0].copy(), self._plan.actions[0].copy(), overlap)
