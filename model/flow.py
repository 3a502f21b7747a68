"""Flow matching for action chunks (pi0 convention: t = 1 is pure noise, t = 0 the data).

x_t = t * noise + (1 - t) * actions, and the network learns the velocity noise - actions; sampling
integrates it with Euler steps from t = 1 down to t = 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from model.config import FlowConfig


def sample_time(batch_size: int, config: FlowConfig, device: torch.device | str = "cpu") -> Tensor:
    """(B,) times t = Beta(alpha, beta) * scale + offset: weighted towards noisy t, never exactly 0."""
    beta = torch.distributions.Beta(
        torch.tensor(config.beta_alpha, device=device), torch.tensor(config.beta_beta, device=device)
    )
    return beta.sample((batch_size,)) * config.time_scale + config.time_offset


def sample_committed(batch_size: int, chunk: int, max_steps: int, device: torch.device | str = "cpu") -> Tensor:
    """(B, chunk) bool: each chunk's first d steps, d uniform in 0..max_steps (the steps given clean
    in training-time action conditioning). max_steps 0 draws nothing from the random stream."""
    if max_steps == 0:
        return torch.zeros(batch_size, chunk, dtype=torch.bool, device=device)
    d = torch.randint(0, max_steps + 1, (batch_size, 1), device=device)  # (B, 1)
    return torch.arange(chunk, device=device)[None] < d


def noisy_actions(actions: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """x_t for actions/noise (B, ...) and t (B,)."""
    t = t.view(-1, *([1] * (actions.ndim - 1)))
    return t * noise + (1 - t) * actions


def velocity_target(actions: Tensor, noise: Tensor) -> Tensor:
    return noise - actions


def euler_sample(velocity: Callable[[Tensor, Tensor], Tensor], noise: Tensor, steps: int,
                 guide: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Integrate dx/dt = velocity(x, t) from t = 1 (x = noise) to t = 0 in `steps` equal Euler steps.

    guide (target (B, chunk, A), weight (B, chunk)): inpainting, for real-time chunking's guided
    mode. After every step, step i of the chunk is pulled to weight[i] of the way toward where the
    target would be at that time on the straight noise -> target path (weight 1: frozen to it), so
    the other steps are denoised in attention with it and continue from it.
    """
    x = noise
    dt = -1.0 / steps
    for i in range(steps):
        t = torch.full((noise.shape[0],), 1.0 - i / steps, dtype=noise.dtype, device=noise.device)  # (B,)
        x = x + dt * velocity(x, t)
        if guide is not None:
            target, weight = guide
            on_path = noisy_actions(target, noise, t + dt)  # (B, chunk, A): the target at the new time
            x = torch.lerp(x, on_path, weight[..., None].to(x.dtype))
    return x


def time_embedding(t: Tensor, dim: int, min_period: float, max_period: float) -> Tensor:
    """Sinusoidal embedding of times t (B,) -> (B, dim): [sin | cos] over geometric periods."""
    if dim % 2:
        raise ValueError(f"time embedding width must be even, got {dim}")
    fraction = torch.linspace(0.0, 1.0, dim // 2, dtype=torch.float64, device=t.device)
    period = min_period * (max_period / min_period) ** fraction  # (dim/2,)
    angle = t.double()[:, None] * (2 * math.pi / period)[None, :]  # (B, dim/2)
    return torch.cat([angle.sin(), angle.cos()], dim=-1).to(t.dtype)
