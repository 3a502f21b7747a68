"""The console's foresight judge fed by a headless rollout (robot_io/sim/rollout.py), as the session
judges: each prediction against the real frame when its tick comes (ForesightReckoner), its error
the mean PSNR over cameras, and with a calibration its calibrated surprise score.

runtime.calibrate_surprise calibrates on what it judges; runtime.collect_corrections --unpaced
records it per frame, as the session's recording does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from robot_io.policy import PolicyOutput
from runtime.control.foresight_reckoning import ForesightReckoner
from runtime.control.policy_runner import InferenceResult
from runtime.control.surprise import SurpriseGauge, foresight_psnr, surprise_gauge
from robot_io.surprise_calibration import SurpriseCalibration


class ForesightJudge:
    """(tick, PSNR) of every judged prediction; `observe` gives this tick's judgement."""

    def __init__(self, cameras: Sequence[str], horizon: int, calibration: SurpriseCalibration | None = None) -> None:
        self._cameras = list(cameras)
        self._reckoner = ForesightReckoner(self._cameras, horizon)  # no encoder: PSNR is the error
        self._calibration = calibration
        self.tick = 0
        self.judged: list[tuple[int, float]] = []

    def add_inference(self, obs_tick: int, output: PolicyOutput) -> None:
        self._reckoner.add_inference(InferenceResult(output, obs_tick, latency_ms=0.0))

    def observe(self, observation: Mapping[str, Any]) -> tuple[float | None, SurpriseGauge | None]:
        """Judge the predictions due at this tick's frames: their mean PSNR and calibrated score, each
        None when there is none (no prediction due; no calibration)."""
        judged = self._reckoner.observe_tick(self.tick, {c: observation[c] for c in self._cameras})
        psnr = foresight_psnr(judged) if judged else None
        if psnr is not None:
            self.judged.append((self.tick, psnr))
        gauge = surprise_gauge(self._calibration, self.tick, judged)
        self.tick += 1
        return psnr, gauge
