"""Instruction tokenizers: right-padded to 48 tokens, empty instructions refused."""

import pytest

from model.config import TextConfig
import zlib

from model.understanding import ByteTokenizer, QwenTextTokenizer, WordTokenizer, build_text_tokenizer


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


def test_words_are_one_token_each_stable_and_padded():
    config = TextConfig(kind="words", vocab_size=1024, max_tokens=16)
    tokenizer = WordTokenizer(config)
    ids, mask = tokenizer(["Pick up the RED block, and put it in the bin!", "pick up the green block"])
    assert ids.shape == mask.shape == (2, 16)
    assert mask[0].sum() == 11 and mask[1].sum() == 5
    red, green = ids[0, 3].item(), ids[1, 3].item()
    assert red != green and red == tokenizer.word_id("red")  # the colour is one token of its own
    assert (ids[0, :3] == ids[1, :3]).all()  # the same words, the same ids
    assert tokenizer.word_id("red") == WordTokenizer(config).word_id("red") == 3 + zlib.crc32(b"red") % 1021
    assert ((ids >= 3) | ~mask).all() and (ids[~mask] == config.pad_id).all()  # never a special id
    assert build_text_tokenizer(config).word_id("blue") == tokenizer.word_id("blue")
    with pytest.raises(ValueError, match="empty"):
        tokenizer(["!!! ..."])
