"""Input/output transforms shared by the policy call and training data: letterboxing, mean/std
normalisation keyed by robot type then feature, and delta actions (joints relative to the state)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

STD_EPS = 1e-6  # (x - mean) / (std + eps), the released normalisation


def resize_square(images: Tensor, size: int) -> Tensor:
    """(M, 3, S, S) -> (M, 3, size, size), untouched when already that size."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    resized = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return resized.to(images.dtype)  # antialiased resizing has no bf16 kernel on every device


def to_model_images(frames: np.ndarray) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float (..., 3, H, W) in [-1, 1]."""
    images = torch.from_numpy(np.ascontiguousarray(frames)).float().div_(127.5).sub_(1.0)
    return images.movedim(-1, -3).contiguous()  # NCHW memory, which the convs are fastest on


def to_uint8_images(images: torch.Tensor) -> np.ndarray:
    """float (..., 3, H, W) in [-1, 1] -> uint8 (..., H, W, 3)."""
    pixels = ((images.float().clamp(-1, 1) + 1) * 127.5).round().byte()
    return pixels.movedim(-3, -1).cpu().numpy()


def pad_last_dim(x: np.ndarray, size: int) -> np.ndarray:
    """float (..., D) -> float32 (..., size), zero-padded (state and actions fill max_state/action_dim)."""
    out = np.zeros((*x.shape[:-1], size), np.float32)
    out[..., : x.shape[-1]] = x
    return out


@dataclass(frozen=True)
class Normalizer:
    mean: np.ndarray  # (D,)
    std: np.ndarray  # (D,)

    @classmethod
    def from_stats(cls, stats: dict, robot_type: str, feature: str, dim: int) -> Normalizer:
        if robot_type not in stats:
            raise ValueError(f"no normalisation stats for robot type {robot_type!r}; stats hold {sorted(stats)}")
        if feature not in stats[robot_type]:
            raise ValueError(f"stats of {robot_type!r} have no {feature!r}; they hold {sorted(stats[robot_type])}")
        entry = stats[robot_type][feature]
        mean, std = np.asarray(entry["mean"], dtype=np.float32), np.asarray(entry["std"], dtype=np.float32)
        if mean.shape != (dim,) or std.shape != (dim,):
            raise ValueError(f"stats {robot_type!r} / {feature!r} have {mean.shape[0]} dims, expected {dim}")
        if not (np.isfinite(mean).all() and np.isfinite(std).all()) or (std < 0).any():
            raise ValueError(f"stats {robot_type!r} / {feature!r} hold NaN, infinite or negative values")
        return cls(mean, std)

    def normalize(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / (self.std + STD_EPS)

    def unnormalize(self, x: np.ndarray) -> np.ndarray:
        return x * (self.std + STD_EPS) + self.mean


@dataclass(frozen=True)
class DeltaActions:
    """Which action dims are relative to which state dims (joints), the rest absolute (grippers)."""

    action_index: np.ndarray  # (K,) action dims that are deltas
    state_index: np.ndarray  # (K,) the state dim each is relative to

    @classmethod
    def by_name(cls, action_keys: list[str], state_keys: list[str], absolute_word: str = "gripper") -> DeltaActions:
        """Every action key without `absolute_word` is a delta of the state key of the same name."""
        pairs = [(i, key) for i, key in enumerate(action_keys) if absolute_word not in key]
        missing = [key for _, key in pairs if key not in state_keys]
        if missing:
            raise ValueError(f"delta actions need a state of the same name for {missing}")
        return cls(np.array([i for i, _ in pairs], dtype=np.int64), np.array([state_keys.index(k) for _, k in pairs], dtype=np.int64))

    def to_delta(self, actions: np.ndarray, state: np.ndarray) -> np.ndarray:
        """actions (..., T, A) absolute -> relative on the delta dims, for state (..., S)."""
        out = actions.copy()
        out[..., self.action_index] -= self._reference(state)
        return out

    def to_absolute(self, actions: np.ndarray, state: np.ndarray) -> np.ndarray:
        out = actions.copy()
        out[..., self.action_index] += self._reference(state)
        return out

    def _reference(self, state: np.ndarray) -> np.ndarray:
        return state[..., None, self.state_index]  # (..., 1, K), broadcast over the chunk
