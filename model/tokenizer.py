"""Image tokenizers for the foresight path: images (B, 3, H, W) in [-1, 1] <-> latents (B, C, H/d, W/d).

`CosmosTokenizer` wraps NVIDIA's Cosmos-Tokenizer-CI8x8 TorchScript files when a user has them on
disk; `ConvAutoencoder` is our own small autoencoder (same 8x reduction and 16 channels) for the
`tiny` preset, trained on simulator frames (`python -m model.train_tokenizer`); its weights live in a folder as
`tokenizer.safetensors` (its own state dict: encoder.*, decoder.*; a model checkpoint holds the same
tensors under `model.cosmos.*`).
"""

from __future__ import annotations

import abc
import itertools
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from model.config import ForesightConfig

COSMOS_FILES = ("encoder.jit", "decoder.jit")
CONV_WEIGHTS_FILE = "tokenizer.safetensors"


class ImageTokenizer(nn.Module, abc.ABC):
    def __init__(self, latent_channels: int, downsample: int) -> None:
        super().__init__()
        self.latent_channels = latent_channels
        self.downsample = downsample

    @abc.abstractmethod
    def encode(self, images: Tensor) -> Tensor:
        """images (B, 3, H, W) in [-1, 1] -> latents (B, latent_channels, H/downsample, W/downsample)."""

    @abc.abstractmethod
    def decode(self, latents: Tensor) -> Tensor:
        """latents (B, latent_channels, h, w) -> images (B, 3, h*downsample, w*downsample) in [-1, 1]."""

    def check_images(self, images: Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        if images.shape[-1] % self.downsample or images.shape[-2] % self.downsample:
            raise ValueError(f"image size {tuple(images.shape[-2:])} must be divisible by {self.downsample}")

    def check_latents(self, latents: Tensor) -> None:
        if latents.ndim != 4 or latents.shape[1] != self.latent_channels:
            raise ValueError(f"expected latents of shape (B, {self.latent_channels}, h, w), got {tuple(latents.shape)}")


class CosmosTokenizer(ImageTokenizer):
    """Cosmos-Tokenizer-CI8x8 from a local folder holding encoder.jit and decoder.jit.

    The submodule names `_enc_model` / `_dec_model` give the released checkpoint's `model.cosmos.*` keys.
    """

    def __init__(self, folder: str | Path, latent_channels: int = 16, downsample: int = 8) -> None:
        super().__init__(latent_channels, downsample)
        folder = Path(folder)
        self._enc_model = _load_torchscript(folder / COSMOS_FILES[0])
        self._dec_model = _load_torchscript(folder / COSMOS_FILES[1])

    def encode(self, images: Tensor) -> Tensor:
        self.check_images(images)
        latents = self._enc_model(images.to(_dtype_of(self._enc_model, images.dtype)))
        if isinstance(latents, (tuple, list)):  # some exports return (latent, ...) tuples
            latents = latents[0]
        return latents.to(images.dtype)

    def decode(self, latents: Tensor) -> Tensor:
        self.check_latents(latents)
        images = self._dec_model(latents.to(_dtype_of(self._dec_model, latents.dtype)))
        return images.to(latents.dtype).clamp(-1, 1)


def _load_torchscript(path: Path) -> torch.jit.ScriptModule:
    if not path.is_file():
        raise FileNotFoundError(f"Cosmos tokenizer file not found: {path}")
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as err:  # torch raises RuntimeError/ValueError variants for bad archives
        raise ValueError(f"cannot load TorchScript file {path}: {err}") from err
    return module.eval()


def _dtype_of(module: nn.Module, default: torch.dtype) -> torch.dtype:
    first = next(iter(module.parameters()), None)
    return default if first is None else first.dtype


class ConvAutoencoder(ImageTokenizer):
    """Our small tokenizer: stride-2 conv stages down to latent_channels, mirrored back up."""

    def __init__(self, latent_channels: int = 16, channels: tuple[int, ...] = (16, 32, 64)) -> None:
        super().__init__(latent_channels, downsample=2 ** len(channels))
        down: list[nn.Module] = []
        for c_in, c_out in zip((3, *channels), channels):
            down += [nn.Conv2d(c_in, c_out, kernel_size=4, stride=2, padding=1), nn.SiLU()]
        self.encoder = nn.Sequential(*down, nn.Conv2d(channels[-1], latent_channels, kernel_size=3, padding=1))
        up: list[nn.Module] = [nn.Conv2d(latent_channels, channels[-1], kernel_size=3, padding=1)]
        widths = (*reversed(channels), 3)  # e.g. 64 -> 32 -> 16 -> 3
        for c_in, c_out in itertools.pairwise(widths):
            up += [nn.SiLU(), nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1)]
        self.decoder = nn.Sequential(*up, nn.Tanh())

    def encode(self, images: Tensor) -> Tensor:
        self.check_images(images)
        return self.encoder(images)

    def decode(self, latents: Tensor) -> Tensor:
        self.check_latents(latents)
        return self.decoder(latents)


def save_conv_weights(tokenizer: ConvAutoencoder, folder: str | Path) -> Path:
    """Write folder/tokenizer.safetensors; returns its path."""
    path = Path(folder) / CONV_WEIGHTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in tokenizer.state_dict().items()}
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path


def load_conv_weights(tokenizer: ConvAutoencoder, folder: str | Path) -> None:
    """Load folder/tokenizer.safetensors into `tokenizer` (e.g. an InternVLA's `model.cosmos`), strictly."""
    path = Path(folder) / CONV_WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"tokenizer weights not found: {path} (train them with python -m model.train_tokenizer)")
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as err:
        raise ValueError(f"tokenizer weights are corrupt or unreadable: {path}: {err}") from err
    try:
        tokenizer.load_state_dict(tensors)
    except RuntimeError as err:  # missing, unexpected or mis-shaped keys, each named by torch
        raise ValueError(f"{path} does not fit this tokenizer (other latent_channels or conv_channels?): {err}") from err


def build_tokenizer(config: ForesightConfig, folder: str | Path | None = None) -> ImageTokenizer:
    """The tokenizer a foresight config names. Cosmos needs the folder holding its TorchScript files;
    the conv autoencoder is freshly initialised, or loaded from the folder's tokenizer.safetensors."""
    if config.tokenizer == "conv":
        tokenizer = ConvAutoencoder(config.latent_channels, config.conv_channels)
        if folder is not None:
            load_conv_weights(tokenizer, folder)
        return tokenizer
    if folder is None:
        raise ValueError(f"the Cosmos tokenizer needs a folder holding {' and '.join(COSMOS_FILES)}")
    return CosmosTokenizer(folder, config.latent_channels, config.downsample)
