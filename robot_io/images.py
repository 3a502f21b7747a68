"""Image helpers every layer shares: the letterbox the policy sees its cameras through, and the
scores a predicted picture gets against the real one (PSNR, latent L2).

One definition each, so the live foresight judge, the open-loop replay, training and
model.evaluate fit and score pictures the same way.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

PEAK = 255.0  # uint8 pictures
MAX_PSNR_DB = 100.0  # identical pictures: reported as this instead of infinity (JSON has no inf)


def letterbox(frame: np.ndarray, height: int, width: int | None = None) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (height, width, 3) (width None: a square): scaled to fit with
    antialiased bilinear resampling and centred on black. The policy's input transform, so a
    non-square camera lines up with the picture the policy predicts for it."""
    width = height if width is None else width
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"camera frames must be uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
    h, w = frame.shape[:2]
    if h == 0 or w == 0:
        raise ValueError(f"camera frame is empty: {frame.shape}")
    if (h, w) == (height, width):
        return frame
    scale = min(height / h, width / w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    # .float() copies anyway; reading through torch.tensor also accepts the session's read-only frames
    image = torch.tensor(frame).permute(2, 0, 1)[None].float()  # (1, 3, H, W)
    image = F.interpolate(image, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)
    out = np.zeros((height, width, 3), dtype=np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    out[top : top + new_h, left : left + new_w] = image[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()
    return out


def psnr_db(pred: np.ndarray, target: np.ndarray) -> float:
    """Two uint8 (H, W, 3) pictures of one shape -> dB, capped at MAX_PSNR_DB."""
    if pred.shape != target.shape:
        raise ValueError(f"PSNR needs pictures of one shape, got {pred.shape} and {target.shape}")
    # Sum of squared differences in OpenCV: far cheaper than numpy's float copies (control thread).
    mse = cv2.norm(np.ascontiguousarray(pred), np.ascontiguousarray(target), cv2.NORM_L2SQR) / pred.size
    if mse == 0.0:
        return MAX_PSNR_DB
    return min(MAX_PSNR_DB, 10.0 * float(np.log10(PEAK**2 / mse)))


def psnr(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 pairs -> (...) dB: psnr_db of each pair."""
    if pred.shape != target.shape or pred.ndim < 3 or pred.shape[-1] != 3:
        raise ValueError(f"need two (..., H, W, 3) pictures of one shape, got {pred.shape} and {target.shape}")
    lead = pred.shape[:-3]
    flat_pred, flat_target = (a.reshape(-1, *a.shape[-3:]) for a in (pred, target))
    return np.array([psnr_db(p, t) for p, t in zip(flat_pred, flat_target)], dtype=np.float64).reshape(lead)


def latent_l2(a: np.ndarray, b: np.ndarray) -> float:
    """Root-mean-square distance of two latents of one shape, e.g. (C, h, w): per element, so
    views and models of different latent sizes read on one scale."""
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    if a.shape != b.shape:
        raise ValueError(f"latent L2 needs latents of one shape, got {a.shape} and {b.shape}")
    return float(np.sqrt(np.mean((a - b) ** 2)))
