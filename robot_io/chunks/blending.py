"""Blending a newly arrived action chunk into the one the robot is executing, and measuring seams.

The policy is asked for a new chunk while the old one still runs (every `execute_horizon` steps),
so for a while two plans cover the same future ticks. Switching from one to the other at once
makes the arm jump by however much the two predictions disagree: the *seam*. The modes:

- "none": switch at once to the new chunk. The default, as in LeRobot's and openpi's chunk
  execution: the policy is run as it was trained and measured. On the conveyor sim every
  cross-fade below cost the shipped model picks of the moving target, the more the longer it lags
  (`model.evaluate --blend`; figures in its MODEL_CARD.md).
  Also the mode for a policy that already conditions each chunk on the previous one (real-time
  chunking done inside the model), where blending again would only add lag.
- "linear": cross-fade from the running plan to the new chunk over its first `steps` overlapping
  steps, with the new chunk's weight rising (i+1)/(m+1) for i = 0..m-1, m = min(steps, overlap),
  then the new chunk alone. This approximates real-time chunking's soft guidance (Black et al.,
  2025, which pulls the new chunk's first steps toward the old plan during denoising) by a weight
  ramp after the fact. The seam shrinks about (m+1)-fold; the cost is reacting up to `steps`
  ticks later to what the new observation showed: a moving target is grasped where it was.
  For an arm whose seams jerk. Keep `steps` at or below the session's `execute_horizon`: a
  longer fade is still running when the next chunk arrives, so the robot lags the policy further.
- "exponential": ACT-style temporal ensembling (Zhao et al., 2023). Every tick's action is the
  weighted mean of all predictions for that tick from the chunks that cover it, prediction i
  (i = 0 the oldest) weighted exp(-ensemble_k * i), normalised to sum to one. Larger k trusts
  older predictions more (smoother, slower to react); k = 0 is a plain mean. It works best when
  inference runs every few steps so many predictions overlap; with few overlapping chunks the
  end of the old chunk's coverage is itself a small seam.

In every mode the blended plan ends where the new chunk ends (the newest chunk decides how long
the robot has something to do), and safety (NaN -> hold, joint and step clamps) is applied by
the session to the blended command exactly as to any other.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field

import numpy as np

BLEND_MODES = ("none", "linear", "exponential")
DEFAULT_BLEND_STEPS = 2  # ticks of cross-fade: the seam a third; the sim model lost fewer picks than with 8
DEFAULT_ENSEMBLE_K = 0.01  # ACT's published value: close to a plain mean of the predictions
SEAM_HISTORY_LENGTH = 20  # chunk switches kept for the status display


@dataclass(frozen=True)
class BlendConfig:
    # How a new action chunk takes over from the running one: one of BLEND_MODES.
    mode: str = "none"
    # "linear": ticks of cross-fade.
    steps: int = DEFAULT_BLEND_STEPS
    # "exponential": weight exp(-k*i) of the i-th oldest prediction (ACT's temporal ensemble).
    ensemble_k: float = DEFAULT_ENSEMBLE_K

    def __post_init__(self) -> None:
        if self.mode not in BLEND_MODES:
            raise ValueError(f"blend mode must be one of {', '.join(map(repr, BLEND_MODES))}; got {self.mode!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int):
            raise TypeError(f"blend steps must be an integer >= 1 (ticks of cross-fade); got {self.steps!r}")
        if self.steps < 1:
            raise ValueError(f"blend steps must be an integer >= 1 (ticks of cross-fade); got {self.steps!r}")
        if isinstance(self.ensemble_k, bool) or not isinstance(self.ensemble_k, (int, float)):
            raise TypeError(f"ensemble_k must be a number >= 0; got {self.ensemble_k!r}")
        if not math.isfinite(self.ensemble_k) or self.ensemble_k < 0:
            raise ValueError(
                f"ensemble_k must be a finite number >= 0 (0 = plain mean, larger favours older predictions); "
                f"got {self.ensemble_k!r}"
            )


@dataclass(frozen=True)
class Plan:
    """What the queue will propose from `start_tick` on: the running chunk after blending."""

    start_tick: int  # the tick of actions[0]
    actions: np.ndarray  # (steps, action_dim) float32
    counts: np.ndarray  # (steps,) int: predictions averaged into each action (1 unless "exponential")

    def end_tick(self) -> int:
        """The first tick the plan has no action for."""
        return self.start_tick + len(self.actions)

    def action_for(self, tick: int) -> np.ndarray | None:
        step = tick - self.start_tick
        if step < 0 or step >= len(self.actions):
            return None
        return self.actions[step]

    def remainder_from(self, tick: int) -> tuple[np.ndarray, np.ndarray]:
        """The actions (n, action_dim) and counts (n,) for `tick` and after; empty when used up."""
        step = max(0, tick - self.start_tick)
        return self.actions[step:], self.counts[step:]


def linear_blend(old: np.ndarray, new: np.ndarray, steps: int) -> np.ndarray:
    """Cross-fade from `old` (n_old, D) to `new` (n_new, D), both starting at the same tick.

    Returns (n_new, D). The new chunk's weight ramps (i+1)/(m+1) over m = min(steps, n_old)
    steps, so the ramp always finishes inside the overlap instead of jumping when `old` ends."""
    ramp = min(steps, len(old), len(new))
    blended = np.array(new, dtype=np.float32, copy=True)  # (n_new, D)
    if ramp == 0:
        return blended
    w_new = (np.arange(1, ramp + 1, dtype=np.float32) / (ramp + 1))[:, None]  # (ramp, 1)
    blended[:ramp] = (1.0 - w_new) * old[:ramp] + w_new * new[:ramp]
    return blended


def ensemble_weights(count: int, k: float) -> np.ndarray:
    """ACT's normalised weights (count,) for `count` predictions of one tick, oldest first."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    raw = np.exp(-k * np.arange(count, dtype=np.float64))  # (count,)
    return raw / raw.sum()


def _total_weight(counts: np.ndarray, k: float) -> np.ndarray:
    """Sum of exp(-k*i) for i < c, per entry of `counts` (n,) -> (n,) (geometric series)."""
    if k == 0:
        return counts.astype(np.float64)
    ratio = math.exp(-k)
    return (1.0 - ratio ** counts.astype(np.float64)) / (1.0 - ratio)


def ensemble_blend(
    old: np.ndarray, old_counts: np.ndarray, new: np.ndarray, k: float
) -> tuple[np.ndarray, np.ndarray]:
    """Add the predictions `new` (n_new, D) to the running ensemble `old` (n_old, D).

    `old[i]` is already the weighted mean of `old_counts[i]` predictions, so the newcomer is
    prediction number c = old_counts[i] and weighs exp(-k*c) against their total weight. The
    result equals the weighted mean of all predictions with `ensemble_weights`, without keeping
    every chunk. Returns the means (n_new, D) and counts (n_new,)."""
    overlap = min(len(old), len(new))
    blended = np.array(new, dtype=np.float32, copy=True)  # (n_new, D)
    counts = np.ones(len(new), dtype=np.int64)  # (n_new,)
    if overlap == 0:
        return blended, counts
    c = old_counts[:overlap].astype(np.int64)  # (overlap,)
    w_old = _total_weight(c, k)  # (overlap,)
    w_new = np.exp(-k * c.astype(np.float64))  # (overlap,)
    share_new = (w_new / (w_old + w_new)).astype(np.float32)[:, None]  # (overlap, 1)
    blended[:overlap] = (1.0 - share_new) * old[:overlap] + share_new * new[:overlap]
    counts[:overlap] = c + 1
    return blended, counts


def blend_into_plan(plan: Plan | None, tick: int, new: np.ndarray, config: BlendConfig) -> tuple[Plan, int]:
    """The plan from `tick` on once the new chunk's actions for `tick`, tick+1, ... (`new`,
    (n, D)) take over from `plan`. Returns the plan and the number of overlapping steps."""
    if plan is None:
        old, old_counts = new[:0], np.zeros(0, dtype=np.int64)  # (0, D), (0,)
    else:
        old, old_counts = plan.remainder_from(tick)
    overlap = min(len(old), len(new))
    if config.mode == "linear":
        actions, counts = linear_blend(old, new, config.steps), np.ones(len(new), dtype=np.int64)
    elif config.mode == "exponential":
        actions, counts = ensemble_blend(old, old_counts, new, config.ensemble_k)
    else:  # "none": the new chunk as it is
        actions, counts = np.array(new, dtype=np.float32, copy=True), np.ones(len(new), dtype=np.int64)
    return Plan(tick, actions, counts), overlap


# --- seams ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChunkSwitch:
    """The moment a new chunk took over, as the queue saw it (before safety)."""

    tick: int
    chunk_id: int
    raw_first: np.ndarray  # (action_dim,) the new chunk's own action for `tick`
    blended_first: np.ndarray  # (action_dim,) the action proposed for `tick` after blending
    overlap: int  # steps shared with the running plan (0: nothing was running)


@dataclass(frozen=True)
class Seam:
    tick: int
    chunk_id: int
    raw: float  # max over joints of |new chunk's first action - last executed command|
    blended: float  # the same for the action proposed after blending
    overlap: int  # steps blended with the running plan (0: nothing was running, raw == blended)


@dataclass(frozen=True)
class SeamStats:
    """The latest seam and a short history (newest last), for the status display."""

    last: Seam | None = None
    history: tuple[Seam, ...] = field(default=())


class SeamMeter:
    """Keeps the seams of recent chunk switches; used by the control thread only."""

    def __init__(self, history_length: int = SEAM_HISTORY_LENGTH) -> None:
        self._history: collections.deque[Seam] = collections.deque(maxlen=history_length)
        self._stats = SeamStats()

    def record(self, switch: ChunkSwitch, last_executed: np.ndarray) -> Seam:
        """Measure a switch against the command sent the tick before (`last_executed`, (D,)).

        Both seams are measured before safety, so they show what blending did, not the clamp."""
        seam = Seam(
            tick=switch.tick,
            chunk_id=switch.chunk_id,
            raw=float(np.max(np.abs(switch.raw_first - last_executed))),
            blended=float(np.max(np.abs(switch.blended_first - last_executed))),
            overlap=switch.overlap,
        )
        self._history.append(seam)
        self._stats = SeamStats(last=seam, history=tuple(self._history))
        return seam

    def stats(self) -> SeamStats:
        return self._stats
