"""One optimisation step of the policy network: loss = L_act + w * L_gen, AdamW (0.9, 0.95).

The image tokenizer is frozen here (latents come precomputed in the batch); it is trained on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from model.config import OptimConfig
from model.internvla import InternVLA, ModelInputs


@dataclass
class TrainBatch:
    inputs: ModelInputs
    actions: Tensor  # (B, chunk, max_action_dim) normalised, zero-padded
    target_latents: Tensor  # (B, N, C, h, w) tokenizer latents of frame t+15
    action_mask: Tensor | None = None  # (B, max_action_dim) bool, real action dims
    action_is_pad: Tensor | None = None  # (B, chunk) bool, steps past the episode end (not learned)
    frame_weight: Tensor | None = None  # (B,) each frame's weight in L_act (model/frame_weights.py); None: all 1


def trainable_parameters(model: InternVLA) -> list[torch.nn.Parameter]:
    frozen = set() if model.cosmos is None else {id(p) for p in model.cosmos.parameters()}
    return [p for p in model.parameters() if p.requires_grad and id(p) not in frozen]


def make_optimizer(model: InternVLA, config: OptimConfig | None = None) -> torch.optim.AdamW:
    c = config or model.config.optim
    return torch.optim.AdamW(trainable_parameters(model), lr=c.lr, betas=c.betas, eps=c.eps, weight_decay=c.weight_decay)


def train_step(model: InternVLA, optimizer: torch.optim.Optimizer, batch: TrainBatch) -> dict[str, float]:
    """Forward, backward, clip, step. Returns the losses and the gradient norm before clipping."""
    model.train()
    optimizer.zero_grad(set_to_none=True)
    losses = model(batch.inputs, batch.actions, batch.target_latents, batch.action_mask, action_is_pad=batch.action_is_pad,
                   frame_weight=batch.frame_weight)
    losses["loss"].backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, model.config.optim.grad_clip_norm)
    optimizer.step()
    return {name: value.item() for name, value in losses.items()} | {"grad_norm": grad_norm.item()}
