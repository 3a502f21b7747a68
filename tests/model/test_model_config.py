"""Config presets and their validation."""

import dataclasses

import pytest

from model.config import ExpertConfig, ForesightConfig, ModelConfig, a1_3b, preset, tiny


def test_a1_3b_has_the_released_shapes():
    c = a1_3b()
    assert (c.und.hidden_size, c.und.num_layers, c.und.num_heads, c.und.num_kv_heads, c.und.head_dim, c.und.mlp_size) == (
        2048, 28, 16, 8, 128, 6144,
    )
    for expert in (c.gen, c.act):
        assert (expert.hidden_size, expert.num_layers, expert.num_heads, expert.num_kv_heads, expert.head_dim, expert.mlp_size) == (
            1024, 28, 16, 8, 128, 3072,
        )
    assert (c.vision.depth, c.vision.hidden_size, c.vision.tokens_per_side) == (24, 1024, 8)
    assert c.prefix_tokens == 3 * (1 + 64 + 1) + 48
    assert c.generation_tokens == 96
    assert (c.foresight.latent_size, c.foresight.token_patch, c.foresight.latent_channels) == (32, 8, 16)
    assert (c.chunk_size, c.max_state_dim, c.max_action_dim, c.flow.denoise_steps, c.gen_loss_weight) == (50, 32, 32, 10, 0.01)
    assert (c.optim.lr, c.optim.betas) == (5e-5, (0.9, 0.95))


def test_tiny_spends_tokens_sparingly():
    c = tiny()
    assert c.image_tokens_per_view == 16 and c.prefix_tokens == 3 * 18 + 16 and c.text.kind == "words"
    assert c.generation_tokens == 3 * 2 * 16 and c.chunk_size == 50


def test_presets_by_name():
    assert preset("tiny").name == "tiny" and preset("a1-3b").name == "a1-3b"
    with pytest.raises(ValueError, match="unknown preset 'huge'; known: tiny, a1-3b"):
        preset("huge")


def test_dict_round_trip():
    for config in (tiny(), a1_3b()):
        assert ModelConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("gen", lambda: ExpertConfig(128, 5, 4, 2, 32, 384), "num_layers must agree"),
        ("mrope_section", lambda: (8, 8, 8), "mrope_section"),
        ("chunk_size", lambda: 0, "chunk_size must be > 0"),
        ("action_reads_generation", lambda: "no", "action_reads_generation must be true or false"),
    ],
)
def test_invalid_configs_say_what_is_wrong(field, value, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(tiny(), **{field: value()})


def test_expert_and_foresight_checks():
    with pytest.raises(ValueError, match="multiple of num_kv_heads"):
        ExpertConfig(128, 2, 4, 3, 32, 256)
    with pytest.raises(ValueError, match="divisible by downsample"):
        ForesightConfig(image_size=124)
    with pytest.raises(ValueError, match="tokens_per_side"):
        ForesightConfig(image_size=128, tokens_per_side=3)
    with pytest.raises(ValueError, match="stride-2 stages"):
        ForesightConfig(conv_channels=(8, 8))


def test_a_config_from_before_the_generation_mask_reads_the_generation_tokens():
    data = tiny().to_dict()
    del data["action_reads_generation"]
    assert ModelConfig.from_dict(data).action_reads_generation is True


def test_unknown_config_keys_are_rejected():
    data = tiny().to_dict()
    data["und"]["width"] = 3
    with pytest.raises(ValueError, match="width"):
        ModelConfig.from_dict(data)


def test_conv_vision_stem_blocks_keep_the_token_grid():
    import torch

    from model.config import ConvVisionConfig
    from model.understanding import ConvVisionEncoder

    images = torch.rand(2, 3, 32, 32) * 2 - 1
    plain = ConvVisionEncoder(ConvVisionConfig(input_size=32, stem_channels=8, stem_patch=8, tokens_per_side=2), width=16)
    deep = ConvVisionEncoder(ConvVisionConfig(input_size=32, stem_channels=8, stem_patch=8, tokens_per_side=2, stem_blocks=2), width=16)
    assert plain(images).shape == deep(images).shape == (2, 4, 16)
    assert len(deep.blocks) == 2 and len(plain.blocks) == 0
    with pytest.raises(ValueError, match="stem_blocks must be >= 0"):
        ConvVisionConfig(stem_blocks=-1)
    # A config written before stem_blocks existed still loads, as the plain encoder.
    data = tiny().to_dict()
    del data["vision"]["stem_blocks"]
    assert ModelConfig.from_dict(data).vision.stem_blocks == 0


def test_an_instruction_conditioned_encoder_starts_as_the_plain_one_and_needs_the_instruction():
    import torch

    from model.config import ConvVisionConfig
    from model.understanding import ConvVisionEncoder

    config = ConvVisionConfig(input_size=32, stem_channels=8, stem_patch=8, tokens_per_side=2, stem_blocks=2, text_film=True)
    torch.manual_seed(0)
    encoder = ConvVisionEncoder(config, width=16)
    images, red, blue = torch.rand(2, 3, 32, 32) * 2 - 1, torch.randn(2, 16), torch.randn(2, 16)
    torch.testing.assert_close(encoder(images, red), encoder(images, blue))  # FiLM starts as the identity
    for block in encoder.blocks:
        torch.nn.init.normal_(block.film.weight)
    assert not torch.allclose(encoder(images, red), encoder(images, blue))  # then the instruction shapes the features
    with pytest.raises(ValueError, match="pass the instruction"):
        encoder(images)
    assert tiny().vision.text_film
