"""Small configs and random inputs for model tests (everything tiny so the suite stays fast on 2 cores)."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from model.config import (
    ConvVisionConfig,
    ExpertConfig,
    ForesightConfig,
    ModelConfig,
    TextConfig,
    tiny,
)
from model.internvla import InternVLA, ModelInputs

STATE_KEYS = [f"joint_{i}.pos" for i in range(1, 7)] + ["gripper.pos"]
CAMERAS = ["head", "wrist", "side"]


def small_config() -> ModelConfig:
    """The tiny structure at toy widths: 2 layers, 3 camera slots, 2x2 tokens per view, chunk 6."""
    attention = {"num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "head_dim": 16}
    return dataclasses.replace(
        tiny(),
        name="small",
        und=ExpertConfig(hidden_size=48, mlp_size=64, **attention),
        gen=ExpertConfig(hidden_size=32, mlp_size=48, **attention),
        act=ExpertConfig(hidden_size=32, mlp_size=48, **attention),
        vision=ConvVisionConfig(input_size=32, stem_channels=8, stem_patch=8, tokens_per_side=2),
        text=TextConfig(max_tokens=8),
        foresight=ForesightConfig(tokenizer="conv", image_size=32, tokens_per_side=2, conv_channels=(4, 4, 4)),
        image_size=32,
        chunk_size=6,
        max_state_dim=8,
        max_action_dim=8,
        mrope_section=(4, 2, 2),
    )


def small_model(seed: int = 0) -> InternVLA:
    torch.manual_seed(seed)
    return InternVLA(small_config()).eval()


def random_inputs(config: ModelConfig, batch: int = 1, seed: int = 0, text_len: int = 5) -> ModelInputs:
    """Random inputs with the text right-padded after `text_len` tokens and every camera present."""
    g = torch.Generator().manual_seed(seed)
    n, s, fs = config.num_cameras, config.image_size, config.foresight
    latent = (fs.latent_channels, fs.latent_size, fs.latent_size)
    return ModelInputs(
        images=torch.rand(batch, n, 3, s, s, generator=g) * 2 - 1,
        camera_mask=torch.ones(batch, n, dtype=torch.bool),
        text_tokens=torch.randint(3, config.text.vocab_size, (batch, config.text.max_tokens), generator=g),
        text_mask=(torch.arange(config.text.max_tokens) < text_len).expand(batch, -1).clone(),
        history_latents=torch.randn(batch, n, fs.num_frames, *latent, generator=g),
        state=torch.randn(batch, config.max_state_dim, generator=g),
    )


def random_noise(config: ModelConfig, batch: int = 1, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, config.chunk_size, config.max_action_dim, generator=g)


def replace(inputs: ModelInputs, **changes) -> ModelInputs:
    return dataclasses.replace(inputs, **changes)


def stats_for(keys: list[str], std: float = 1.0) -> dict:
    """Stats for one robot type "sim" with the same keys for state and action."""
    entry = {"mean": [0.0] * len(keys), "std": [std] * len(keys)}
    return {"sim": {"observation.state": entry, "action": entry}}


class _FakeCosmosEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, kernel_size=8, stride=8)

    def forward(self, x):
        return (self.conv(x),)  # Cosmos exports return a tuple


class _FakeCosmosDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.ConvTranspose2d(16, 3, kernel_size=8, stride=8)

    def forward(self, x):
        return torch.tanh(self.conv(x))


def write_fake_cosmos(folder):
    """encoder.jit / decoder.jit with Cosmos CI8x8's interface (16 channels, 8x down), random weights."""
    torch.jit.script(_FakeCosmosEncoder()).save(str(folder / "encoder.jit"))
    torch.jit.script(_FakeCosmosDecoder()).save(str(folder / "decoder.jit"))


def write_checkpoint(folder, robot) -> None:
    """An untrained small checkpoint for `robot`'s action keys (stats std 0.1), in the released layout."""
    from model.checkpoint import save_checkpoint

    keys = list(robot.action_features)
    entry = {"mean": [0.0] * len(keys), "std": [0.1] * len(keys)}
    save_checkpoint(folder, small_model(), {robot.name: {"observation.state": entry, "action": entry}})


def write_served_checkpoint(folder, robot) -> None:
    """write_checkpoint plus the train_config.json layout (robot type, cameras, state and action
    keys) that model.serve needs to map observations."""
    import json

    from model.checkpoint import TRAIN_CONFIG_FILE
    from robot_io.devices.robot import camera_keys, state_keys

    write_checkpoint(folder, robot)
    layout = {"robot_type": robot.name, "cameras": camera_keys(robot), "state_keys": state_keys(robot),
              "action_keys": list(robot.action_features)}
    (folder / TRAIN_CONFIG_FILE).write_text(json.dumps({"dataset": layout}))
