"""The a1-3b understanding expert: transformers' Qwen3-VL built from a config we write (nothing downloaded).

Its keys (`model.visual.*`, `model.language_model.*`, `lm_head.weight`) are those of the released
checkpoint under `model.qwen3_vl_with_expert.und_expert.`. Like the released model, the prefix uses
the vision tower's merged tokens only; the DeepStack features are computed by the tower but not fed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

from model.config import ModelConfig, Qwen3VisionConfig

QWEN3_VL_MAX_POSITIONS = 262144


def hf_config(config: ModelConfig) -> Qwen3VLConfig:
    und, vision = config.und, config.vision
    assert isinstance(vision, Qwen3VisionConfig)
    return Qwen3VLConfig(
        text_config={
            "vocab_size": config.text.vocab_size,
            "hidden_size": und.hidden_size,
            "intermediate_size": und.mlp_size,
            "num_hidden_layers": und.num_layers,
            "num_attention_heads": und.num_heads,
            "num_key_value_heads": und.num_kv_heads,
            "head_dim": und.head_dim,
            "rms_norm_eps": und.rms_norm_eps,
            "max_position_embeddings": QWEN3_VL_MAX_POSITIONS,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": config.rope_theta,
                "mrope_section": list(config.mrope_section),
                "mrope_interleaved": True,
            },
            "tie_word_embeddings": True,
        },
        vision_config={
            "depth": vision.depth,
            "hidden_size": vision.hidden_size,
            "intermediate_size": vision.mlp_size,
            "num_heads": vision.num_heads,
            "out_hidden_size": und.hidden_size,
            "patch_size": vision.patch_size,
            "spatial_merge_size": vision.spatial_merge,
            "temporal_patch_size": vision.temporal_patch,
            "deepstack_visual_indexes": list(vision.deepstack_layers),
            "num_position_embeddings": vision.num_position_embeddings,
        },
        vision_start_token_id=config.text.vision_start_id,
        vision_end_token_id=config.text.vision_end_id,
        tie_word_embeddings=True,
    )


class Qwen3VLUnderstanding(Qwen3VLForConditionalGeneration):
    @classmethod
    def from_model_config(cls, config: ModelConfig) -> Qwen3VLUnderstanding:
        model = cls(hf_config(config))
        model.input_size = config.vision.input_size
        return model

    def image_tokens(self, images: Tensor, instruction: Tensor | None = None) -> Tensor:
        """images (M, 3, S, S) in [-1, 1] (Qwen3-VL's mean = std = 0.5 normalisation) -> (M, tokens, D).
        The pretrained tower reads no instruction: `instruction` is ignored (the language model grounds)."""
        images = processor_resize(images, self.input_size)
        patches, grid_thw = patchify(images, self.config.vision_config)
        merged = self.model.visual(patches, grid_thw=grid_thw).pooler_output  # (M * tokens, D)
        return merged.view(images.shape[0], -1, merged.shape[-1])


def processor_resize(images: Tensor, size: int) -> Tensor:
    """(M, 3, S, S) -> (M, 3, size, size) as Qwen3-VL's image processor resizes: bicubic with
    antialiasing (torchvision's default), no clamping of float pixels (model/A1_3B_PROMPT.md)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    resized = F.interpolate(images.float(), size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    return resized.to(images.dtype)


def patchify(images: Tensor, vision) -> tuple[Tensor, Tensor]:
    """Still images -> Qwen3-VL's flattened patches, in the order its image processor emits them.

    images (M, 3, S, S) -> patches (M * g * g, 3 * T * P * P) and grid_thw (M, 3) = (1, g, g), g = S / P.
    A still image is repeated over the T = temporal_patch frames of a patch; patches are grouped in
    merge x merge blocks (block-major), each flattened as (channel, frame, row, column).
    """
    m, c, size, _ = images.shape
    p, t, merge = vision.patch_size, vision.temporal_patch_size, vision.spatial_merge_size
    g = size // p
    x = images[:, :, None].expand(m, c, t, size, size)  # (M, C, T, S, S)
    x = x.reshape(m, c, t, g // merge, merge, p, g // merge, merge, p)  # (M, C, T, bh, mh, P, bw, mw, P)
    x = x.permute(0, 3, 6, 4, 7, 1, 2, 5, 8)  # (M, bh, bw, mh, mw, C, T, P, P)
    patches = x.reshape(m * g * g, c * t * p * p)
    grid_thw = torch.tensor([[1, g, g]] * m, dtype=torch.long, device=images.device)
    return patches, grid_thw
