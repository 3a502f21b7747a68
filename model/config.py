"""Configs of the InternVLA-A1 policy network, checked when built, and the two presets.

`a1-3b` has the released InternVLA-A1-3B shapes (Qwen3-VL-2B understanding expert, two Qwen3-0.6B
shaped generation/action experts, Cosmos CI8x8 foresight tokenizer). `tiny` is the same structure
sized for a 2-core CPU: few tokens per view, our own conv vision encoder, byte-level text and a
small conv autoencoder as tokenizer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _check_positive(owner: str, **values: float) -> None:
    for name, value in values.items():
        _check(value > 0, f"{owner}.{name} must be > 0, got {value}")


@dataclass
class ExpertConfig:
    """One transformer expert (Qwen3 layer shape: q/k RMSNorm, GQA, SwiGLU MLP)."""

    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    mlp_size: int
    rms_norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        _check_positive(
            "ExpertConfig", hidden_size=self.hidden_size, num_layers=self.num_layers, num_heads=self.num_heads,
            num_kv_heads=self.num_kv_heads, head_dim=self.head_dim, mlp_size=self.mlp_size, rms_norm_eps=self.rms_norm_eps,
        )
        _check(
            self.num_heads % self.num_kv_heads == 0,
            f"ExpertConfig.num_heads ({self.num_heads}) must be a multiple of num_kv_heads ({self.num_kv_heads})",
        )
        _check(self.head_dim % 2 == 0, f"ExpertConfig.head_dim must be even for RoPE, got {self.head_dim}")


@dataclass
class ConvVisionConfig:
    """Our small vision encoder for `tiny`: a strided stem conv, `stem_blocks` residual 3x3 conv
    blocks at the stem's resolution, and a strided patch conv -> tokens_per_side^2 tokens per view."""

    kind: str = "conv"
    input_size: int = 224
    stem_channels: int = 32
    stem_patch: int = 8  # first conv: kernel = stride = stem_patch
    tokens_per_side: int = 4
    stem_blocks: int = 0  # 0: the stem feeds the patch conv directly (one nonlinearity in all)
    # Instruction-conditioned features (FiLM in each residual block, from the instruction's mean
    # word embedding): a from-scratch tiny VLM has no pretraining to learn grounding from, and
    # without it the policy learned to ignore which colour it was told (see the tiny preset).
    text_film: bool = False

    def __post_init__(self) -> None:
        _check(self.kind == "conv", f"ConvVisionConfig.kind must be 'conv', got {self.kind!r}")
        _check_positive(
            "ConvVisionConfig", input_size=self.input_size, stem_channels=self.stem_channels,
            stem_patch=self.stem_patch, tokens_per_side=self.tokens_per_side,
        )
        _check(self.stem_blocks >= 0, f"ConvVisionConfig.stem_blocks must be >= 0, got {self.stem_blocks}")
        _check(
            self.input_size % (self.stem_patch * self.tokens_per_side) == 0,
            f"ConvVisionConfig.input_size ({self.input_size}) must be divisible by "
            f"stem_patch * tokens_per_side ({self.stem_patch} * {self.tokens_per_side})",
        )

    @property
    def head_patch(self) -> int:
        """Kernel = stride of the second conv, which lands on tokens_per_side x tokens_per_side."""
        return self.input_size // (self.stem_patch * self.tokens_per_side)


@dataclass
class Qwen3VisionConfig:
    """Qwen3-VL vision tower (built with transformers' classes)."""

    kind: str = "qwen3_vl"
    # Qwen3-VL's processor scales a 224x224 frame up to its minimum of 256x256 pixels:
    # 256 / (16 * 2) = 8 -> 64 merged tokens per view (model/A1_3B_PROMPT.md)
    input_size: int = 256
    depth: int = 24
    hidden_size: int = 1024
    mlp_size: int = 4096
    num_heads: int = 16
    patch_size: int = 16
    spatial_merge: int = 2
    temporal_patch: int = 2
    deepstack_layers: tuple[int, ...] = (5, 11, 17)
    num_position_embeddings: int = 2304

    def __post_init__(self) -> None:
        _check(self.kind == "qwen3_vl", f"Qwen3VisionConfig.kind must be 'qwen3_vl', got {self.kind!r}")
        self.deepstack_layers = tuple(self.deepstack_layers)
        _check_positive(
            "Qwen3VisionConfig", input_size=self.input_size, depth=self.depth, hidden_size=self.hidden_size,
            mlp_size=self.mlp_size, num_heads=self.num_heads, patch_size=self.patch_size,
            spatial_merge=self.spatial_merge, temporal_patch=self.temporal_patch,
        )
        _check(
            self.input_size % (self.patch_size * self.spatial_merge) == 0,
            f"Qwen3VisionConfig.input_size ({self.input_size}) must be divisible by "
            f"patch_size * spatial_merge ({self.patch_size} * {self.spatial_merge})",
        )
        _check(
            all(0 <= i < self.depth for i in self.deepstack_layers),
            f"Qwen3VisionConfig.deepstack_layers {self.deepstack_layers} must lie in [0, depth={self.depth})",
        )

    @property
    def tokens_per_side(self) -> int:
        return self.input_size // (self.patch_size * self.spatial_merge)


VISION_KINDS = {"conv": ConvVisionConfig, "qwen3_vl": Qwen3VisionConfig}


TEXT_KINDS = ("words", "bytes", "qwen")


@dataclass
class TextConfig:
    """Instruction tokens: `words` (ours, for tiny: one token per word, hashed into the
    vocabulary), `bytes` (ours, one token per UTF-8 byte; the first tiny checkpoints) or `qwen`
    (the Qwen3-VL tokenizer from a local folder)."""

    kind: str = "bytes"
    vocab_size: int = 259  # 3 specials + 256 byte values
    max_tokens: int = 48  # instructions are right-padded (or cut) to this many tokens
    pad_id: int = 0
    vision_start_id: int = 1
    vision_end_id: int = 2

    def __post_init__(self) -> None:
        _check(self.kind in TEXT_KINDS, f"TextConfig.kind must be one of {TEXT_KINDS}, got {self.kind!r}")
        _check_positive("TextConfig", vocab_size=self.vocab_size, max_tokens=self.max_tokens)
        for name in ("pad_id", "vision_start_id", "vision_end_id"):
            token_id = getattr(self, name)
            _check(0 <= token_id < self.vocab_size, f"TextConfig.{name} ({token_id}) must lie in [0, vocab_size={self.vocab_size})")


@dataclass
class ForesightConfig:
    """The generation path: frames t-history_steps and t -> tokenizer latents -> tokens -> latent of t+history_steps."""

    tokenizer: str = "conv"  # "conv" (our autoencoder) or "cosmos" (TorchScript encoder.jit / decoder.jit)
    image_size: int = 256  # frames are resized to this before the tokenizer
    latent_channels: int = 16
    downsample: int = 8  # tokenizer spatial reduction
    tokens_per_side: int = 4  # per view per frame, after the stride conv
    num_frames: int = 2  # t - history_steps and t
    history_steps: int = 15
    conv_channels: tuple[int, ...] = (16, 32, 64)  # our autoencoder's widths, one stride-2 stage each

    def __post_init__(self) -> None:
        self.conv_channels = tuple(self.conv_channels)
        _check(
            self.tokenizer in ("conv", "cosmos"), f"ForesightConfig.tokenizer must be 'conv' or 'cosmos', got {self.tokenizer!r}"
        )
        _check_positive(
            "ForesightConfig", image_size=self.image_size, latent_channels=self.latent_channels, downsample=self.downsample,
            tokens_per_side=self.tokens_per_side, num_frames=self.num_frames, history_steps=self.history_steps,
        )
        _check(
            self.image_size % self.downsample == 0,
            f"ForesightConfig.image_size ({self.image_size}) must be divisible by downsample ({self.downsample})",
        )
        _check(
            self.latent_size % self.tokens_per_side == 0,
            f"ForesightConfig latent side ({self.latent_size}) must be divisible by tokens_per_side ({self.tokens_per_side})",
        )
        if self.tokenizer == "conv":
            _check(
                2 ** len(self.conv_channels) == self.downsample,
                f"ForesightConfig.conv_channels has {len(self.conv_channels)} stride-2 stages, "
                f"which downsample by {2 ** len(self.conv_channels)}, not {self.downsample}",
            )

    @property
    def latent_size(self) -> int:
        return self.image_size // self.downsample

    @property
    def token_patch(self) -> int:
        """Kernel = stride of downsample_conv (8 for 32x32 latents -> 4x4 tokens)."""
        return self.latent_size // self.tokens_per_side


@dataclass
class FlowConfig:
    """Flow matching: t ~ Beta(alpha, beta) * scale + offset, t=1 is pure noise."""

    beta_alpha: float = 1.5
    beta_beta: float = 1.0
    time_scale: float = 0.999
    time_offset: float = 0.001
    denoise_steps: int = 10
    min_period: float = 4e-3  # sinusoidal time embedding periods
    max_period: float = 4.0
    # Sampling starts at x_1 = noise * sample_noise_scale: 1 draws from the learned distribution of
    # chunks, 0 follows the flow from the noise's mean (one chunk per observation, no sampling spread).
    sample_noise_scale: float = 1.0
    # Training-time action conditioning (real-time chunking trained in, Black et al. 2025): in
    # training each chunk's first d steps, d uniform in 0..max_committed_steps, are given clean (flow
    # time 0) and left out of L_act; at inference the steps committed before a new chunk can take
    # over are given the same way, so the chunk continues from them. 0: not trained so (a guided
    # chunk is then inpainted: flow.euler_sample's guide).
    max_committed_steps: int = 0

    def __post_init__(self) -> None:
        _check(
            isinstance(self.max_committed_steps, int) and not isinstance(self.max_committed_steps, bool)
            and self.max_committed_steps >= 0,
            f"FlowConfig.max_committed_steps must be a whole number >= 0, got {self.max_committed_steps!r}",
        )
        _check_positive(
            "FlowConfig", beta_alpha=self.beta_alpha, beta_beta=self.beta_beta, time_scale=self.time_scale,
            denoise_steps=self.denoise_steps, min_period=self.min_period, max_period=self.max_period,
        )
        _check(self.time_offset >= 0, f"FlowConfig.time_offset must be >= 0, got {self.time_offset}")
        _check(
            self.time_scale + self.time_offset <= 1.0,
            f"FlowConfig: time_scale + time_offset must be <= 1 (t is in (0, 1]), got {self.time_scale + self.time_offset}",
        )
        _check(self.min_period < self.max_period, "FlowConfig.min_period must be < max_period")
        _check(self.sample_noise_scale >= 0, f"FlowConfig.sample_noise_scale must be >= 0, got {self.sample_noise_scale}")


@dataclass
class OptimConfig:
    lr: float = 5e-5
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    weight_decay: float = 0.01
    grad_clip_norm: float = 1.0

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)
        _check_positive("OptimConfig", lr=self.lr, eps=self.eps, grad_clip_norm=self.grad_clip_norm)
        _check(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), f"OptimConfig.betas must be two values in [0, 1), got {self.betas}")
        _check(self.weight_decay >= 0, f"OptimConfig.weight_decay must be >= 0, got {self.weight_decay}")


@dataclass
class ModelConfig:
    name: str
    und: ExpertConfig  # understanding expert's language model
    gen: ExpertConfig
    act: ExpertConfig
    vision: ConvVisionConfig | Qwen3VisionConfig
    text: TextConfig
    foresight: ForesightConfig
    flow: FlowConfig = field(default_factory=FlowConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    image_size: int = 224  # camera frames are letterboxed to this square
    num_cameras: int = 3
    chunk_size: int = 50
    max_state_dim: int = 32
    max_action_dim: int = 32
    rope_theta: float = 5_000_000.0
    mrope_section: tuple[int, int, int] = (24, 20, 20)  # rotary frequencies given to the (t, h, w) axes
    gen_loss_weight: float = 0.01
    # False: the action expert's tokens (state + actions) do not attend to the generation tokens,
    # in training and at inference: the foresight ablation (`model.evaluate --mask-generation`),
    # which tells whether the actions use what the generation expert computes.
    action_reads_generation: bool = True

    def __post_init__(self) -> None:
        self.mrope_section = tuple(self.mrope_section)
        _check_positive(
            "ModelConfig", image_size=self.image_size, num_cameras=self.num_cameras, chunk_size=self.chunk_size,
            max_state_dim=self.max_state_dim, max_action_dim=self.max_action_dim, rope_theta=self.rope_theta,
        )
        _check(self.gen_loss_weight >= 0, f"ModelConfig.gen_loss_weight must be >= 0, got {self.gen_loss_weight}")
        _check(
            self.flow.max_committed_steps < self.chunk_size,
            f"FlowConfig.max_committed_steps must leave steps to learn: < chunk_size {self.chunk_size}, got {self.flow.max_committed_steps}",
        )
        _check(
            isinstance(self.action_reads_generation, bool),
            f"ModelConfig.action_reads_generation must be true or false, got {self.action_reads_generation!r}",
        )
        # The three experts share one attention per layer, so its shape must agree.
        shared = ("num_layers", "num_heads", "num_kv_heads", "head_dim")
        for name in shared:
            values = {expert: getattr(getattr(self, expert), name) for expert in ("und", "gen", "act")}
            _check(len(set(values.values())) == 1, f"ModelConfig: experts share one attention, so {name} must agree: {values}")
        _check(
            len(self.mrope_section) == 3 and sum(self.mrope_section) == self.und.head_dim // 2,
            f"ModelConfig.mrope_section {self.mrope_section} must be 3 values summing to head_dim/2 = {self.und.head_dim // 2}",
        )
        _check(
            (self.text.kind == "qwen") == (self.vision.kind == "qwen3_vl"),
            f"ModelConfig: vision kind {self.vision.kind!r} and text kind {self.text.kind!r} do not belong together",
        )

    @property
    def num_layers(self) -> int:
        return self.und.num_layers

    @property
    def image_tokens_per_view(self) -> int:
        return self.vision.tokens_per_side**2

    @property
    def generation_tokens_per_camera(self) -> int:
        f = self.foresight
        return f.num_frames * f.tokens_per_side**2

    @property
    def generation_tokens(self) -> int:
        return self.num_cameras * self.generation_tokens_per_camera

    @property
    def prefix_tokens_per_camera(self) -> int:
        return self.image_tokens_per_view + 2  # vision-start + image tokens + vision-end

    @property
    def prefix_tokens(self) -> int:
        return self.num_cameras * self.prefix_tokens_per_camera + self.text.max_tokens

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        data = dict(data)
        try:
            vision = data.pop("vision")
            kind = vision.get("kind")
            if kind not in VISION_KINDS:
                raise ValueError(f"unknown vision kind {kind!r}; known: {sorted(VISION_KINDS)}")
            nested = {
                "und": ExpertConfig, "gen": ExpertConfig, "act": ExpertConfig, "text": TextConfig,
                "foresight": ForesightConfig, "flow": FlowConfig, "optim": OptimConfig,
            }
            parts = {name: part_cls(**data.pop(name)) for name, part_cls in nested.items() if name in data}
            return cls(vision=VISION_KINDS[kind](**vision), **parts, **data)
        except (KeyError, TypeError) as err:
            raise ValueError(f"invalid model config: {err}") from err


WORD_VOCAB = 1024  # hashed word ids: collisions are rare among an instruction vocabulary of dozens of words
WORD_TOKENS = 16  # instructions are short; fewer text tokens also make every step cheaper


def tiny() -> ModelConfig:
    """Same structure as a1-3b, sized so one call (chunk + 3 foresight pictures) takes ~100 ms on 2 CPU cores.

    Every op works on small matrices, so the cost goes with layers x tokens: 3 layers, 16 image tokens
    per view, foresight at 128x128 (16x16 latents), and the narrowest MLP in the action expert, which
    the 10 denoising steps run through.
    """
    attention = {"num_layers": 3, "num_heads": 4, "num_kv_heads": 2, "head_dim": 32}
    return ModelConfig(
        name="tiny",
        und=ExpertConfig(hidden_size=192, mlp_size=512, **attention),
        gen=ExpertConfig(hidden_size=128, mlp_size=384, **attention),
        act=ExpertConfig(hidden_size=128, mlp_size=256, **attention),  # runs 10x per call: the narrowest MLP
        # Blocks are ~8 px in the head camera, one stem cell: the residual blocks let the encoder
        # tell a block's colour and place from its neighbours before 56 px patches pool them.
        vision=ConvVisionConfig(stem_blocks=2, text_film=True),
        # One token per word: the colour that names the target is one embedding to attend to, not
        # three to six bytes to compose (a byte-level tiny learned to ignore the instruction).
        text=TextConfig(kind="words", vocab_size=WORD_VOCAB, max_tokens=WORD_TOKENS),
        foresight=ForesightConfig(tokenizer="conv", image_size=128),
        # Chunks from the noise's mean: on the conveyor the shipped model then misses the moving
        # block less (model.evaluate --noise-scale 0 against 1, MODEL_CARD.md).
        flow=FlowConfig(sample_noise_scale=0.0),
        rope_theta=10_000.0,
        mrope_section=(6, 5, 5),
    )


def a1_3b() -> ModelConfig:
    """The released InternVLA-A1-3B shapes."""
    attention = {"num_layers": 28, "num_heads": 16, "num_kv_heads": 8, "head_dim": 128}
    return ModelConfig(
        name="a1-3b",
        und=ExpertConfig(hidden_size=2048, mlp_size=6144, **attention),
        gen=ExpertConfig(hidden_size=1024, mlp_size=3072, **attention),
        act=ExpertConfig(hidden_size=1024, mlp_size=3072, **attention),
        vision=Qwen3VisionConfig(),
        # Qwen3-VL's vocabulary and special tokens (<|endoftext|>, <|vision_start|>, <|vision_end|>).
        text=TextConfig(kind="qwen", vocab_size=151936, pad_id=151643, vision_start_id=151652, vision_end_id=151653),
        foresight=ForesightConfig(tokenizer="cosmos", image_size=256),
    )


PRESETS = {"tiny": tiny, "a1-3b": a1_3b}


def preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]()
