"""Deadline scheduling and timing statistics for the fixed-rate control loop.

Ticks are scheduled on a fixed grid (start + n * period) so small delays do not accumulate;
a tick that starts a whole period late is counted as missed and the grid skips ahead.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass

import numpy as np

WINDOW_TICKS = 900  # statistics over the last minute at 15 Hz
STATS_REFRESH_S = 0.25  # percentiles over the window are not free: not every tick, as often as the UI polls


@dataclass(frozen=True)
class LoopStats:
    achieved_hz: float
    period_error_p50_ms: float
    period_error_p99_ms: float
    missed_ticks: int
    work_p50_ms: float  # time spent inside one tick
    work_p99_ms: float


class LoopClock:
    def __init__(self, fps: float, clock=time.perf_counter, sleep=time.sleep) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.period = 1.0 / fps
        self._clock = clock
        self._sleep = sleep
        self._next = clock()
        self._starts: collections.deque[float] = collections.deque(maxlen=WINDOW_TICKS)
        self._errors: collections.deque[float] = collections.deque(maxlen=WINDOW_TICKS)
        self._work: collections.deque[float] = collections.deque(maxlen=WINDOW_TICKS)
        self.missed_ticks = 0
        self._stats: LoopStats | None = None
        self._stats_at = float("-inf")

    def wait_for_tick(self) -> float:
        """Sleep until the next scheduled tick; returns its start time."""
        now = self._clock()
        if now < self._next:
            self._sleep(self._next - now)
            now = self._clock()
        late = now - self._next
        if late >= self.period:
            skipped = int(late // self.period)
            self.missed_ticks += skipped
            self._next += skipped * self.period
            late = now - self._next
        self._errors.append(late)
        self._starts.append(now)
        self._next += self.period
        return now

    def tick_done(self, started: float) -> None:
        self._work.append(self._clock() - started)

    def stats(self) -> LoopStats:
        """Statistics over the window, recomputed at most every STATS_REFRESH_S."""
        now = self._clock()
        if self._stats is None or now - self._stats_at >= STATS_REFRESH_S:
            self._stats, self._stats_at = self._compute_stats(), now
        return self._stats

    def _compute_stats(self) -> LoopStats:
        if len(self._starts) < 2:
            return LoopStats(0.0, 0.0, 0.0, self.missed_ticks, 0.0, 0.0)
        span = self._starts[-1] - self._starts[0]
        errors_ms = np.asarray(self._errors) * 1e3
        work_ms = np.asarray(self._work or [0.0]) * 1e3
        return LoopStats(
            achieved_hz=(len(self._starts) - 1) / span if span > 0 else 0.0,
            period_error_p50_ms=float(np.percentile(errors_ms, 50)),
            period_error_p99_ms=float(np.percentile(errors_ms, 99)),
            missed_ticks=self.missed_ticks,
            work_p50_ms=float(np.percentile(work_ms, 50)),
            work_p99_ms=float(np.percentile(work_ms, 99)),
        )
