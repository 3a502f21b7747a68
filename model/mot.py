"""Mixture-of-Transformers: three experts that share one attention per layer.

Each expert (understanding, generation, action) has its own q/k/v/o projections, q/k RMSNorms,
SwiGLU MLP and input/post-attention RMSNorms; per layer, the tokens of every block are projected
by their own expert, attend together in one attention, and go back through their own expert.
Layer and parameter names follow Qwen3 (`layers.N.self_attn.q_proj`, ...), so the released
checkpoint's keys map one to one, and transformers' Qwen3-VL decoder layers fit the same loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.config import ExpertConfig

UND, GEN, ACT = 0, 1, 2  # expert index of a block of tokens

KVCache = list[tuple[Tensor, Tensor]]  # per layer: keys, values (B, kv_heads, L, head_dim), RoPE applied
# Per layer: its index, the attention weights (B, heads, L, L_keys) and the mask bias (B, 1, L, L_keys).
AttentionObserver = Callable[[int, Tensor, Tensor], None]


class RMSNorm(nn.Module):
    """Qwen3's RMSNorm: statistics in float32, scale applied in the input dtype."""

    def __init__(self, size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return self.weight * F.rms_norm(x.float(), x.shape[-1:], eps=self.eps).to(x.dtype)


class SelfAttention(nn.Module):
    """One expert's share of the attention: its projections only (the attention itself is shared)."""

    def __init__(self, c: ExpertConfig) -> None:
        super().__init__()
        self.head_dim = c.head_dim
        self.q_proj = nn.Linear(c.hidden_size, c.num_heads * c.head_dim, bias=False)
        self.k_proj = nn.Linear(c.hidden_size, c.num_kv_heads * c.head_dim, bias=False)
        self.v_proj = nn.Linear(c.hidden_size, c.num_kv_heads * c.head_dim, bias=False)
        self.o_proj = nn.Linear(c.num_heads * c.head_dim, c.hidden_size, bias=False)
        self.q_norm = RMSNorm(c.head_dim, c.rms_norm_eps)
        self.k_norm = RMSNorm(c.head_dim, c.rms_norm_eps)


class SwiGLU(nn.Module):
    def __init__(self, c: ExpertConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.mlp_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.mlp_size, bias=False)
        self.down_proj = nn.Linear(c.mlp_size, c.hidden_size, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class ExpertLayer(nn.Module):
    def __init__(self, c: ExpertConfig) -> None:
        super().__init__()
        self.self_attn = SelfAttention(c)
        self.mlp = SwiGLU(c)
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class Expert(nn.Module):
    """A stack of expert layers and a final norm (Qwen3VLTextModel's layout; embeddings only when given a vocabulary)."""

    def __init__(self, c: ExpertConfig, vocab_size: int | None = None) -> None:
        super().__init__()
        if vocab_size is not None:
            self.embed_tokens = nn.Embedding(vocab_size, c.hidden_size)
        self.layers = nn.ModuleList(ExpertLayer(c) for _ in range(c.num_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


@dataclass(frozen=True)
class AttentionInputs:
    """What the shared attention needs besides the tokens, computed once per pass."""

    cos: Tensor  # (B, 1, L, head_dim) RoPE of the new tokens
    sin: Tensor
    bias: Tensor  # (B, 1, L, L_past + L) additive mask: 0 where a token reads a key, -inf where not


class MRoPE(nn.Module):
    """Qwen3-VL's interleaved multimodal RoPE: each rotary frequency reads the t, h or w position.

    Frequencies 1, 4, 7, ... (below 3 * section_h) read h; 2, 5, 8, ... (below 3 * section_w) read w;
    the rest read t. Text tokens carry equal t/h/w positions, where this is plain 1-D RoPE.
    """

    def __init__(self, head_dim: int, theta: float, section: tuple[int, int, int]) -> None:
        super().__init__()
        self.head_dim, self.theta = head_dim, theta
        half = head_dim // 2
        axis = torch.zeros(half, dtype=torch.long)  # which of (t, h, w) each frequency reads
        index = torch.arange(half)
        for dim in (1, 2):
            axis[(index % 3 == dim) & (index < 3 * section[dim])] = dim
        self.register_buffer("axis", axis, persistent=False)

    def forward(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """positions (3, B, L) -> cos, sin (B, 1, L, head_dim) in float32, broadcast over heads."""
        # Frequencies are made here in float32 rather than kept as a buffer that a bf16 cast would round.
        exponents = torch.arange(0, self.head_dim, 2, dtype=torch.float32, device=positions.device) / self.head_dim
        inv_freq = 1.0 / self.theta**exponents  # (half,)
        pos = positions[self.axis].float()  # (half, B, L): each frequency's own axis
        angles = pos.permute(1, 2, 0) * inv_freq  # (B, L, half)
        angles = torch.cat([angles, angles], dim=-1)[:, None]  # (B, 1, L, head_dim)
        return angles.cos(), angles.sin()


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Apply RoPE to x (B, heads, L, head_dim), rotating the two halves of head_dim as pairs."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def block_attention_mask(block_ids: Tensor, valid: Tensor, unread: Sequence[tuple[int, int]] = ()) -> Tensor:
    """Which keys each token may read: its own and every earlier block, never padding.

    block_ids (L,) non-decreasing block number per token; valid (B, L) False for padding;
    unread: (query block, key block) pairs where the query block does not read that earlier block.
    Returns (B, L, L) bool. A token always reads itself, so no row is empty (padding rows stay finite).
    """
    earlier_or_same = block_ids[None, :] <= block_ids[:, None]  # (L, L): query row, key column
    for query, key in unread:
        earlier_or_same &= ~((block_ids[:, None] == query) & (block_ids[None, :] == key))
    allowed = earlier_or_same[None] & valid[:, None, :]  # (B, L, L)
    return allowed | torch.eye(len(block_ids), dtype=torch.bool, device=valid.device)


class MixtureOfTransformers(nn.Module):
    """The three experts and their shared attention (`qwen3_vl_with_expert` in the released checkpoint)."""

    def __init__(self, und_expert: nn.Module, gen: ExpertConfig, act: ExpertConfig, rope: MRoPE) -> None:
        super().__init__()
        self.und_expert = und_expert  # has .model.language_model (layers, norm, embed_tokens) and .model.visual
        self.gen_expert = Expert(gen)
        self.act_expert = Expert(act)
        self.rope = rope
        self.num_layers = gen.num_layers
        # Set only by model.attention_probe: shown each layer's attention weights, which the normal
        # path (scaled_dot_product_attention) never computes.
        self.attention_observer: AttentionObserver | None = None

    def experts(self) -> tuple[nn.Module, nn.Module, nn.Module]:
        """The layer stacks, indexed by UND, GEN, ACT."""
        return self.und_expert.model.language_model, self.gen_expert, self.act_expert

    def attention_inputs(self, positions: Tensor, mask: Tensor, dtype: torch.dtype) -> AttentionInputs:
        """positions (3, B, L) of the new tokens; mask (B, L, L_past + L) bool, which keys each may read."""
        cos, sin = self.rope(positions)
        bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(~mask, float("-inf"))
        return AttentionInputs(cos.to(dtype), sin.to(dtype), bias[:, None])

    def forward(
        self, blocks: list[tuple[int, Tensor]], attention: AttentionInputs, past: KVCache | None = None
    ) -> tuple[list[Tensor], KVCache]:
        """Run new tokens through every layer, reading the cached keys/values of earlier tokens.

        blocks: [(expert index, hidden (B, L_i, D_expert))] in sequence order, L = sum of L_i.
        attention: RoPE and mask of the new tokens (from `attention_inputs`, reusable across calls).
        past: the cache of earlier tokens; it is not modified.
        Returns the final-normed hidden states per block and the cache of earlier + new tokens.
        """
        experts = self.experts()
        stacks = [experts[e] for e, _ in blocks]
        hidden = [h for _, h in blocks]
        lengths = [h.shape[1] for h in hidden]
        cos, sin = attention.cos, attention.sin
        cache: KVCache = []
        for i in range(self.num_layers):
            layers = [stack.layers[i] for stack in stacks]
            qkv = [_project_qkv(layer, h) for layer, h in zip(layers, hidden)]
            q, k, v = (_concat(parts, dim=2) for parts in zip(*qkv))  # (B, heads, L, head_dim), kv: kv_heads
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
            if past is not None:
                k = torch.cat([past[i][0], k], dim=2)  # (B, kv_heads, L_past + L, head_dim)
                v = torch.cat([past[i][1], v], dim=2)
            cache.append((k, v))
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=attention.bias, enable_gqa=True)  # (B, heads, L, head_dim)
            if self.attention_observer is not None:
                self.attention_observer(i, attention_weights(q, k, attention.bias), attention.bias)
            att = att.transpose(1, 2).flatten(2)  # (B, L, heads * head_dim)
            hidden = [_finish_layer(layer, h, a) for layer, h, a in zip(layers, hidden, att.split(lengths, dim=1))]
        return [stack.norm(h) for stack, h in zip(stacks, hidden)], cache


def attention_weights(q: Tensor, k: Tensor, bias: Tensor) -> Tensor:
    """The softmax weights scaled_dot_product_attention applies, computed explicitly (in float32).

    q (B, heads, L, head_dim), k (B, kv_heads, L_keys, head_dim), bias (B, 1, L, L_keys) -> (B, heads, L, L_keys).
    Query head h reads key head h // (heads / kv_heads), as enable_gqa does.
    """
    k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    scores = q.float() @ k.float().transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias.float()
    return scores.softmax(dim=-1)


def _concat(parts: tuple[Tensor, ...], dim: int) -> Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=dim)


def _project_qkv(layer: nn.Module, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """An expert's queries, keys, values for its tokens h (B, L, D) -> (B, heads, L, head_dim) each."""
    attn = layer.self_attn
    x = layer.input_layernorm(h)
    heads = (*x.shape[:2], -1, attn.head_dim)  # (B, L, heads, head_dim)
    q = attn.q_norm(attn.q_proj(x).view(heads)).transpose(1, 2)
    k = attn.k_norm(attn.k_proj(x).view(heads)).transpose(1, 2)
    v = attn.v_proj(x).view(heads).transpose(1, 2)
    return q, k, v


def _finish_layer(layer: nn.Module, h: Tensor, att: Tensor) -> Tensor:
    """Output projection, residual, then the expert's MLP with its residual. h (B, L, D), att (B, L, heads*hd)."""
    h = h + layer.self_attn.o_proj(att)
    return h + layer.mlp(layer.post_attention_layernorm(h))
