"""The Policy interface: observation + instruction in, action chunk + foresight + timings out.

A local model, a remote client and a scripted expert all fit it. Actions are absolute,
unnormalised, in the robot's `action_features` order.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PolicyOutput:
    actions: np.ndarray  # (chunk_len, action_dim) float32, absolute robot commands
    foresight: dict[str, np.ndarray] | None = None  # camera -> uint8 (H, W, 3) predicted t+15 frame
    foresight_latents: dict[str, np.ndarray] | None = None  # camera -> (16, h/8, w/8)
    timings_ms: dict[str, float] = field(default_factory=dict)  # stage -> milliseconds


class Policy(abc.ABC):
    name: str = "policy"

    @abc.abstractmethod
    def infer(self, observation: dict[str, Any], instruction: str) -> PolicyOutput: ...

    def observe(self, observation: dict[str, Any]) -> None:
        """Called with every control tick's observation, in order, before any `infer` on it.

        Policies that condition on past frames (InternVLA-A1 reads frame t-15) keep them here;
        the default keeps nothing."""
        return None

    def reset(self) -> None:
        """Forget any per-episode state (called at every scene reset)."""
        return None
