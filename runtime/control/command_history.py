"""The commands sent to the robot over the last ticks, for "planned against executed" views.

The control thread appends one row per tick (a deque append under a lock: microseconds); routes
read the rows after some tick.
"""

from __future__ import annotations

import collections
import threading

import numpy as np

HISTORY_TICKS = 128  # more than one 50-step chunk, plus the one before it


class CommandHistory:
    def __init__(self, keys: list[str], length: int = HISTORY_TICKS) -> None:
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.keys = list(keys)
        self._lock = threading.Lock()
        self._rows: collections.deque[tuple[int, str, tuple[float, ...]]] = collections.deque(maxlen=length)

    def append(self, tick: int, source: str, command: dict[str, float]) -> None:
        row = (tick, source, tuple(float(command[k]) for k in self.keys))
        with self._lock:
            self._rows.append(row)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def since(self, first_tick: int) -> tuple[list[int], list[str], np.ndarray]:
        """Ticks >= first_tick still kept: (ticks, sources, commands (n, len(keys)))."""
        with self._lock:
            rows = [row for row in self._rows if row[0] >= first_tick]
        commands = np.array([row[2] for row in rows], dtype=np.float32).reshape(len(rows), len(self.keys))
        return [row[0] for row in rows], [row[1] for row in rows], commands
