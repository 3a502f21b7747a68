"""InternVLA-A1: understanding, foresight generation and flow-matching action in one Mixture-of-Transformers.

The sequence is four blocks, each reading every earlier block and itself (padding never read):

    prefix      per camera: vision-start + image tokens + vision-end, then 48 text tokens   (understanding expert)
    generation  latents of frames t-15 and t, 4x4 tokens per view per frame                  (generation expert)
    state       one token                                                                     (action expert)
    actions     chunk of 50 noisy actions + flow time                                         (action expert)

Foresight therefore never sees the state or the actions: at inference it is computed once, then the
action expert denoises reading the cached prefix + generation keys/values (three passes).
With config.action_reads_generation False, state and actions skip the generation block (an ablation).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model import flow
from model.config import ModelConfig
from model.mot import (
    ACT,
    GEN,
    UND,
    AttentionInputs,
    KVCache,
    MixtureOfTransformers,
    MRoPE,
    block_attention_mask,
)
from model.tokenizer import ImageTokenizer, build_tokenizer
from model.preprocess import resize_square
from model.understanding import build_understanding

PREFIX, GENERATION, STATE, ACTIONS = 0, 1, 2, 3  # block numbers: a token reads blocks <= its own
# config.action_reads_generation False: the action expert's blocks skip the generation block.
_ACTION_BLIND_TO_GENERATION = ((STATE, GENERATION), (ACTIONS, GENERATION))


@dataclass
class ModelInputs:
    """Model-ready tensors for B samples and N camera slots (normalisation and padding already done)."""

    images: Tensor  # (B, N, 3, S, S) in [-1, 1], frame t per slot, letterboxed to S = image_size
    camera_mask: Tensor  # (B, N) bool, False where a slot has no camera
    text_tokens: Tensor  # (B, T) long, right-padded
    text_mask: Tensor  # (B, T) bool
    history_latents: Tensor  # (B, N, F, C, h, w) tokenizer latents of frames t-15 and t
    state: Tensor  # (B, max_state_dim), zero-padded


@dataclass
class Layout:
    """Where the blocks sit in the whole sequence, their M-RoPE positions and who reads whom."""

    positions: Tensor  # (3, B, L)
    mask: Tensor  # (B, L, L) bool, query row reads key column
    prefix: slice
    generation: slice
    suffix: slice  # state + actions


class InternVLA(nn.Module):
    def __init__(self, config: ModelConfig, tokenizer: ImageTokenizer | None = None) -> None:
        super().__init__()
        self.config = config
        c, fs = config, config.foresight
        gen_width, act_width = c.gen.hidden_size, c.act.hidden_size
        rope = MRoPE(c.und.head_dim, c.rope_theta, c.mrope_section)
        self.qwen3_vl_with_expert = MixtureOfTransformers(build_understanding(c), c.gen, c.act, rope)
        # Cosmos comes from the user's TorchScript files; our autoencoder is built from the config.
        if tokenizer is None and fs.tokenizer == "conv":
            tokenizer = build_tokenizer(fs)
        self.cosmos = tokenizer
        # foresight: latents -> tokens, tokens -> predicted latent
        self.cosmos_in_proj = nn.Conv2d(fs.latent_channels, gen_width, kernel_size=1)
        self.downsample_conv = nn.Conv2d(gen_width, gen_width, kernel_size=fs.token_patch, stride=fs.token_patch)
        self.upsample_conv = nn.ConvTranspose2d(gen_width, gen_width, kernel_size=fs.token_patch, stride=fs.token_patch)
        self.cosmos_out_layer_norm = nn.LayerNorm(gen_width)
        self.cosmos_out_proj = nn.Linear(gen_width, fs.latent_channels)
        # action: state token, noisy actions + time in, velocity out
        self.state_proj = nn.Linear(c.max_state_dim, act_width)
        self.action_in_proj = nn.Linear(c.max_action_dim, act_width)
        self.action_time_mlp_in = nn.Linear(2 * act_width, act_width)
        self.action_time_mlp_out = nn.Linear(act_width, act_width)
        self.action_out_proj = nn.Linear(act_width, c.max_action_dim)
        steps, offsets = _prefix_position_pattern(c)
        self.register_buffer("prefix_steps", steps, persistent=False)  # (Lp,)
        self.register_buffer("prefix_offsets", offsets, persistent=False)  # (3, Lp)

    # ---- the four blocks -------------------------------------------------------------------

    def embed_prefix(self, x: ModelInputs) -> Tensor:
        """(B, Lp, D_und): per camera vision-start, image tokens, vision-end; then the text."""
        und = self.qwen3_vl_with_expert.und_expert
        embed = und.model.language_model.embed_tokens
        B, N = x.camera_mask.shape
        text = embed(x.text_tokens)  # (B, T, D)
        weights = x.text_mask[..., None].to(text.dtype)  # (B, T, 1)
        instruction = (text * weights).sum(1) / weights.sum(1).clamp(min=1)  # (B, D): mean of the real words
        images = und.image_tokens(x.images.flatten(0, 1), instruction.repeat_interleave(N, dim=0))  # (B*N, n, D)
        images = images.view(B, N, -1, images.shape[-1])  # (B, N, n, D)
        marks = embed(torch.tensor([self.config.text.vision_start_id, self.config.text.vision_end_id], device=images.device))
        start = marks[0].expand(B, N, 1, -1).to(images.dtype)  # (B, N, 1, D)
        end = marks[1].expand(B, N, 1, -1).to(images.dtype)
        cameras = torch.cat([start, images, end], dim=2).flatten(1, 2)  # (B, N*(n+2), D)
        return torch.cat([cameras, text.to(images.dtype)], dim=1)

    def embed_generation(self, history_latents: Tensor) -> Tensor:
        """(B, N, F, C, h, w) latents -> (B, N*F*k*k, D_gen) tokens, k = tokens_per_side, raster per frame."""
        B = history_latents.shape[0]
        x = self.cosmos_in_proj(history_latents.flatten(0, 2))  # (B*N*F, D_gen, h, w)
        x = self.downsample_conv(x)  # (B*N*F, D_gen, k, k)
        x = x.flatten(2).transpose(1, 2)  # (B*N*F, k*k, D_gen)
        return x.reshape(B, -1, x.shape[-1])

    def embed_suffix(self, state: Tensor, noisy: Tensor, t: Tensor) -> Tensor:
        """state (B, S), noisy actions (B, chunk, A), t (B,) or per chunk step (B, chunk) -> (B, 1 + chunk, D_act)."""
        state_token = self.state_proj(state)[:, None]  # (B, 1, D_act)
        actions = self.action_in_proj(noisy)  # (B, chunk, D_act)
        B, chunk, D = actions.shape
        c = self.config.flow
        t = t[:, None].expand(B, chunk) if t.ndim == 1 else t  # (B, chunk)
        time = flow.time_embedding(t.reshape(-1), D, c.min_period, c.max_period).to(actions.dtype)  # (B*chunk, D_act)
        x = torch.cat([actions, time.view(B, chunk, D)], dim=-1)  # (B, chunk, 2*D_act)
        x = self.action_time_mlp_out(F.silu(self.action_time_mlp_in(x)))  # (B, chunk, D_act)
        return torch.cat([state_token, x], dim=1)

    def foresight_head(self, gen_out: Tensor) -> Tensor:
        """Generation outputs (B, N*F*k*k, D_gen) -> predicted latent of t+15 (B, N, C, h, w)."""
        fs = self.config.foresight
        B, k = gen_out.shape[0], fs.tokens_per_side
        x = gen_out.view(B, -1, fs.num_frames, k, k, gen_out.shape[-1]).mean(dim=2)  # (B, N, k, k, D): mean over time
        N = x.shape[1]
        x = x.permute(0, 1, 4, 2, 3).flatten(0, 1)  # (B*N, D, k, k)
        x = self.upsample_conv(x)  # (B*N, D, h, w)
        x = self.cosmos_out_proj(self.cosmos_out_layer_norm(x.permute(0, 2, 3, 1)))  # (B*N, h, w, C)
        x = x.permute(0, 3, 1, 2)  # (B*N, C, h, w)
        return x.reshape(B, N, *x.shape[1:])

    def layout(self, x: ModelInputs) -> Layout:
        c = self.config
        B = x.camera_mask.shape[0]
        prefix_valid = torch.cat([x.camera_mask.repeat_interleave(c.prefix_tokens_per_camera, dim=1), x.text_mask], dim=1)  # (B, Lp)
        gen_valid = x.camera_mask.repeat_interleave(c.generation_tokens_per_camera, dim=1)  # (B, Lg)
        suffix_valid = torch.ones(B, 1 + c.chunk_size, dtype=torch.bool, device=prefix_valid.device)
        valid = torch.cat([prefix_valid, gen_valid, suffix_valid], dim=1)  # (B, L)
        Lp, Lg = prefix_valid.shape[1], gen_valid.shape[1]
        lengths = {PREFIX: Lp, GENERATION: Lg, STATE: 1, ACTIONS: c.chunk_size}
        block_ids = torch.cat([torch.full((n,), b, device=valid.device) for b, n in lengths.items()])  # (L,)
        unread = () if c.action_reads_generation else _ACTION_BLIND_TO_GENERATION

        # Prefix: Qwen3-VL's M-RoPE rule over the real tokens only (a position advances past real tokens);
        # later blocks continue 1-D after the largest prefix position, whatever their padding.
        advance = torch.cumsum(self.prefix_steps * prefix_valid, dim=1) - self.prefix_steps * prefix_valid  # (B, Lp)
        prefix_positions = advance[None] + self.prefix_offsets[:, None, :]  # (3, B, Lp)
        last = prefix_positions.masked_fill(~prefix_valid[None], -1).amax(dim=(0, 2))  # (B,)
        later = last[:, None] + 1 + torch.arange(Lg + 1 + c.chunk_size, device=valid.device)  # (B, L - Lp)
        positions = torch.cat([prefix_positions, later[None].expand(3, -1, -1)], dim=2)  # (3, B, L)

        return Layout(
            positions=positions,
            mask=block_attention_mask(block_ids, valid, unread),
            prefix=slice(0, Lp),
            generation=slice(Lp, Lp + Lg),
            suffix=slice(Lp + Lg, valid.shape[1]),
        )

    # ---- training ----------------------------------------------------------------------------

    def predict(self, x: ModelInputs, noisy: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """One full-sequence pass, t (B,) or (B, chunk) -> (predicted t+15 latents (B, N, C, h, w), velocity (B, chunk, A))."""
        layout = self.layout(x)
        blocks = [(UND, self.embed_prefix(x)), (GEN, self.embed_generation(x.history_latents)), (ACT, self.embed_suffix(x.state, noisy, t))]
        whole = slice(0, layout.suffix.stop)
        (_, gen_out, suffix_out), _ = self.qwen3_vl_with_expert(blocks, self._attention(layout, whole))
        return self.foresight_head(gen_out), self.action_out_proj(suffix_out[:, 1:])

    def forward(
        self,
        x: ModelInputs,
        actions: Tensor,
        target_latents: Tensor,
        action_mask: Tensor | None = None,
        noise: Tensor | None = None,
        t: Tensor | None = None,
        action_is_pad: Tensor | None = None,
        frame_weight: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Losses for actions (B, chunk, A) and t+15 latents (B, N, C, h, w): loss = L_act + w * L_gen.

        action_mask (B, A) bool marks the real action dims (the rest is padding); default all.
        action_is_pad (B, chunk) bool marks chunk steps past the episode end, left out of L_act; default none.
        frame_weight (B,) >= 0 makes L_act the weighted mean over frames (model/frame_weights.py); default none.
        """
        B, chunk = actions.shape[:2]
        c = self.config.flow
        noise = torch.randn_like(actions) if noise is None else noise
        t = flow.sample_time(B, c, actions.device) if t is None else t
        # Training-time action conditioning: the first d steps are given clean, at time 0, and not learned.
        committed = flow.sample_committed(B, chunk, c.max_committed_steps, actions.device)  # (B, chunk)
        noisy = torch.where(committed[..., None], actions, flow.noisy_actions(actions, noise, t))  # (B, chunk, A)
        pred_latents, velocity = self.predict(x, noisy, t[:, None].masked_fill(committed, 0.0))

        dims = torch.ones_like(actions[:, 0], dtype=torch.bool) if action_mask is None else action_mask  # (B, A)
        steps = torch.ones_like(actions[..., 0], dtype=torch.bool) if action_is_pad is None else ~action_is_pad  # (B, chunk)
        steps = steps & ~committed
        real = (steps[:, :, None] & dims[:, None, :]).float()  # (B, chunk, A)
        if frame_weight is not None:  # a frame of weight w counts as w frames
            real = real * frame_weight[:, None, None]
        action_error = (velocity - flow.velocity_target(actions, noise)).pow(2)
        # The clamp only keeps 0 / 0 (every step padded, or every weight 0) at 0.
        action_loss = (action_error * real).sum() / real.sum().clamp(min=torch.finfo(real.dtype).eps)

        views = x.camera_mask.float()  # (B, N)
        view_error = (pred_latents - target_latents).pow(2).flatten(2).mean(dim=2)  # (B, N)
        gen_loss = (view_error * views).sum() / views.sum().clamp(min=1)
        return {
            "loss": action_loss + self.config.gen_loss_weight * gen_loss,
            "action_loss": action_loss.detach(),
            "gen_loss": gen_loss.detach(),
        }

    # ---- inference: three passes over one KV cache --------------------------------------------

    @torch.no_grad()
    def prefill_prefix(self, x: ModelInputs) -> tuple[Layout, KVCache]:
        """Pass 1: the prefix alone -> its keys/values."""
        layout = self.layout(x)
        _, cache = self.qwen3_vl_with_expert([(UND, self.embed_prefix(x))], self._attention(layout, layout.prefix))
        return layout, cache

    @torch.no_grad()
    def prefill_generation(self, x: ModelInputs, layout: Layout, cache: KVCache) -> tuple[KVCache, Tensor]:
        """Pass 2: generation tokens appended to the cache -> (cache, predicted latents (B, N, C, h, w))."""
        attention = self._attention(layout, layout.generation)
        (gen_out,), cache = self.qwen3_vl_with_expert([(GEN, self.embed_generation(x.history_latents))], attention, cache)
        return cache, self.foresight_head(gen_out)

    @torch.no_grad()
    def denoise(self, state: Tensor, layout: Layout, cache: KVCache, noise: Tensor | None = None,
                guide: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Pass 3: Euler steps of the action expert reading the cache (never growing it) -> (B, chunk, A).

        noise (B, chunk, A) is scaled by flow.sample_noise_scale before the first step. guide
        (target (B, chunk, A) normalised, weight (B, chunk)): steps to keep. A model trained with
        committed steps (FlowConfig.max_committed_steps) is given them as in training: clean, at
        time 0, never moved; any other is inpainted (flow.euler_sample).
        """
        c = self.config
        if noise is None:
            noise = torch.randn(state.shape[0], c.chunk_size, c.max_action_dim, device=state.device, dtype=state.dtype)
        attention = self._attention(layout, layout.suffix)  # the same for every step
        start = noise * c.flow.sample_noise_scale  # (B, chunk, A)
        held = torch.zeros_like(start[..., 0], dtype=torch.bool)  # (B, chunk): steps given clean
        if guide is not None and c.flow.max_committed_steps > 0:
            target, weight = guide
            held = weight > 0
            start = torch.where(held[..., None], target.to(start.dtype), start)
            guide = None

        def velocity(noisy: Tensor, t: Tensor) -> Tensor:
            step_t = t[:, None].masked_fill(held, 0.0)  # (B, chunk)
            (out,), _ = self.qwen3_vl_with_expert([(ACT, self.embed_suffix(state, noisy, step_t))], attention, cache)
            return self.action_out_proj(out[:, 1:]).masked_fill(held[..., None], 0.0)  # (B, chunk, A), skipping the state token

        return flow.euler_sample(velocity, start, c.flow.denoise_steps, guide)

    @torch.no_grad()
    def sample(self, x: ModelInputs, noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """-> (actions (B, chunk, A) normalised, predicted t+15 latents (B, N, C, h, w))."""
        layout, cache = self.prefill_prefix(x)
        cache, latents = self.prefill_generation(x, layout, cache)
        return self.denoise(x.state, layout, cache, noise), latents

    def _attention(self, layout: Layout, span: slice) -> AttentionInputs:
        """RoPE and mask for the tokens of `span`, which read every token up to the span's end."""
        dtype = self.action_out_proj.weight.dtype
        return self.qwen3_vl_with_expert.attention_inputs(layout.positions[:, :, span], layout.mask[:, span, : span.stop], dtype)

    # ---- tokenizer -----------------------------------------------------------------------------

    def encode_frames(self, frames: Tensor) -> Tensor:
        """(B, N, F, 3, S, S) in [-1, 1] -> tokenizer latents (B, N, F, C, h, w)."""
        flat = resize_square(frames.flatten(0, 2), self.config.foresight.image_size)
        latents = self._tokenizer().encode(flat)
        return latents.view(*frames.shape[:3], *latents.shape[1:])

    def decode_latents(self, latents: Tensor) -> Tensor:
        """(B, N, C, h, w) -> pictures (B, N, 3, H, W) in [-1, 1]."""
        images = self._tokenizer().decode(latents.flatten(0, 1))
        return images.view(*latents.shape[:2], *images.shape[1:])

    def _tokenizer(self) -> ImageTokenizer:
        if self.cosmos is None:
            raise RuntimeError("no image tokenizer: build InternVLA with a CosmosTokenizer for this config")
        return self.cosmos


def _prefix_position_pattern(c: ModelConfig) -> tuple[Tensor, Tensor]:
    """How far each prefix token advances the position, and its (t, h, w) offset from the running position.

    Text and vision marks advance by 1. An image's tokens share the running position p, offset by
    (0, row, col) in its k x k grid, and the image as a whole advances by k (Qwen3-VL's rule).
    """
    k = c.vision.tokens_per_side
    rows, cols = torch.meshgrid(torch.arange(k), torch.arange(k), indexing="ij")
    image_offsets = torch.stack([torch.zeros(k * k, dtype=torch.long), rows.flatten(), cols.flatten()])  # (3, k*k)
    image_steps = torch.zeros(k * k, dtype=torch.long)
    image_steps[-1] = k
    mark = torch.ones(1, dtype=torch.long)
    camera_steps = torch.cat([mark, image_steps, mark])  # vision-start, image, vision-end
    camera_offsets = torch.cat([torch.zeros(3, 1, dtype=torch.long), image_offsets, torch.zeros(3, 1, dtype=torch.long)], dim=1)
    steps = torch.cat([camera_steps.repeat(c.num_cameras), torch.ones(c.text.max_tokens, dtype=torch.long)])
    offsets = torch.cat([camera_offsets.repeat(1, c.num_cameras), torch.zeros(3, c.text.max_tokens, dtype=torch.long)], dim=1)
    return steps, offsets


def build_model(
    config: ModelConfig,
    tokenizer_folder: str | Path | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> InternVLA:
    """A model in eval mode on `device`, built there directly (fast for the 3B on a GPU).

    The Cosmos tokenizer needs `tokenizer_folder` (encoder.jit, decoder.jit); without it the model
    still predicts actions and foresight latents, but cannot encode frames or decode pictures.
    """
    cosmos_missing = config.foresight.tokenizer == "cosmos" and tokenizer_folder is None
    tokenizer = None if cosmos_missing else build_tokenizer(config.foresight, tokenizer_folder)
    with torch.device(device), _default_dtype(dtype):
        model = InternVLA(config, tokenizer)
    return model.to(device=device, dtype=dtype).eval()


@contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Parameters are created in `dtype` (a float type): the 3B in bf16 never exists in float32
    first, which would need twice its memory at build time."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
