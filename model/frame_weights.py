"""Per-frame weights of the action loss from a recording's context (robot_io/datasets/schema.py),
so fine-tuning on corrections can lean on the frames that matter most.

- Recovery frames (`intervention_segment` "recovery": the operator bringing the robot back to a
  state the policy knows, RaC's split of an intervention) weigh `recovery_weight`.
- Frames from a surprise to `surprise_window_s` after it, within its episode, weigh
  `surprise_weight`. A surprise is a frame whose `surprise_score` raised the calibration's alarm,
  or whose `foresight_psnr_db` is below the calibration's threshold: with the calibration that
  scored the recording the two agree; the PSNR also marks recordings made without one.
- A frame that is both weighs the product.

L_act is then the weighted mean over frames (model/internvla.py): a frame of weight w counts as w
frames of its batch. Weights of 1, the defaults, leave training exactly as it was; a dataset
without a column (recorded before it existed) is not weighted by it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robot_io.datasets.schema import INTERVENTION_SEGMENTS, SEGMENT_RECOVERY, UNKNOWN
from robot_io.surprise_calibration import SurpriseCalibration


@dataclass(frozen=True)
class FrameContext:
    """A dataset's context columns, each (T,) or None when the dataset has no such column."""

    segment: np.ndarray | None = None  # int64 index into INTERVENTION_SEGMENTS (-1: a name we do not know)
    foresight_psnr_db: np.ndarray | None = None  # float32, UNKNOWN where none was judged
    surprise_score: np.ndarray | None = None  # float32, UNKNOWN where none was scored


def weighting_problems(recovery_weight: float, surprise_weight: float, surprise_window_s: float) -> list[str]:
    """What is wrong with these settings (empty: nothing)."""
    values = {"recovery_weight": recovery_weight, "surprise_weight": surprise_weight, "surprise_window_s": surprise_window_s}
    return [f"{name} must be a finite number >= 0, got {value!r}" for name, value in values.items()
            if not (math.isfinite(value) and value >= 0)]


@dataclass(frozen=True)
class FrameWeighting:
    recovery_weight: float = 1.0
    surprise_weight: float = 1.0
    surprise_window_s: float = 1.0
    calibration: SurpriseCalibration | None = None  # what counts as a surprise; needed for surprise_weight != 1

    def __post_init__(self) -> None:
        problems = weighting_problems(self.recovery_weight, self.surprise_weight, self.surprise_window_s)
        if self.surprise_weight != 1 and self.calibration is None:
            problems.append("weighting the frames after a surprise needs a surprise calibration "
                            "(python -m runtime.calibrate_surprise makes one)")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def active(self) -> bool:
        return self.recovery_weight != 1 or self.surprise_weight != 1


@dataclass(frozen=True)
class WeightedFrames:
    weights: np.ndarray | None  # (T,) float32; None: every frame weighs 1
    recovery: int  # recovery frames
    surprises: int  # surprise frames
    after_surprise: int  # frames within the window after one (surprise frames included)


def surprise_frames(context: FrameContext, calibration: SurpriseCalibration) -> np.ndarray:
    """(T,) bool: the frames whose judged foresight raised the calibration's alarm."""
    columns = [c for c in (context.surprise_score, context.foresight_psnr_db) if c is not None]
    if not columns:
        return np.zeros(0, dtype=bool)
    alarm = np.zeros(len(columns[0]), dtype=bool)
    for column, is_alarm in ((context.surprise_score, calibration.score_is_alarm), (context.foresight_psnr_db, calibration.is_alarm)):
        if column is not None:
            known = np.flatnonzero(column != UNKNOWN)
            alarm[known] |= np.fromiter((is_alarm(float(v)) for v in column[known]), dtype=bool, count=len(known))
    return alarm


def frame_weights(context: FrameContext, episodes: np.ndarray, fps: float, weighting: FrameWeighting) -> WeightedFrames:
    """The weight of every frame. episodes: (T, 2) [start, end) of each frame's episode."""
    count = len(episodes)
    recovery = np.zeros(count, dtype=bool)
    if weighting.recovery_weight != 1 and context.segment is not None:
        recovery = context.segment == INTERVENTION_SEGMENTS.index(SEGMENT_RECOVERY)
    surprises = np.zeros(count, dtype=bool)
    if weighting.surprise_weight != 1:
        found = surprise_frames(context, weighting.calibration)
        surprises[: len(found)] = found
    window = round(weighting.surprise_window_s * fps)  # frames after the surprise frame
    after = np.zeros(count, dtype=bool)
    for frame in np.flatnonzero(surprises):
        after[frame : min(frame + window + 1, episodes[frame, 1])] = True
    if not (recovery.any() or after.any()):
        return WeightedFrames(None, 0, 0, 0)
    weights = np.ones(count, dtype=np.float32)
    weights[recovery] *= weighting.recovery_weight
    weights[after] *= weighting.surprise_weight
    return WeightedFrames(weights, int(recovery.sum()), int(surprises.sum()), int(after.sum()))


def describe(weighted: WeightedFrames, weighting: FrameWeighting, context: FrameContext) -> str:
    """What the weighting did to one dataset, for the training log."""
    parts = []
    if weighting.recovery_weight != 1:
        parts.append(f"{weighted.recovery} recovery frames weigh {weighting.recovery_weight:g}" if context.segment is not None
                     else "no intervention_segment column (recorded before it): no recovery weighting")
    if weighting.surprise_weight != 1:
        if context.surprise_score is None and context.foresight_psnr_db is None:
            parts.append("no surprise_score or foresight_psnr_db column: no surprise weighting")
        else:
            parts.append(f"{weighted.after_surprise} frames within {weighting.surprise_window_s:g} s after "
                         f"{weighted.surprises} surprises weigh {weighting.surprise_weight:g}")
    return "; ".join(parts)
