"""A calibrated surprise gauge: how unusual a judged foresight is for a policy that is succeeding.

The foresight error of one judged prediction (every camera's picture for tick t+H against the
real frame, runtime/control/foresight_reckoning.py) is its mean PSNR over cameras; the lower, the
worse. A calibration (made by `python -m runtime.calibrate_surprise`) holds the errors this
checkpoint's predictions made in successful held-out episodes, and from them a split-conformal
threshold at a chosen false-alarm rate alpha: with n calibration scores (nonconformity
s = -PSNR), the ceil((n + 1)(1 - alpha))-th smallest. A new score above it happens in a
successful run with probability at most alpha (the scores exchangeable). Two units:
- "prediction": every judged prediction of the successful episodes is a score: alpha is the
  share of judged predictions of a successful run that raise the alarm;
- "episode": each successful episode's worst prediction is one score: alpha is the share of
  successful episodes in which the alarm goes off at all.

The live score is the conformal p-value of a prediction: the share (with the +1 of the finite
sample) of calibration scores at least as bad. Small is surprising; the alarm goes off when the
prediction's PSNR is below the threshold.

Stored as a small JSON file, by default beside the checkpoint (CALIBRATION_FILE).
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

CALIBRATION_FILE = "surprise_calibration.json"  # beside a checkpoint's model.safetensors
UNITS = ("prediction", "episode")
FORMAT = "foresight-surprise-calibration/1"


class CalibrationError(ValueError):
    """A calibration that cannot be made or read, with the reason."""


def conformal_threshold(scores: Sequence[float], false_alarm: float) -> float:
    """The split-conformal threshold of nonconformity `scores` at rate `false_alarm`: the
    ceil((n + 1)(1 - alpha))-th smallest score. CalibrationError when there are too few scores
    for that rate (it needs n >= 1/alpha - 1)."""
    return sorted(scores)[conformal_rank(len(scores), false_alarm) - 1]


def conformal_rank(n: int, false_alarm: float) -> int:
    """ceil((n + 1)(1 - alpha)): which of n sorted scores is the threshold; CalibrationError when
    there are too few scores for that rate."""
    if not 0 < false_alarm < 1:
        raise CalibrationError(f"the false-alarm rate must be between 0 and 1, got {false_alarm}")
    rank = math.ceil((n + 1) * (1 - false_alarm))
    if rank > n:
        raise CalibrationError(f"{n} calibration scores are too few for a {false_alarm:g} false-alarm rate: "
                               f"it needs at least {math.ceil(1 / false_alarm - 1)}; run more episodes")
    return rank


@dataclass(frozen=True)
class SurpriseCalibration:
    false_alarm: float  # alpha, the chosen false-alarm rate
    unit: str  # one of UNITS: what one score is
    scores: tuple[float, ...]  # sorted nonconformity scores (-PSNR dB) of the successful calibration episodes
    episodes: int  # successful episodes the scores come from
    checkpoint: str = ""  # what was calibrated
    seeds: tuple[int, int] = (0, 0)  # first and last seed of the calibration episodes
    setting: str = ""  # the conveyor setting the episodes ran in

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise CalibrationError(f"unit must be one of {UNITS}, got {self.unit!r}")
        if list(self.scores) != sorted(self.scores) or not all(math.isfinite(s) for s in self.scores):
            raise CalibrationError("scores must be finite and sorted")
        conformal_threshold(self.scores, self.false_alarm)  # refuses too few scores for the rate

    @classmethod
    def from_scores(cls, scores: Sequence[float], false_alarm: float, unit: str, episodes: int, **about) -> SurpriseCalibration:
        return cls(false_alarm, unit, tuple(sorted(float(s) for s in scores)), episodes, **about)

    @property
    def threshold_psnr_db(self) -> float:
        """A judged prediction whose mean PSNR is below this raises the alarm."""
        return -conformal_threshold(self.scores, self.false_alarm)

    def p_value(self, psnr_db: float) -> float:
        """The share of calibration scores at least as bad as this prediction's, finite-sample corrected."""
        at_least_as_bad = len(self.scores) - bisect.bisect_left(self.scores, -psnr_db)
        return (1 + at_least_as_bad) / (len(self.scores) + 1)

    def is_alarm(self, psnr_db: float) -> bool:
        return psnr_db < self.threshold_psnr_db

    def score_is_alarm(self, p_value: float) -> bool:
        """The alarm from a recorded score (`p_value`): exactly `is_alarm` of its PSNR. Below the
        threshold (the rank-th score) at most n - rank scores are as bad, so the p-value is at most
        (1 + n - rank) / (n + 1), which is the false-alarm rate or just under it. P-values are
        multiples of 1 / (n + 1): half a step of slack keeps a rounded score (float32 in a dataset)
        on its side."""
        n = len(self.scores)
        return p_value <= (1.5 + n - conformal_rank(n, self.false_alarm)) / (n + 1)

    def describe(self) -> str:
        return (f"{self.false_alarm:g} false alarms per successful {self.unit} "
                f"({len(self.scores)} scores from {self.episodes} successful episodes)")

    # --- file -------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Written to a temporary name and renamed: a killed run leaves no half-written file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps({"format": FORMAT, "threshold_psnr_db": self.threshold_psnr_db, **asdict(self)},
                                        indent=1))
        temporary.replace(path)

    @classmethod
    def load(cls, path: Path) -> SurpriseCalibration:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise CalibrationError(f"cannot read the surprise calibration {path}: {err}") from err
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CalibrationError(f"{path} is not a surprise calibration ({FORMAT}); make one with "
                                   "python -m runtime.calibrate_surprise")
        try:
            return cls(data["false_alarm"], data["unit"], tuple(data["scores"]), data["episodes"],
                       data.get("checkpoint", ""), tuple(data.get("seeds", (0, 0))), data.get("setting", ""))
        except (KeyError, TypeError) as err:
            raise CalibrationError(f"{path} is missing or mangles a field: {err}") from err


def calibration_for(checkpoint: Path | None, given: Path | None = None) -> SurpriseCalibration | None:
    """The calibration `given` (a flag), else the one beside `checkpoint`, else None (uncalibrated)."""
    if given is not None:
        return SurpriseCalibration.load(given)
    beside = None if checkpoint is None else Path(checkpoint) / CALIBRATION_FILE
    return SurpriseCalibration.load(beside) if beside is not None and beside.is_file() else None
