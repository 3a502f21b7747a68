"""Image tokenizers: shapes at any batch size, Cosmos TorchScript loading and its errors."""

import pytest
import torch

from model.tokenizer import ConvAutoencoder, CosmosTokenizer
from tests.model.helpers import write_fake_cosmos


@pytest.mark.parametrize("batch", [1, 3])
def test_conv_autoencoder_shapes(batch):
    tokenizer = ConvAutoencoder(latent_channels=16, channels=(4, 8, 8))
    images = torch.rand(batch, 3, 64, 48) * 2 - 1
    latents = tokenizer.encode(images)
    assert latents.shape == (batch, 16, 8, 6)
    pictures = tokenizer.decode(latents)
    assert pictures.shape == images.shape and pictures.abs().max() <= 1


def test_conv_autoencoder_rejects_bad_shapes():
    tokenizer = ConvAutoencoder(channels=(4, 8, 8))
    with pytest.raises(ValueError, match="divisible by 8"):
        tokenizer.encode(torch.zeros(1, 3, 60, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        tokenizer.encode(torch.zeros(3, 64, 64))
    with pytest.raises(ValueError, match="16"):
        tokenizer.decode(torch.zeros(1, 8, 4, 4))


@pytest.mark.parametrize("batch", [1, 2])
def test_cosmos_tokenizer_loads_torchscript(tmp_path, batch):
    write_fake_cosmos(tmp_path)
    tokenizer = CosmosTokenizer(tmp_path)
    latents = tokenizer.encode(torch.rand(batch, 3, 32, 32) * 2 - 1)
    assert latents.shape == (batch, 16, 4, 4)
    assert tokenizer.decode(latents).shape == (batch, 3, 32, 32)
    assert {k.split(".")[0] for k in tokenizer.state_dict()} == {"_enc_model", "_dec_model"}


def test_cosmos_tokenizer_names_the_missing_file(tmp_path):
    write_fake_cosmos(tmp_path)
    (tmp_path / "decoder.jit").unlink()
    with pytest.raises(FileNotFoundError, match="decoder.jit"):
        CosmosTokenizer(tmp_path)


def test_cosmos_tokenizer_names_a_corrupt_file(tmp_path):
    write_fake_cosmos(tmp_path)
    (tmp_path / "encoder.jit").write_bytes(b"not a torchscript archive")
    with pytest.raises(ValueError, match="encoder.jit"):
        CosmosTokenizer(tmp_path)
