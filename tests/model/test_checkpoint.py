"""Checkpoints in the released layout: round trips, strict loading that names keys, bad files named."""

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from model.checkpoint import (
    CONFIG_FILE,
    STATS_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    load_checkpoint,
    load_config,
    save_checkpoint,
)
from model.config import ForesightConfig
from model.internvla import InternVLA, build_model
from tests.model.helpers import (
    STATE_KEYS,
    random_inputs,
    random_noise,
    small_config,
    small_model,
    stats_for,
    write_fake_cosmos,
)

# Names as the released InternVLA-A1 checkpoint spells them (at our toy shapes).
RELEASED_KEYS = [
    "model.qwen3_vl_with_expert.und_expert.model.language_model.embed_tokens.weight",
    "model.qwen3_vl_with_expert.und_expert.model.language_model.layers.0.self_attn.q_proj.weight",
    "model.qwen3_vl_with_expert.und_expert.model.language_model.layers.1.self_attn.k_norm.weight",
    "model.qwen3_vl_with_expert.und_expert.model.language_model.norm.weight",
    "model.qwen3_vl_with_expert.gen_expert.layers.0.self_attn.o_proj.weight",
    "model.qwen3_vl_with_expert.gen_expert.layers.1.mlp.gate_proj.weight",
    "model.qwen3_vl_with_expert.gen_expert.layers.0.input_layernorm.weight",
    "model.qwen3_vl_with_expert.act_expert.layers.1.post_attention_layernorm.weight",
    "model.qwen3_vl_with_expert.act_expert.layers.0.mlp.down_proj.weight",
    "model.qwen3_vl_with_expert.act_expert.norm.weight",
    "model.cosmos_in_proj.weight",
    "model.downsample_conv.weight",
    "model.upsample_conv.weight",
    "model.cosmos_out_layer_norm.weight",
    "model.cosmos_out_proj.weight",
    "model.action_in_proj.weight",
    "model.action_out_proj.bias",
    "model.state_proj.weight",
    "model.action_time_mlp_in.weight",
    "model.action_time_mlp_out.bias",
]


def saved(tmp_path, model=None):
    model = model or small_model()
    save_checkpoint(tmp_path, model, stats_for(STATE_KEYS))
    return model


def test_round_trip_gives_identical_outputs(tmp_path):
    model = saved(tmp_path)
    loaded, stats = load_checkpoint(tmp_path)
    x, noise = random_inputs(model.config, batch=2), random_noise(model.config, batch=2)
    expected, expected_latents = model.sample(x, noise)
    actions, latents = loaded.sample(x, noise)
    assert torch.equal(actions, expected) and torch.equal(latents, expected_latents)
    assert stats == stats_for(STATE_KEYS)
    assert loaded.config == model.config


def test_released_key_names_at_tiny_shapes_load_strictly(tmp_path):
    donor = small_model(seed=3)
    tensors = {"model." + k: v.clone() for k, v in donor.state_dict().items()}
    assert set(RELEASED_KEYS) <= set(tensors)
    assert {k.split(".")[1] for k in tensors} == {
        "qwen3_vl_with_expert", "cosmos", "cosmos_in_proj", "downsample_conv", "upsample_conv", "cosmos_out_layer_norm",
        "cosmos_out_proj", "action_in_proj", "action_out_proj", "state_proj", "action_time_mlp_in", "action_time_mlp_out",
    }
    saved(tmp_path)  # config.json + stats.json
    save_file(tensors, str(tmp_path / WEIGHTS_FILE))
    loaded, _ = load_checkpoint(tmp_path)
    for key in RELEASED_KEYS:
        assert torch.equal(loaded.state_dict()[key.removeprefix("model.")], tensors[key])


def test_wrong_missing_and_mis_shaped_keys_are_named(tmp_path):
    saved(tmp_path)
    tensors = load_file(str(tmp_path / WEIGHTS_FILE))
    renamed = "model.qwen3_vl_with_expert.gen_expert.layers.0.self_attn.q_proj.weight"
    tensors[renamed.replace("q_proj", "query_proj")] = tensors.pop(renamed)
    tensors["model.state_proj.weight"] = torch.zeros(3, 3)
    save_file(tensors, str(tmp_path / WEIGHTS_FILE))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path)
    message = str(err.value)
    assert "missing (1):" in message and renamed in message
    assert "unexpected (1):" in message and renamed.replace("q_proj", "query_proj") in message
    assert "mis-shaped (1):" in message and "model.state_proj.weight: checkpoint (3, 3)" in message


def test_missing_or_corrupt_files_are_named(tmp_path):
    saved(tmp_path)
    (tmp_path / WEIGHTS_FILE).write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match=WEIGHTS_FILE):
        load_checkpoint(tmp_path)
    (tmp_path / WEIGHTS_FILE).unlink()
    with pytest.raises(CheckpointError, match=f"not found.*{WEIGHTS_FILE}"):
        load_checkpoint(tmp_path)
    (tmp_path / STATS_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match=STATS_FILE):
        load_checkpoint(tmp_path)
    (tmp_path / CONFIG_FILE).unlink()
    with pytest.raises(CheckpointError, match=CONFIG_FILE):
        load_checkpoint(tmp_path)


def test_config_that_disagrees_with_weights_lists_keys(tmp_path):
    saved(tmp_path)
    config = json.loads((tmp_path / CONFIG_FILE).read_text())
    config["gen"]["mlp_size"] = 40
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"gen_expert.layers.0.mlp.gate_proj.weight: checkpoint \(48, 32\), model \(40, 32\)"):
        load_checkpoint(tmp_path)


def test_invalid_config_is_named(tmp_path):
    saved(tmp_path)
    config = json.loads((tmp_path / CONFIG_FILE).read_text())
    config["act"]["num_layers"] = 3
    (tmp_path / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=f"{CONFIG_FILE}.*num_layers must agree"):
        load_checkpoint(tmp_path)


def test_released_lerobot_config_maps_to_a1_3b(tmp_path):
    path = tmp_path / CONFIG_FILE
    path.write_text(json.dumps({"type": "qwena1", "chunk_size": 50, "max_action_dim": 32, "num_inference_steps": 10}))
    config = load_config(path)
    assert config.name == "a1-3b" and config.und.hidden_size == 2048 and config.chunk_size == 50


def test_cosmos_weights_come_from_its_files_or_must_match(tmp_path):
    write_fake_cosmos(tmp_path)
    config = dataclasses.replace(small_config(), foresight=ForesightConfig(tokenizer="cosmos", image_size=32, tokens_per_side=2))
    torch.manual_seed(0)
    model = build_model(config, tokenizer_folder=tmp_path)
    save_checkpoint(tmp_path, model)
    tensors = load_file(str(tmp_path / WEIGHTS_FILE))
    assert any(k.startswith("model.cosmos._enc_model.") for k in tensors)
    # Without the tokenizer's keys the checkpoint still loads: Cosmos brings its own weights.
    save_file({k: v for k, v in tensors.items() if not k.startswith("model.cosmos.")}, str(tmp_path / WEIGHTS_FILE))
    loaded, _ = load_checkpoint(tmp_path)
    x, noise = random_inputs(config), random_noise(config)
    assert torch.equal(loaded.sample(x, noise)[0], model.sample(x, noise)[0])
    pictures = loaded.decode_latents(loaded.encode_frames(torch.rand(1, 3, 2, 3, 32, 32)).mean(dim=2))
    assert pictures.shape == (1, 3, 3, 32, 32)


def test_model_without_cosmos_files_explains_itself():
    config = dataclasses.replace(small_config(), foresight=ForesightConfig(tokenizer="cosmos", image_size=32, tokens_per_side=2))
    model = InternVLA(config)
    with pytest.raises(RuntimeError, match="CosmosTokenizer"):
        model.encode_frames(torch.zeros(1, 3, 2, 3, 32, 32))
