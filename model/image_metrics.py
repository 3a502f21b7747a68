"""Picture quality against a reference: PSNR and SSIM of uint8 RGB frames, one value per picture.

Used to judge decoded foresight against the real future frame (and against the "nothing moves"
baseline of copying frame t).
"""

from __future__ import annotations

import cv2
import numpy as np

from robot_io.images import PEAK

SSIM_WINDOW = 11  # Gaussian window of Wang et al. (2004)
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def ssim(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 pairs -> (...) mean SSIM over pixels and colour channels."""
    _check_pair(pred, target)
    lead = pred.shape[:-3]
    flat_pred, flat_target = (a.reshape(-1, *a.shape[-3:]) for a in (pred, target))
    return np.array([_ssim_one(p, t) for p, t in zip(flat_pred, flat_target)]).reshape(lead)


def _ssim_one(pred: np.ndarray, target: np.ndarray) -> float:
    x, y = pred.astype(np.float64), target.astype(np.float64)
    edge = SSIM_WINDOW // 2  # keep the valid region only, as the reference code does

    def blur(image: np.ndarray) -> np.ndarray:
        smooth = cv2.GaussianBlur(image, (SSIM_WINDOW, SSIM_WINDOW), SSIM_SIGMA, borderType=cv2.BORDER_REFLECT)
        return smooth[edge:-edge, edge:-edge]

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (SSIM_K1 * PEAK) ** 2, (SSIM_K2 * PEAK) ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return float(index.mean())


def _check_pair(pred: np.ndarray, target: np.ndarray) -> None:
    if pred.shape != target.shape or pred.ndim < 3 or pred.shape[-1] != 3:
        raise ValueError(f"need two (..., H, W, 3) pictures of one shape, got {pred.shape} and {target.shape}")
    if min(pred.shape[-3:-1]) < SSIM_WINDOW:
        raise ValueError(f"pictures must be at least {SSIM_WINDOW} pixels on a side, got {pred.shape[-3:-1]}")
