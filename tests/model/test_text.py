"""Instruction tokenizers: right-padded to 48 tokens, empty instructions refused."""

import pytest

from model.config import TextConfig
from model.understanding import ByteTokenizer, QwenTextTokenizer, build_text_tokenizer


def test_bytes_are_right_padded_lowercased_and_cut():
    tokenizer = ByteTokenizer(TextConfig())
    ids, mask = tokenizer(["Pick  the RED block", "x" * 60])
    assert ids.shape == mask.shape == (2, 48)
    assert mask[0].sum() == len("pick the red block") and not mask[0, 18:].any()
    assert (ids[0, 18:] == TextConfig().pad_id).all()
    assert ids[0, 0] == tokenizer.first_byte_id + ord("p")
    assert mask[1].all()  # 60 bytes cut to 48


def test_empty_instruction_is_refused():
    with pytest.raises(ValueError, match="empty"):
        ByteTokenizer(TextConfig())(["  \n "])


def test_qwen_tokenizer_needs_its_files(tmp_path):
    config = TextConfig(kind="qwen", vocab_size=151936, pad_id=151643, vision_start_id=151652, vision_end_id=151653)
    with pytest.raises(ValueError, match="needs a folder"):
        build_text_tokenizer(config)
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        QwenTextTokenizer(tmp_path, config)
