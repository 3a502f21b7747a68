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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.checkpoint import (
    RobotLayout,
    Stats,
    check_layout,
    load_checkpoint,
    read_layout,
)
from model.internvla import InternVLA, ModelInputs
from model.preprocess import (
    DeltaActions,
    Normalizer,
    pad_last_dim,
    to_model_images,
    to_uint8_images,
)
from model.understanding import build_text_tokenizer
from robot_io.images import letterbox
from robot_io.datasets.schema import ACTION_KEY, STATE_KEY
from robot_io.policy import Policy, PolicyOutput, with_pictures
from robot_io.devices.robot import Robot, camera_keys, state_keys

ACTION_MODES = ("delta", "absolute")
Frames = dict[str, np.ndarray | None]  # camera -> letterboxed uint8 frame, None when the camera gave none


@dataclass
class Prepared:
    """One request's model inputs (batch of 1), before the batched call."""

    state: np.ndarray  # (S,) raw state, for the action post-processing
    text_tokens: torch.Tensor  # (1, T) long
    text_mask: torch.Tensor  # (1, T) bool
    images: torch.Tensor  # (1, N, 3, I, I) frame t
    history_frames: torch.Tensor  # (1, N, 2, 3, I, I) frames t-15 and t
    camera_mask: torch.Tensor  # (1, N) bool
    model_state: torch.Tensor  # (1, max_state_dim) normalised, padded
    noise: torch.Tensor  # (1, chunk, max_action_dim), from this client's generator
    present: list[int]  # camera slots with a frame t
    # Guided chunks: the running plan in model space (1, chunk, max_action_dim) and how strongly
    # each step keeps it (1, chunk): 1 for committed steps, 0 elsewhere (and without a plan).
    guide_target: torch.Tensor
    guide_weight: torch.Tensor


class InternVLAPolicy(Policy):
    name = "internvla"
    guided_chunks = True

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
        defer_pictures: bool = False,
    ) -> None:
        """defer_pictures: `infer` returns the chunk and latents with `pictures_pending`, and
        `decode_foresight` decodes the pictures (the console's live policy: the chunk first)."""
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
        self.state_norm = Normalizer.from_stats(stats, robot_type, STATE_KEY, len(self.state_keys))
        self.action_norm = Normalizer.from_stats(stats, robot_type, ACTION_KEY, len(self.action_keys))
        self.delta = DeltaActions.by_name(self.action_keys, self.state_keys) if action_mode == "delta" else None
        self.text_tokenizer = text_tokenizer or build_text_tokenizer(c.text)
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self._generator = torch.Generator(device=self.device)  # the policy's own noise, leaving torch's global RNG alone
        self.seed(seed)
        self.defer_pictures = defer_pictures
        self.history = FrameHistory(c.foresight.history_steps)
        self.foresight_horizon = c.foresight.history_steps
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
        return self._infer(self.prepare(observation, instruction))

    def infer_guided(self, observation: dict[str, Any], instruction: str, plan: np.ndarray, committed: int) -> PolicyOutput:
        """The chunk keeps plan[:committed], the commands for the observation's tick and after that
        run before it can take over (actions[0] is for the observation's tick, as plan[0])."""
        return self._infer(self.prepare(observation, instruction, plan, committed))

    def decode_foresight(self, output: PolicyOutput) -> PolicyOutput:
        if not output.pictures_pending:
            return output
        started = time.perf_counter()
        keys = list(output.foresight_latents)
        latents = torch.from_numpy(np.stack([output.foresight_latents[key] for key in keys]))  # (P, C, h, w)
        with torch.inference_mode():
            pictures = self.model.decode_latents(latents[None].to(device=self.device, dtype=self.dtype))[0]  # (P, 3, H, W)
        return with_pictures(output, dict(zip(keys, to_uint8_images(pictures))), (time.perf_counter() - started) * 1e3)

    def _infer(self, prepared: Prepared) -> PolicyOutput:
        started = time.perf_counter()
        output = infer_batch(self.model, [(self, prepared)], decode=not self.defer_pictures)[0]
        if isinstance(output, Exception):
            raise output
        output.timings_ms["total"] = (time.perf_counter() - started) * 1e3  # with this request's preprocessing
        return output

    # ---- infer, split so that several requests can share one model call (model.serve) --------

    def prepare(self, observation: dict[str, Any], instruction: str, plan: np.ndarray | None = None,
                committed: int = 0) -> Prepared:
        text_tokens, text_mask = self.text_tokenizer([_check_instruction(instruction)])
        state = self._state(observation)
        self.observe(observation)
        now, past = self.history.now, self.history.past
        images, history_frames, camera_mask = self._camera_tensors(now, past)
        noise = torch.randn(
            1, self.config.chunk_size, self.config.max_action_dim, generator=self._generator, device=self.device
        ).to(self.dtype)
        return Prepared(
            state=state,
            text_tokens=text_tokens.to(self.device),
            text_mask=text_mask.to(self.device),
            images=images,
            history_frames=history_frames,
            camera_mask=camera_mask,
            model_state=self._model_state(state),
            noise=noise,
            present=[i for i, key in enumerate(self.camera_keys) if now[key] is not None],
            **self._guide(plan, committed, state),
        )

    def finish(self, prepared: Prepared, actions: torch.Tensor, latents: torch.Tensor, pictures: torch.Tensor | None,
               timings_ms: dict[str, float]) -> PolicyOutput:
        """actions (chunk, max_action_dim), latents (P, C, h, w) and pictures (P, 3, H, W) of the
        present cameras; pictures None: not decoded yet (`pictures_pending`)."""
        absolute = self._unnormalize(actions[:, : len(self.action_keys)].float().cpu().numpy(), prepared.state)
        keys = [self.camera_keys[i] for i in prepared.present]
        return PolicyOutput(
            actions=absolute,
            foresight=None if pictures is None else dict(zip(keys, to_uint8_images(pictures))),
            foresight_latents=dict(zip(keys, latents.float().cpu().numpy())),
            timings_ms=dict(timings_ms),
            pictures_pending=pictures is None and bool(keys),
        )

    def frame_encoder(self):
        return self.encode_foresight_frames

    def encode_foresight_frames(self, frames: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Camera frames uint8 (H, W, 3) -> their tokenizer latents (C, h, w), prepared exactly as
        the generation expert's inputs are: what a foresight latent is compared against."""
        keys = [key for key in self.camera_keys if frames.get(key) is not None]
        if not keys:
            return {}
        letterboxed = np.stack([letterbox(frames[key], self.config.image_size) for key in keys])  # (K, S, S, 3)
        images = to_model_images(letterboxed)[None, :, None].to(device=self.device, dtype=self.dtype)  # (1, K, 1, 3, S, S)
        with torch.inference_mode():
            latents = self.model.encode_frames(images)[0, :, 0]  # (K, C, h, w)
        return dict(zip(keys, latents.float().cpu().numpy()))

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

    def _guide(self, plan: np.ndarray | None, committed: int, state: np.ndarray) -> dict[str, torch.Tensor]:
        """guide_target / guide_weight of Prepared: plan (n, action_dim) absolute, its first
        `committed` steps kept, in the model's space (relative to this state, normalised, padded).
        A model trained with committed steps is given at most as many as it was trained with."""
        c = self.config
        target = np.zeros((c.chunk_size, c.max_action_dim), np.float32)
        weight = np.zeros(c.chunk_size, np.float32)
        limit = c.flow.max_committed_steps or c.chunk_size
        if plan is not None and committed > 0:
            plan = np.asarray(plan, dtype=np.float32)[: min(committed, limit)]  # (k, action_dim)
            if plan.ndim != 2 or plan.shape[1] != len(self.action_keys) or not np.isfinite(plan).all():
                raise ValueError(f"a guide plan must be finite (steps, {len(self.action_keys)}), got shape {plan.shape}")
            model_space = self.action_norm.normalize(self.delta.to_delta(plan, state) if self.delta is not None else plan)
            target[: len(plan)] = pad_last_dim(model_space, c.max_action_dim)
            weight[: len(plan)] = 1.0
        return {name: torch.from_numpy(array)[None].to(device=self.device, dtype=self.dtype)
                for name, array in (("guide_target", target), ("guide_weight", weight))}

    def _unnormalize(self, actions: np.ndarray, state: np.ndarray) -> np.ndarray:
        actions = self.action_norm.unnormalize(actions)
        if self.delta is not None:
            actions = self.delta.to_absolute(actions, state)
        if not np.isfinite(actions).all():
            raise RuntimeError("the model produced NaN or infinite actions; refusing to send them")
        return actions.astype(np.float32)


def robot_layout(robot: Robot) -> RobotLayout:
    return RobotLayout(robot.name, camera_keys(robot), state_keys(robot), list(robot.action_features))


def policy_for_robot(checkpoint: str | Path, robot: Robot, seed: int | None = None, defer_pictures: bool = False) -> InternVLAPolicy:
    """The checkpoint's policy wired to this robot's keys; a CheckpointError names every difference
    when the checkpoint was trained for another layout (robot type, cameras, state or action names)."""
    return policy_for_layout(checkpoint, robot_layout(robot), seed, defer_pictures)


def policy_for_layout(checkpoint: str | Path, layout: RobotLayout, seed: int | None = None,
                      defer_pictures: bool = False) -> InternVLAPolicy:
    """policy_for_robot for a robot known by its layout (a policy process has no robot)."""
    trained = read_layout(checkpoint)
    if trained is not None:
        check_layout(trained, layout, checkpoint)
    return InternVLAPolicy.from_checkpoint(
        checkpoint, state_keys=layout.state_keys, action_keys=layout.action_keys,
        camera_keys=layout.cameras, robot_type=layout.robot_type, seed=seed, defer_pictures=defer_pictures,
    )


def infer_batch(model: InternVLA, jobs: Sequence[tuple[InternVLAPolicy, Prepared]], decode: bool = True) -> list[PolicyOutput | Exception]:
    """B prepared requests -> one model call -> B outputs (or the error of the one that failed).
    decode False: the pictures are left to `decode_foresight` (outputs with `pictures_pending`)."""
    started = time.perf_counter()
    device = jobs[0][1].images.device

    def cat(name: str) -> torch.Tensor:
        return torch.cat([getattr(prepared, name) for _, prepared in jobs])  # (B, ...)

    with torch.inference_mode():
        clock = _StageClock(device)
        history_latents = model.encode_frames(cat("history_frames"))  # (B, N, 2, C, h, w)
        encode_ms = clock.lap()
        inputs = ModelInputs(
            images=cat("images"),  # (B, N, 3, I, I)
            camera_mask=cat("camera_mask"),  # (B, N)
            text_tokens=cat("text_tokens"),  # (B, T)
            text_mask=cat("text_mask"),  # (B, T)
            history_latents=history_latents,
            state=cat("model_state"),  # (B, max_state_dim)
        )
        layout, cache = model.prefill_prefix(inputs)
        prefix_ms = clock.lap()
        cache, latents = model.prefill_generation(inputs, layout, cache)  # latents (B, N, C, h, w)
        generation_ms = clock.lap()
        weight = cat("guide_weight")  # (B, chunk)
        guide = (cat("guide_target"), weight) if bool(weight.any()) else None
        actions = model.denoise(inputs.state, layout, cache, cat("noise"), guide=guide)  # (B, chunk, max_action_dim)
        denoise_ms = clock.lap()
        chosen = [latents[b, prepared.present] for b, (_, prepared) in enumerate(jobs)]  # each (P_b, C, h, w)
        if decode:
            flat = torch.cat(chosen)  # (sum P_b, C, h, w)
            pictures = model.decode_latents(flat[None])[0] if len(flat) else flat.new_zeros(0, 3, 1, 1)  # (sum P_b, 3, H, W)
        decode_ms = clock.lap()

    timings = {
        "prefix": prefix_ms,
        "generation_decode": encode_ms + generation_ms + decode_ms,
        "denoise": denoise_ms,
        "total": (time.perf_counter() - started) * 1e3,
    }
    outputs: list[PolicyOutput | Exception] = []
    split = pictures.split([len(c) for c in chosen]) if decode else [None] * len(jobs)
    for (policy, prepared), latent, picture, action in zip(jobs, chosen, split, actions):
        try:
            outputs.append(policy.finish(prepared, action, latent, picture, timings))
        except Exception as err:  # noqa: BLE001 - e.g. non-finite actions: this request fails, the others stand
            outputs.append(err)
    return outputs



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
