"""Action chunks waiting to be executed, shared by the inference thread and the control loop.

A chunk computed from the observation of tick `t` holds the commands for ticks t+1, t+2, ...
(the command of tick t was already sent while the policy was thinking). When it arrives late,
the steps whose tick has passed are skipped, so the robot never replays the past.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Chunk:
    chunk_id: int
    obs_tick: int  # the tick whose observation produced it
    actions: np.ndarray  # (steps, action_dim)
    latency_ms: float

    def step_for(self, tick: int) -> int:
        return tick - self.obs_tick - 1


class ChunkQueue:
    def __init__(self, execute_horizon: int) -> None:
        if execute_horizon < 1:
            raise ValueError(f"execute_horizon must be >= 1, got {execute_horizon}")
        self._execute_horizon = execute_horizon  # steps executed before asking for the next chunk
        self._lock = threading.Lock()
        self._chunk: Chunk | None = None
        self._next_id = 0
        self._executed = 0

    def push(self, actions: np.ndarray, obs_tick: int, latency_ms: float) -> Chunk:
        with self._lock:
            self._next_id += 1
            self._chunk = Chunk(self._next_id, obs_tick, np.asarray(actions, dtype=np.float32), latency_ms)
            self._executed = 0
            return self._chunk

    def clear(self) -> None:
        with self._lock:
            self._chunk = None
            self._executed = 0

    def pop(self, tick: int) -> tuple[np.ndarray | None, Chunk | None]:
        """The command for `tick` from the current chunk, or None when it has none (hold)."""
        with self._lock:
            chunk = self._chunk
            if chunk is None:
                return None, None
            step = chunk.step_for(tick)
            if step < 0 or step >= len(chunk.actions):
                return None, chunk
            self._executed += 1
            return chunk.actions[step], chunk

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
