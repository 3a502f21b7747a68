"""The understanding expert's inputs: a vision tower and an instruction tokenizer.

Both variants expose the same surface to the policy network:
`und_expert.image_tokens(images (M, 3, S, S) in [-1, 1], instruction (M, D)) -> (M, tokens_per_view, D)` and
`und_expert.model.language_model` holding `embed_tokens`, `layers` and `norm`.
`tiny` uses our conv encoder and byte-level text; `a1-3b` uses transformers' Qwen3-VL (model/qwen3_vl.py).
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.config import ConvVisionConfig, ModelConfig, TextConfig
from model.mot import Expert
from model.preprocess import resize_square

POSITION_INIT_STD = 0.02  # learned position embeddings start small, as in ViT


class ResidualConvBlock(nn.Module):
    """x + conv3x3(gelu(film(conv3x3(x)))), same size and width. With `text_width`, the
    instruction scales and shifts each channel (FiLM), starting as the identity."""

    def __init__(self, channels: int, text_width: int | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.film = None
        if text_width is not None:
            self.film = nn.Linear(text_width, 2 * channels)
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(self, x: Tensor, text: Tensor | None = None) -> Tensor:
        """x (M, C, H, W), text (M, text_width) or None."""
        h = self.conv1(x)  # (M, C, H, W)
        if self.film is not None:
            if text is None:
                raise ValueError("this vision encoder is instruction-conditioned: pass the instruction")
            scale, shift = self.film(text).chunk(2, dim=-1)  # (M, C) each
            h = h * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        return x + self.conv2(F.gelu(h))


class ConvVisionEncoder(nn.Module):
    """Strided stem, residual conv blocks, strided patch conv: (M, 3, 224, 224) -> 28x28 features -> 4x4 tokens of width D."""

    def __init__(self, c: ConvVisionConfig, width: int) -> None:
        super().__init__()
        self.input_size = c.input_size
        self.stem = nn.Conv2d(3, c.stem_channels, kernel_size=c.stem_patch, stride=c.stem_patch)
        text_width = width if c.text_film else None  # the instruction arrives as a word embedding of width D
        self.blocks = nn.ModuleList(ResidualConvBlock(c.stem_channels, text_width) for _ in range(c.stem_blocks))
        self.patch = nn.Conv2d(c.stem_channels, width, kernel_size=c.head_patch, stride=c.head_patch)
        self.pos_embed = nn.Parameter(torch.randn(c.tokens_per_side**2, width) * POSITION_INIT_STD)
        self.norm = nn.LayerNorm(width)

    def forward(self, images: Tensor, instruction: Tensor | None = None) -> Tensor:
        """images (M, 3, S, S), instruction (M, D) mean word embedding (needed with text_film)."""
        x = self.stem(images)  # (M, stem_channels, 28, 28)
        for block in self.blocks:
            x = block(x, instruction)
        x = self.patch(F.gelu(x))  # (M, D, 4, 4)
        x = x.flatten(2).transpose(1, 2)  # (M, 16, D), raster order
        return self.norm(x + self.pos_embed)


class TinyVLM(nn.Module):
    """Our small understanding expert: conv vision encoder + byte embeddings + expert layers."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.model = nn.ModuleDict(
            {
                "visual": ConvVisionEncoder(config.vision, config.und.hidden_size),
                "language_model": Expert(config.und, vocab_size=config.text.vocab_size),
            }
        )

    def image_tokens(self, images: Tensor, instruction: Tensor | None = None) -> Tensor:
        """images (M, 3, S, S), instruction (M, D) the mean embedding of its words."""
        return self.model.visual(resize_square(images, self.model.visual.input_size), instruction)


def build_understanding(config: ModelConfig) -> nn.Module:
    if config.vision.kind == "conv":
        return TinyVLM(config)
    from model.qwen3_vl import (
        Qwen3VLUnderstanding,  # transformers loads slowly; only a1-3b needs it
    )

    return Qwen3VLUnderstanding.from_model_config(config)


class ByteTokenizer:
    """Instruction -> UTF-8 bytes, lower-cased with whitespace collapsed, right-padded to max_tokens."""

    def __init__(self, config: TextConfig) -> None:
        self.config = config
        self.first_byte_id = max(config.pad_id, config.vision_start_id, config.vision_end_id) + 1
        if self.first_byte_id + 256 > config.vocab_size:
            raise ValueError(f"byte vocabulary needs {self.first_byte_id + 256} ids, config has {config.vocab_size}")

    def __call__(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        """-> ids (B, max_tokens) long, mask (B, max_tokens) bool."""
        rows = []
        for text in texts:
            data = " ".join(text.lower().split()).encode("utf-8")[: self.config.max_tokens]
            if not data:
                raise ValueError("instruction is empty")
            rows.append([self.first_byte_id + b for b in data])
        return _pad_right(rows, self.config)


class WordTokenizer:
    """Instruction -> one id per word (lower-cased letters and digits; punctuation splits words),
    hashed into the vocabulary with CRC-32 (stable across runs and machines), right-padded."""

    def __init__(self, config: TextConfig) -> None:
        self.config = config
        self.first_word_id = max(config.pad_id, config.vision_start_id, config.vision_end_id) + 1
        if self.first_word_id >= config.vocab_size:
            raise ValueError(f"a word vocabulary needs ids above the specials, config has vocab_size {config.vocab_size}")

    def word_id(self, word: str) -> int:
        return self.first_word_id + zlib.crc32(word.encode("utf-8")) % (self.config.vocab_size - self.first_word_id)

    def __call__(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        """-> ids (B, max_tokens) long, mask (B, max_tokens) bool."""
        rows = []
        for text in texts:
            words = re.findall(r"[a-z0-9]+", text.lower())[: self.config.max_tokens]
            if not words:
                raise ValueError("instruction is empty")
            rows.append([self.word_id(word) for word in words])
        return _pad_right(rows, self.config)


class QwenTextTokenizer:
    """Qwen3-VL's tokenizer from a local folder (tokenizer.json etc.); nothing is downloaded."""

    def __init__(self, folder: str | Path, config: TextConfig) -> None:
        from transformers import AutoTokenizer

        self.config = config
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as err:
            raise FileNotFoundError(f"no Qwen3-VL tokenizer files (tokenizer.json, tokenizer_config.json) in {folder}: {err}") from err

    def __call__(self, texts: list[str]) -> tuple[Tensor, Tensor]:
        rows = []
        for text in texts:
            ids = self._tokenizer(text.strip(), add_special_tokens=False)["input_ids"][: self.config.max_tokens]
            if not ids:
                raise ValueError("instruction is empty")
            rows.append(ids)
        return _pad_right(rows, self.config)


def _pad_right(rows: list[list[int]], config: TextConfig) -> tuple[Tensor, Tensor]:
    ids = torch.full((len(rows), config.max_tokens), config.pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), config.max_tokens), dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = True
    return ids, mask


def build_text_tokenizer(config: TextConfig, folder: str | Path | None = None) -> WordTokenizer | ByteTokenizer | QwenTextTokenizer:
    if config.kind == "words":
        return WordTokenizer(config)
    if config.kind == "bytes":
        return ByteTokenizer(config)
    if folder is None:
        raise ValueError("the Qwen text tokenizer needs a folder holding its tokenizer files")
    return QwenTextTokenizer(folder, config)
