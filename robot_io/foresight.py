"""Judging one foresight picture: what the policy predicted for frame t+H beside the real frame,
scored against the "nothing moves" guess of copying frame t.

One definition for the live console (runtime/control/foresight_reckoning.py) and the open-loop
replay (runtime/replay/open_loop.py), so both report the same figures for the same pictures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_io.images import letterbox, psnr_db


@dataclass(frozen=True)
class Reckoning:
    """One camera's prediction, judged."""

    id: int  # increases with every reckoning its owner makes (for picture URLs); -1 until stamped
    obs_tick: int  # tick (or replay step) t the prediction was made from
    target_tick: int  # t + H: the frame it was judged against
    prediction: np.ndarray  # uint8 (h, w, 3) as the policy decoded it
    actual: np.ndarray  # uint8 (h, w, 3): frame t+H letterboxed to the prediction's size
    psnr_db: float  # prediction vs actual
    baseline_psnr_db: float  # frame t, letterboxed the same way, vs actual


def reckon(prediction: np.ndarray, future: np.ndarray, present: np.ndarray, obs_tick: int, target_tick: int,
           reckoning_id: int = -1) -> Reckoning:
    """prediction uint8 (h, w, 3); future and present: the camera's frames t+H and t at any size."""
    h, w = prediction.shape[:2]
    actual = letterbox(np.asarray(future), h, w)  # (h, w, 3)
    still = letterbox(np.asarray(present), h, w)  # (h, w, 3): the "nothing moves" guess
    return Reckoning(reckoning_id, obs_tick, target_tick, prediction, actual,
                     psnr_db(prediction, actual), psnr_db(still, actual))
