"""InternVLAPolicy: the console's Policy interface around the InternVLA-A1 network.

observation (scalar state keys + uint8 camera frames) + instruction -> 50 absolute actions, a
predicted picture 15 steps ahead per camera, its latents, and per-stage timings.

The generation expert reads frames t-15 and t. The policy keeps the last 16 frames it has seen:
call `observe` every control tick for a true t-15; otherwise each `infer` call counts as one step.
The first call uses frame t for both.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.checkpoint import Stats, load_checkpoint
from model.internvla import InternVLA, ModelInputs
from model.preprocess import (
    ACTION_FEATURE,
    STATE_FEATURE,
    DeltaActions,
    Normalizer,
    letterbox,
    pad_last_dim,
    to_model_images,
    to_uint8_images,
)
from model.understanding import build_text_tokenizer
from robot_io.policy import Policy, PolicyOutput

ACTION_MODES = ("delta", "absolute")
Frames = dict[str, np.ndarray | None]  # camera -> letterboxed uint8 frame, None when the camera gave none


class InternVLAPolicy(Policy):
    name = "internvla"

    def __init__(
        self,
        model: InternVLA,
        stats: Stats,
        *,
        state_keys: Sequence[str],
        action_keys: Sequence[str],
        camera_keys: Sequence[str],
        robot_type: str | None = None,
        action_mode: str = "delta",
        text_tokenizer: Any | None = None,
        seed: int | None = None,
    ) -> None:
        c = model.config
        self.model = model.eval()
        self.config = c
        self.state_keys, self.action_keys, self.camera_keys = list(state_keys), list(action_keys), list(camera_keys)
        if not self.state_keys or not self.action_keys:
            raise ValueError("the policy needs at least one state key and one action key")
        if len(self.camera_keys) > c.num_cameras:
            raise ValueError(f"{len(self.camera_keys)} cameras {self.camera_keys}, but the model takes at most {c.num_cameras}")
        if len(self.state_keys) > c.max_state_dim or len(self.action_keys) > c.max_action_dim:
            raise ValueError(
                f"{len(self.state_keys)} state / {len(self.action_keys)} action dims exceed the model's "
                f"{c.max_state_dim} / {c.max_action_dim}"
            )
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode must be one of {ACTION_MODES}, got {action_mode!r}")
        robot_type = _pick_robot_type(stats, robot_type)
        self.stats = stats
        self.state_norm = Normalizer.from_stats(stats, robot_type, STATE_FEATURE, len(self.state_keys))
        self.action_norm = Normalizer.from_stats(stats, robot_type, ACTION_FEATURE, len(self.action_keys))
        self.delta = DeltaActions.by_name(self.action_keys, self.state_keys) if action_mode == "delta" else None
        self.text_tokenizer = text_tokenizer or build_text_tokenizer(c.text)
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self._generator = torch.Generator(device=self.device)  # the policy's own noise, leaving torch's global RNG alone
        self.seed(seed)
        self.history = FrameHistory(c.foresight.history_steps)
        self._last_observed: dict[str, Any] | None = None

    @classmethod
    def from_checkpoint(
        cls,
        folder: str | Path,
        *,
        tokenizer_folder: str | Path | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        **kwargs: Any,
    ) -> InternVLAPolicy:
        model, stats = load_checkpoint(folder, tokenizer_folder, device, dtype)
        text_tokenizer = build_text_tokenizer(model.config.text, folder)  # the Qwen tokenizer's files sit beside the weights
        return cls(model, stats, text_tokenizer=text_tokenizer, **kwargs)

    def seed(self, seed: int | None) -> None:
        """Fix the flow-matching noise from here on (None: a fresh random seed)."""
        if seed is None:
            self._generator.seed()
        else:
            self._generator.manual_seed(seed)

    def reset(self) -> None:
        self.history.clear()
        self._last_observed = None

    def observe(self, observation: dict[str, Any]) -> None:
        """Record this control tick's frames (for frame t-15); cheap, no model call."""
        if observation is self._last_observed:  # infer() after observe() on the same tick
            return
        self._last_observed = observation
        self.history.push(self._frames(observation))

    def infer(self, observation: dict[str, Any], instruction: str) -> PolicyOutput:
        started = time.perf_counter()
        text_tokens, text_mask = self.text_tokenizer([_check_instruction(instruction)])
        state = self._state(observation)
        self.observe(observation)
        now, past = self.history.now, self.history.past
        present = [i for i, key in enumerate(self.camera_keys) if now[key] is not None]  # slots with a frame t
        images, history_frames, camera_mask = self._camera_tensors(now, past)

        with torch.inference_mode():
            stage = _StageClock(self.device)
            history_latents = self.model.encode_frames(history_frames)
            encode_ms = stage.lap()
            inputs = ModelInputs(
                images=images,
                camera_mask=camera_mask,
                text_tokens=text_tokens.to(self.device),
                text_mask=text_mask.to(self.device),
                history_latents=history_latents,
                state=self._model_state(state),
            )
            layout, cache = self.model.prefill_prefix(inputs)
            prefix_ms = stage.lap()
            cache, latents = self.model.prefill_generation(inputs, layout, cache)
            generation_ms = stage.lap()
            noise = torch.randn(
                1, self.config.chunk_size, self.config.max_action_dim, generator=self._generator, device=self.device
            ).to(self.dtype)
            actions = self.model.denoise(inputs.state, layout, cache, noise)
            denoise_ms = stage.lap()
            latents = latents[:, present]  # (1, P, C, h, w)
            pictures = self.model.decode_latents(latents)
            decode_ms = stage.lap()

        actions = self._unnormalize(actions[0, :, : len(self.action_keys)].float().cpu().numpy(), state)
        keys = [self.camera_keys[i] for i in present]
        return PolicyOutput(
            actions=actions,
            foresight=dict(zip(keys, to_uint8_images(pictures[0]))),
            foresight_latents=dict(zip(keys, latents[0].float().cpu().numpy())),
            timings_ms={
                "prefix": prefix_ms,
                "generation_decode": encode_ms + generation_ms + decode_ms,
                "denoise": denoise_ms,
                "total": (time.perf_counter() - started) * 1e3,
            },
        )

    # ---- observation -> model inputs -> actions ---------------------------------------------

    def _frames(self, observation: dict[str, Any]) -> Frames:
        frames: Frames = {}
        for key in self.camera_keys:
            frame = observation.get(key)
            if frame is not None and not isinstance(frame, np.ndarray):
                raise ValueError(f"camera {key!r} must be a uint8 (H, W, 3) array, got {type(frame).__name__}")
            frames[key] = None if frame is None else letterbox(frame, self.config.image_size)
        return frames

    def _state(self, observation: dict[str, Any]) -> np.ndarray:
        missing = [key for key in self.state_keys if key not in observation]
        if missing:
            raise ValueError(f"observation lacks state keys {missing}")
        state = np.array([float(observation[key]) for key in self.state_keys], dtype=np.float32)
        bad = [key for key, value in zip(self.state_keys, state) if not np.isfinite(value)]
        if bad:
            raise ValueError(f"state holds NaN or infinite values at {bad}")
        return state

    def _camera_tensors(self, now: Frames, past: Frames) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """N camera slots -> images (1, N, 3, S, S), frames t-15 and t (1, N, 2, 3, S, S), mask (1, N).

        Absent cameras (and unused slots) are black frames masked out of attention; a camera with
        no frame t-15 yet uses frame t for both.
        """
        c = self.config
        unused = [None] * (c.num_cameras - len(self.camera_keys))
        current = [now[key] for key in self.camera_keys] + unused
        earlier = [past[key] for key in self.camera_keys] + unused
        blank = np.zeros((c.image_size, c.image_size, 3), np.uint8)
        frames_t = [blank if f is None else f for f in current]
        frames = np.stack([np.stack([t if p is None else p, t]) for p, t in zip(earlier, frames_t)])  # (N, 2, S, S, 3)
        history = to_model_images(frames)[None].to(device=self.device, dtype=self.dtype)  # (1, N, 2, 3, S, S) in [-1, 1]
        mask = torch.tensor([[f is not None for f in current]], device=self.device)
        return history[:, :, 1], history, mask

    def _model_state(self, state: np.ndarray) -> torch.Tensor:
        """Normalised and zero-padded to max_state_dim: (1, max_state_dim)."""
        padded = pad_last_dim(self.state_norm.normalize(state), self.config.max_state_dim)
        return torch.from_numpy(padded)[None].to(device=self.device, dtype=self.dtype)

    def _unnormalize(self, actions: np.ndarray, state: np.ndarray) -> np.ndarray:
        actions = self.action_norm.unnormalize(actions)
        if self.delta is not None:
            actions = self.delta.to_absolute(actions, state)
        if not np.isfinite(actions).all():
            raise RuntimeError("the model produced NaN or infinite actions; refusing to send them")
        return actions.astype(np.float32)


class FrameHistory:
    """Letterboxed frames of the last `steps` + 1 ticks: frame t and frame t - steps (or the oldest kept)."""

    def __init__(self, steps: int) -> None:
        self._frames: deque[Frames] = deque(maxlen=steps + 1)

    def push(self, frames: Frames) -> None:
        self._frames.append(frames)

    def clear(self) -> None:
        self._frames.clear()

    @property
    def now(self) -> Frames:
        return self._frames[-1]

    @property
    def past(self) -> Frames:
        return self._frames[0]


def _check_instruction(instruction: str) -> str:
    if not isinstance(instruction, str) or not instruction.strip():
        raise ValueError("instruction is empty")
    return instruction


def _pick_robot_type(stats: Stats, robot_type: str | None) -> str:
    if robot_type is not None:
        return robot_type
    if len(stats) != 1:
        raise ValueError(f"stats hold robot types {sorted(stats)}; name one with robot_type=")
    return next(iter(stats))


class _StageClock:
    """Milliseconds between laps, waiting for the GPU so each stage is charged its own work."""

    def __init__(self, device: torch.device) -> None:
        self._sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self._last = time.perf_counter()

    def lap(self) -> float:
        self._sync()
        now = time.perf_counter()
        elapsed, self._last = (now - self._last) * 1e3, now
        return elapsed
