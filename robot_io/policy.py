"""The Policy interface: observation + instruction in, action chunk + foresight + timings out.

A local model, a remote client and a scripted expert all fit it. Actions are absolute,
unnormalised, in the robot's `action_features` order.

Which tick a chunk starts at: a LeRobot dataset records each tick's observation with the command
sent in that tick, so a policy trained on it predicts actions[0] for the observation's own tick.
That command has gone out by the time the chunk exists (the policy thinks while the loop runs on),
so the console runs such a chunk from actions[1] on, at the next tick (`commands_after_observation`).
A policy that plans around that latency itself, actions[0] for the next tick, says so with
`chunk_starts_next_tick` (the scripted expert).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field, replace
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from robot_io.chunks.schedule import Guide

# camera -> uint8 (H, W, 3) frame in; camera -> latent (C, h, w) out: what latent L2 compares.
FrameEncoder = Callable[[Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class PolicyOutput:
    actions: np.ndarray  # (chunk_len, action_dim) float32, absolute robot commands
    foresight: dict[str, np.ndarray] | None = None  # camera -> uint8 (H, W, 3) predicted t+15 frame
    foresight_latents: dict[str, np.ndarray] | None = None  # camera -> (16, h/8, w/8)
    timings_ms: dict[str, float] = field(default_factory=dict)  # stage -> milliseconds
    # True: the latents are here but the pictures are not decoded yet (`Policy.decode_foresight`
    # makes them), so the chunk reached the loop without waiting for the decoder.
    pictures_pending: bool = False


class Policy(abc.ABC):
    name: str = "policy"
    chunk_starts_next_tick: bool = False  # actions[0] is for the tick after the observation's
    # Ticks ahead its foresight pictures show (InternVLA-A1: 15); None: it predicts no pictures.
    foresight_horizon: int | None = None
    # `infer_guided` keeps the steps of the running plan already committed (real-time chunking's
    # guided mode); False: it ignores the plan and infers as `infer` does.
    guided_chunks: bool = False

    @abc.abstractmethod
    def infer(self, observation: dict[str, Any], instruction: str) -> PolicyOutput: ...

    def infer_guided(self, observation: dict[str, Any], instruction: str, plan: np.ndarray, committed: int) -> PolicyOutput:
        """`infer`, given the running plan: plan (n, action_dim) holds the commands already planned
        for the observation's tick and after, of which the first `committed` will run before the
        new chunk can take over. A policy with `guided_chunks` makes its chunk keep them."""
        return self.infer(observation, instruction)

    def decode_foresight(self, output: PolicyOutput) -> PolicyOutput:
        """The output with its foresight pictures, for one it returned with `pictures_pending`
        (a policy that defers its decoder); the default has nothing left to decode."""
        return output

    def observe(self, observation: dict[str, Any]) -> None:
        """Called with every control tick's observation, in order, before any `infer` on it.

        Policies that condition on past frames (InternVLA-A1 reads frame t-15) keep them here;
        the default keeps nothing."""
        return None

    def reset(self) -> None:
        """Forget any per-episode state (called at every scene reset)."""
        return None

    def frame_encoder(self) -> FrameEncoder | None:
        """Its encoder of real frames into foresight latents, for latent L2; None: it has none."""
        return None

    def close(self) -> None:
        """Release what it holds (a process, a connection); the default holds nothing."""
        return None


def with_pictures(output: PolicyOutput, pictures: dict[str, np.ndarray], decode_ms: float) -> PolicyOutput:
    """A pending output completed by its decoded pictures (camera -> uint8 (H, W, 3))."""
    return replace(output, foresight=pictures, pictures_pending=False, timings_ms=output.timings_ms | {"decode": decode_ms})


def infer_with_guide(policy: Policy, observation: dict[str, Any], instruction: str, guide: Guide | None) -> PolicyOutput:
    """The policy's chunk for this observation, guided by the running plan when the schedule gives one."""
    if guide is None:
        return policy.infer(observation, instruction)
    return policy.infer_guided(observation, instruction, guide.plan, guide.committed)


def commands_after_observation(policy: Policy, actions: np.ndarray) -> np.ndarray:
    """The chunk's commands for the ticks after the observation's, (n, action_dim): actions[0] is
    dropped when it was for the observation's own tick (see the module's docstring)."""
    kept = actions if policy.chunk_starts_next_tick else actions[1:]
    if len(kept) == 0:
        raise ValueError(f"the policy's chunk of {len(actions)} step(s) holds no command after the observation's tick: "
                         "a chunk needs at least 2 steps when actions[0] is for the observation's own tick")
    return kept

