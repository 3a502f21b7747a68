"""The prompt a1-3b's understanding expert sees, pinned against Qwen3-VL's public rules (model/A1_3B_PROMPT.md).

Per camera `<|vision_start|>` + 64 image tokens + `<|vision_end|>`, then the instruction's 48 raw
tokens (no chat template). 64: Qwen3-VL's processor upscales a 224x224 frame to 256x256, 16 px
patches, 2x2 merge. Positions: Qwen3-VL's own get_rope_index on the same token types. The model is
built at toy widths with a1-3b's exact prefix geometry (the 3B itself takes minutes to build).
"""

import dataclasses

import pytest
import torch
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

from model.config import ForesightConfig, a1_3b
from model.internvla import InternVLA, ModelInputs
from model.qwen3_vl import hf_config, patchify, processor_resize
from model.understanding import QwenTextTokenizer
from tests.model.test_qwen3_vl import qwen_small_config

# Qwen3-VL-2B-Instruct's preprocessor_config.json (what the released pipeline's processor reads).
RELEASED_PROCESSOR = {
    "size": {"shortest_edge": 65536, "longest_edge": 16777216},
    "patch_size": 16, "temporal_patch_size": 2, "merge_size": 2, "image_mean": [0.5] * 3, "image_std": [0.5] * 3,
}
IMAGE_PAD_ID = 151655  # <|image_pad|>, the placeholder the image tokens replace
CAMERA_TOKENS = 66  # vision-start + 64 + vision-end
TEXT_START = 3 * CAMERA_TOKENS  # 198


def toy_a1_3b():
    """a1-3b's vocabulary, token ids, cameras, frame and vision input sizes, 48 text tokens and 96
    generation tokens; the toy widths and depths of test_qwen3_vl's config."""
    c, toy = a1_3b(), qwen_small_config()
    return dataclasses.replace(
        toy,
        name="a1-3b-toy",
        vision=dataclasses.replace(toy.vision, input_size=c.vision.input_size),
        text=c.text,
        foresight=ForesightConfig(tokenizer="conv", image_size=32, tokens_per_side=4, conv_channels=(4, 4, 4)),
        image_size=c.image_size,
        chunk_size=c.chunk_size,
    )


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return InternVLA(toy_a1_3b()).eval()


def inputs(camera_mask: list[list[bool]], text_lengths: list[int]) -> ModelInputs:
    c = toy_a1_3b()
    b, n = len(camera_mask), c.num_cameras
    g = torch.Generator().manual_seed(0)
    return ModelInputs(
        images=torch.rand(b, n, 3, c.image_size, c.image_size, generator=g) * 2 - 1,
        camera_mask=torch.tensor(camera_mask),
        text_tokens=torch.randint(0, 151643, (b, c.text.max_tokens), generator=g),
        text_mask=torch.arange(c.text.max_tokens)[None] < torch.tensor(text_lengths)[:, None],
        history_latents=torch.zeros(0),
        state=torch.zeros(b, c.max_state_dim),
    )


def test_token_counts_and_ids_per_block():
    c = a1_3b()
    assert c.image_tokens_per_view == 64 and c.text.max_tokens == 48
    assert c.prefix_tokens == 3 * CAMERA_TOKENS + 48 == 246
    assert c.generation_tokens == 3 * 2 * 4 * 4 == 96 and c.chunk_size == 50  # then 1 state + 50 action tokens
    qwen = hf_config(c)
    assert (c.text.vision_start_id, c.text.vision_end_id) == (qwen.vision_start_token_id, qwen.vision_end_token_id) == (151652, 151653)
    assert qwen.image_token_id == IMAGE_PAD_ID and c.text.pad_id == 151643  # <|endoftext|>, Qwen's padding
    toy = toy_a1_3b()
    geometry = ("prefix_tokens", "image_tokens_per_view", "generation_tokens", "text", "num_cameras", "image_size", "chunk_size")
    assert [getattr(toy, name) for name in geometry] == [getattr(c, name) for name in geometry]


def test_a_224_frame_is_64_tokens_resized_as_qwen3_vl_processes_it():
    c = a1_3b()
    frame = torch.rand(3, c.image_size, c.image_size, generator=torch.Generator().manual_seed(1))  # [0, 1], letterboxed
    released = Qwen2VLImageProcessor(**RELEASED_PROCESSOR)(images=[frame], do_rescale=False, return_tensors="pt")
    grid = released["image_grid_thw"][0].tolist()
    assert grid == [1, 16, 16]  # upscaled to 256x256: 224^2 < min_pixels = 256^2
    assert grid[1] * grid[2] // 4 == c.image_tokens_per_view and c.vision.input_size == 256
    ours, our_grid = patchify(processor_resize(frame[None] * 2 - 1, c.vision.input_size), hf_config(c).vision_config)
    assert our_grid.tolist() == [grid]
    torch.testing.assert_close(ours, released["pixel_values"], atol=1e-5, rtol=0)  # bicubic, antialiased, like the processor


def test_prefix_is_start_image_end_per_camera_then_raw_text(model):
    x = inputs([[True, True, True]], [12])
    und = model.qwen3_vl_with_expert.und_expert
    embed = und.model.language_model.embed_tokens
    with torch.no_grad():
        prefix = model.embed_prefix(x)[0]  # (246, D)
        images = und.image_tokens(x.images[0])  # (3, 64, D)
        start, end = embed(torch.tensor([151652, 151653]))
    assert prefix.shape[0] == 246
    for camera in range(3):
        at = camera * CAMERA_TOKENS
        assert torch.equal(prefix[at], start) and torch.equal(prefix[at + 65], end)
        assert torch.equal(prefix[at + 1 : at + 65], images[camera])
    with torch.no_grad():
        assert torch.equal(prefix[TEXT_START:], embed(x.text_tokens[0]))  # the instruction's own tokens, nothing around them


def qwen3_vl_positions(model, x: ModelInputs) -> torch.Tensor:
    """Qwen3-VL's get_rope_index on the ids our prefix stands for (image tokens as <|image_pad|>)."""
    b = x.camera_mask.shape[0]
    camera = torch.tensor([151652] + [IMAGE_PAD_ID] * 64 + [151653])
    ids = torch.cat([camera.repeat(3), torch.full((48,), 1000)]).expand(b, -1)
    types = (ids == IMAGE_PAD_ID).int()
    valid = torch.cat([x.camera_mask.repeat_interleave(CAMERA_TOKENS, dim=1), x.text_mask], dim=1)
    grids = torch.tensor([[1, 16, 16]] * int(x.camera_mask.sum()))
    positions, _ = model.qwen3_vl_with_expert.und_expert.model.get_rope_index(ids, types, grids, attention_mask=valid.long())
    return positions, valid


@pytest.mark.parametrize(
    "cameras, text", [([[True, True, True]], [12]), ([[True, False, True], [False, True, True]], [48, 1])]
)
def test_prefix_positions_are_qwen3_vl_m_rope(model, cameras, text):
    x = inputs(cameras, text)
    ours = model.layout(x).positions[:, :, :246]
    theirs, valid = qwen3_vl_positions(model, x)
    assert torch.equal(ours[:, valid], theirs[:, valid])  # padding has no position of its own


def test_positions_after_images_follow_the_grid_not_the_token_count(model):
    layout = model.layout(inputs([[True, True, True]], [12]))
    t, h, w = layout.positions[:, 0]
    for camera in range(3):
        at, p = camera * CAMERA_TOKENS, camera * 10  # each camera: start, an 8x8 grid advancing by 8, end
        assert (t[at], t[at + 65]) == (p, p + 9)
        assert t[at + 1 : at + 65].tolist() == [p + 1] * 64
        assert h[at + 1 : at + 65].view(8, 8)[:, 0].tolist() == list(range(p + 1, p + 9))
        assert w[at + 1 : at + 65].view(8, 8)[0].tolist() == list(range(p + 1, p + 9))
    assert t[TEXT_START : TEXT_START + 12].tolist() == list(range(30, 42))  # text at 30, not at token 198
    assert torch.equal(t[TEXT_START:], h[TEXT_START:]) and torch.equal(t[TEXT_START:], w[TEXT_START:])  # 1-D from the text on
    # Later blocks: 1-D after the last real prefix position, padding of the generation block included
    # (the released sample_actions' rule): generation 42..137, state 138, actions 139..188.
    assert t[layout.generation].tolist() == list(range(42, 138))
    assert t[layout.suffix].tolist() == list(range(138, 189))
    assert torch.equal(layout.positions[0, :, 246:], layout.positions[1, :, 246:])


def test_qwen_text_tokenizer_applies_no_chat_template(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<|endoftext|>": 0, "<|im_start|>": 1, "<|im_end|>": 2, "user": 3, "pick": 4, "the": 5, "red": 6, "block": 7}
    words = Tokenizer(models.WordLevel(vocab, unk_token="<|endoftext|>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    words.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    template = "{% for m in messages %}<|im_start|>{{ m.role }} {{ m.content }}<|im_end|>{% endfor %}"
    PreTrainedTokenizerFast(tokenizer_object=words, pad_token="<|endoftext|>", chat_template=template).save_pretrained(tmp_path)
    text = dataclasses.replace(a1_3b().text, vocab_size=len(vocab), pad_id=0, vision_start_id=1, vision_end_id=2)
    tokenizer = QwenTextTokenizer(tmp_path, text)
    chat = [{"role": "user", "content": "pick the red block"}]
    templated = tokenizer._tokenizer.apply_chat_template(chat, tokenize=True, return_dict=True)["input_ids"]
    assert templated == [1, 3, 4, 5, 6, 7, 2]  # what the folder's template would make: <|im_start|>user ... <|im_end|>
    ids, mask = tokenizer(["pick the red block"])
    assert ids.shape == (1, 48) and ids[0, :5].tolist() == [4, 5, 6, 7, 0] and mask[0].sum() == 4
