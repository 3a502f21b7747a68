"""Auto-hold on surprise: when the world stops matching the policy's expectations, hold and ask
the operator to take over.

Two signals, both already measured by the session:
- foresight error: when the prediction made at tick t is judged at t+H (runtime/foresight_reckoning),
  its PSNR against the real frame (mean over cameras) below `min_foresight_psnr_db`, or its latent
  L2 above `max_foresight_latent_l2` (when the policy can encode frames);
- chunk-switch jump: a new chunk whose first step differs from the command sent the tick before
  by more than `max_seam` (robot_io/chunk_blending.Seam.raw, before blending), i.e. the policy
  changed its mind abruptly.

With a calibration (robot_io/surprise_calibration.py: `--auto-hold-calibration FILE`, or
surprise_calibration.json beside the checkpoint) the foresight signal uses its threshold, set at a
chosen false-alarm rate on the checkpoint's own successful held-out episodes, instead of
`min_foresight_psnr_db`; and every judged prediction gets a calibrated score (`SurpriseGauge`)
that the status bar and Rerun show, auto-hold on or off.

Off by default (an operator turns it on per session, e.g. while collecting corrections); a
threshold of None leaves that signal out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from robot_io.chunks.blending import Seam
from runtime.control.foresight_reckoning import ForesightPoint
from robot_io.surprise_calibration import SurpriseCalibration


@dataclass(frozen=True)
class SurpriseConfig:
    # hold and ask the operator to take over when the policy surprises
    enabled: bool = False
    # hold when a judged foresight's PSNR, mean over cameras, is below this (dB); set it under what
    # copying frame t scores in the scene (model.evaluate prints that baseline)
    min_foresight_psnr_db: float | None = 16.0
    max_foresight_latent_l2: float | None = None
    max_seam: float | None = 0.35  # hold when a new chunk's first step jumps more than this (rad or gripper units)
    calibration: SurpriseCalibration | None = None  # replaces min_foresight_psnr_db when given

    def __post_init__(self) -> None:
        if self.calibration is not None and not isinstance(self.calibration, SurpriseCalibration):
            raise TypeError(f"SurpriseConfig.calibration must be a SurpriseCalibration, got {type(self.calibration).__name__}")
        for name in ("min_foresight_psnr_db", "max_foresight_latent_l2", "max_seam"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value <= 0):
                raise ValueError(f"SurpriseConfig.{name} must be a positive number or None, got {value!r}")


@dataclass(frozen=True)
class Surprise:
    tick: int
    kind: str  # "foresight_psnr", "foresight_calibrated", "foresight_latent_l2" or "seam"
    value: float
    threshold: float

    def describe(self) -> str:
        what = {"foresight_psnr": "foresight PSNR", "foresight_calibrated": "foresight PSNR",
                "foresight_latent_l2": "foresight latent L2", "seam": "chunk-switch jump"}[self.kind]
        relation = "below" if self.kind.startswith("foresight_") and self.kind != "foresight_latent_l2" else "above"
        calibrated = "calibrated " if self.kind == "foresight_calibrated" else ""
        return f"{what} {self.value:.3g} is {relation} the {calibrated}threshold {self.threshold:.3g}"


@dataclass(frozen=True)
class SurpriseGauge:
    """The calibrated score of the latest judged prediction."""

    tick: int  # when it was judged (t + H)
    psnr_db: float  # its foresight error: mean PSNR over cameras
    p_value: float  # share of the calibration's successful scores at least as bad (small: surprising)
    threshold_psnr_db: float
    false_alarm: float
    alarm: bool  # below the threshold


def foresight_psnr(judged: Sequence[ForesightPoint]) -> float:
    """The foresight error of one judged prediction: its PSNR (dB), mean over cameras."""
    return sum(p.psnr_db for p in judged) / len(judged)


def surprise_gauge(calibration: SurpriseCalibration | None, tick: int,
                   judged: Sequence[ForesightPoint]) -> SurpriseGauge | None:
    """The calibrated score of the predictions judged this tick; None without a calibration or judgement."""
    if calibration is None or not judged:
        return None
    psnr = foresight_psnr(judged)
    return SurpriseGauge(tick, psnr, calibration.p_value(psnr), calibration.threshold_psnr_db,
                         calibration.false_alarm, calibration.is_alarm(psnr))


def foresight_surprise(config: SurpriseConfig, tick: int, judged: Sequence[ForesightPoint]) -> Surprise | None:
    """The predictions judged this tick (one point per camera), against the thresholds."""
    if not config.enabled or not judged:
        return None
    psnr = foresight_psnr(judged)
    if config.calibration is not None:
        if config.calibration.is_alarm(psnr):
            return Surprise(tick, "foresight_calibrated", psnr, config.calibration.threshold_psnr_db)
    elif config.min_foresight_psnr_db is not None and psnr < config.min_foresight_psnr_db:
        return Surprise(tick, "foresight_psnr", psnr, config.min_foresight_psnr_db)
    latents = [p.latent_l2 for p in judged if p.latent_l2 is not None]
    if config.max_foresight_latent_l2 is not None and latents:
        l2 = sum(latents) / len(latents)
        if l2 > config.max_foresight_latent_l2:
            return Surprise(tick, "foresight_latent_l2", l2, config.max_foresight_latent_l2)
    return None


def seam_surprise(config: SurpriseConfig, seam: Seam) -> Surprise | None:
    if not config.enabled or config.max_seam is None or seam.raw <= config.max_seam:
        return None
    return Surprise(seam.tick, "seam", seam.raw, config.max_seam)
