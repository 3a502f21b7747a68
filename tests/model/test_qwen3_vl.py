"""The a1-3b path at toy sizes: transformers' Qwen3-VL classes inside our Mixture-of-Transformers.

Pins compatibility with the released weights: our shared-attention loop over Qwen3-VL's decoder
layers computes what Qwen3-VL's own language model computes, our M-RoPE is its M-RoPE, and our
patches are its image processor's.
"""

import dataclasses
from types import SimpleNamespace

import numpy as np
import torch
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLTextRotaryEmbedding

from model.checkpoint import load_checkpoint, save_checkpoint
from model.config import (
    ExpertConfig,
    ForesightConfig,
    Qwen3VisionConfig,
    TextConfig,
    a1_3b,
)
from model.internvla import InternVLA
from model.mot import UND, MRoPE, block_attention_mask
from model.qwen3_vl import hf_config, patchify
from tests.model.helpers import random_inputs, random_noise, small_config


def qwen_small_config():
    attention = {"num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "head_dim": 32}
    return dataclasses.replace(
        small_config(),
        name="qwen-small",
        und=ExpertConfig(hidden_size=64, mlp_size=96, **attention),
        gen=ExpertConfig(hidden_size=32, mlp_size=48, **attention),
        act=ExpertConfig(hidden_size=32, mlp_size=48, **attention),
        vision=Qwen3VisionConfig(
            input_size=64, depth=2, hidden_size=32, mlp_size=64, num_heads=2, deepstack_layers=(0,), num_position_embeddings=16
        ),
        text=TextConfig(kind="qwen", vocab_size=300, max_tokens=8),
        foresight=ForesightConfig(tokenizer="conv", image_size=32, tokens_per_side=2, conv_channels=(4, 4, 4)),
        mrope_section=(6, 5, 5),
    )


def test_mrope_matches_qwen3_vl():
    config = a1_3b()
    hf = Qwen3VLTextRotaryEmbedding(hf_config(config).text_config)
    ours = MRoPE(config.und.head_dim, config.rope_theta, config.mrope_section)
    positions = torch.randint(0, 500, (3, 2, 7))
    cos, sin = ours(positions)
    hf_cos, hf_sin = hf(torch.zeros(1, dtype=torch.float32), positions)
    torch.testing.assert_close(cos[:, 0], hf_cos)
    torch.testing.assert_close(sin[:, 0], hf_sin)


def test_patchify_matches_qwen_image_processor():
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    processor = Qwen2VLImageProcessor(
        patch_size=16, temporal_patch_size=2, merge_size=2, image_mean=[0.5] * 3, image_std=[0.5] * 3, do_resize=False
    )
    expected = processor(images=[image], return_tensors="pt")
    pixels = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    vision = SimpleNamespace(patch_size=16, temporal_patch_size=2, spatial_merge_size=2)
    patches, grid = patchify(pixels, vision)
    torch.testing.assert_close(patches, expected["pixel_values"], atol=1e-6, rtol=0)
    assert grid.tolist() == expected["image_grid_thw"].tolist()


def test_shared_attention_loop_reproduces_qwen3_vl_language_model():
    torch.manual_seed(0)
    model = InternVLA(qwen_small_config()).eval()
    mot = model.qwen3_vl_with_expert
    language_model = mot.und_expert.model.language_model
    hidden = torch.randn(2, 9, 64)
    positions = torch.arange(9).expand(3, 2, 9)
    causal = block_attention_mask(torch.arange(9), torch.ones(2, 9, dtype=torch.bool))  # one token per block
    with torch.no_grad():
        (ours,), _ = mot([(UND, hidden)], mot.attention_inputs(positions, causal, torch.float32))
        theirs = language_model(inputs_embeds=hidden, position_ids=positions).last_hidden_state
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_qwen3_vl_variant_samples_and_round_trips(tmp_path):
    torch.manual_seed(0)
    config = qwen_small_config()
    model = InternVLA(config).eval()
    assert model.qwen3_vl_with_expert.und_expert.lm_head.weight is model.qwen3_vl_with_expert.und_expert.model.language_model.embed_tokens.weight
    x = random_inputs(config, batch=2)
    x.camera_mask[1, 0] = False
    noise = random_noise(config, batch=2)
    actions, latents = model.sample(x, noise)
    assert actions.shape == (2, config.chunk_size, config.max_action_dim) and torch.isfinite(actions).all()

    save_checkpoint(tmp_path, model)
    loaded, _ = load_checkpoint(tmp_path)
    again, again_latents = loaded.sample(x, noise)
    assert torch.equal(again, actions) and torch.equal(again_latents, latents)
