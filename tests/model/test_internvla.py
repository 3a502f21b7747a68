"""The block structure's promises: foresight never sees state or actions, actions see foresight,
padding is invisible, and the three-pass cached inference equals one full-sequence forward."""

import dataclasses

import pytest
import torch

from model import flow
from model.internvla import InternVLA
from tests.model.helpers import (
    random_inputs,
    random_noise,
    replace,
    small_config,
    small_model,
)

T = torch.tensor([0.7])


def test_generation_outputs_ignore_state_and_noisy_actions():
    model, config = small_model(), small_config()
    x = random_inputs(config)
    latents, velocity = model.predict(x, random_noise(config, seed=1), T)
    other_x = replace(x, state=x.state + 5.0)
    other_latents, other_velocity = model.predict(other_x, random_noise(config, seed=2), torch.tensor([0.2]))
    assert torch.equal(latents, other_latents)
    assert not torch.allclose(velocity, other_velocity)


def test_actions_depend_on_generation_inputs():
    model, config = small_model(), small_config()
    x = random_inputs(config)
    noise = random_noise(config)
    actions, _ = model.sample(x, noise)
    changed, _ = model.sample(replace(x, history_latents=x.history_latents + 1.0), noise)
    assert (actions - changed).abs().max() > 1e-4


def test_masked_generation_tokens_do_not_reach_the_actions_in_training_or_inference():
    """action_reads_generation False: other generation inputs change the foresight but not the
    actions, in the cached three-pass sampling and in the full-sequence training pass."""
    model, config = small_model(), small_config()
    x = random_inputs(config)
    other = replace(x, history_latents=x.history_latents + 1.0)
    noise = random_noise(config)
    model.config.action_reads_generation = False
    actions, latents = model.sample(x, noise)
    other_actions, other_latents = model.sample(other, noise)
    torch.testing.assert_close(other_actions, actions, atol=0, rtol=0)
    assert (other_latents - latents).abs().max() > 1e-4
    velocity = model.predict(x, noise, T)[1]
    torch.testing.assert_close(model.predict(other, noise, T)[1], velocity, atol=0, rtol=0)
    # The mask is all that differs: reading the generation tokens again, the actions follow them.
    model.config.action_reads_generation = True
    assert (model.sample(x, noise)[0] - actions).abs().max() > 1e-4


def test_padding_changes_nothing():
    model, config = small_model(), small_config()
    x = random_inputs(config, text_len=5)
    x.camera_mask[0, 1] = False  # the wrist slot holds no camera
    noisy = random_noise(config)
    latents, velocity = model.predict(x, noisy, T)

    g = torch.Generator().manual_seed(7)
    text = x.text_tokens.clone()
    text[:, 5:] = torch.randint(3, config.text.vocab_size, (1, config.text.max_tokens - 5), generator=g)
    images, history = x.images.clone(), x.history_latents.clone()
    images[:, 1] = torch.rand(images[:, 1].shape, generator=g)
    history[:, 1] = torch.randn(history[:, 1].shape, generator=g)
    padded = replace(x, text_tokens=text, images=images, history_latents=history)
    other_latents, other_velocity = model.predict(padded, noisy, T)

    present = [0, 2]
    torch.testing.assert_close(other_latents[:, present], latents[:, present], atol=1e-6, rtol=0)
    torch.testing.assert_close(other_velocity, velocity, atol=1e-6, rtol=0)


def test_cached_three_pass_inference_equals_full_forward():
    model, config = small_model(), small_config()
    x = random_inputs(config, batch=2)
    x.camera_mask[1, 2] = False
    noise = random_noise(config, batch=2)
    actions, latents = model.sample(x, noise)

    def full_velocity(noisy, t):
        return model.predict(x, noisy, t)[1]

    with torch.no_grad():
        reference = flow.euler_sample(full_velocity, noise * config.flow.sample_noise_scale, config.flow.denoise_steps)
        reference_latents, _ = model.predict(x, noise, torch.ones(2))
    torch.testing.assert_close(actions, reference, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(latents, reference_latents, atol=1e-5, rtol=1e-5)


def test_sampling_starts_from_the_noise_scaled_by_sample_noise_scale():
    """Scale 0 gives one chunk whatever the noise; scale 1 gives another chunk for other noise;
    in between, sampling equals the Euler integration from the scaled noise."""
    model, config = small_model(), small_config()
    x = random_inputs(config)
    noise, other = random_noise(config, seed=1), random_noise(config, seed=2)

    def sample(scale, start):
        model.config.flow = dataclasses.replace(model.config.flow, sample_noise_scale=scale)
        return model.sample(x, start)[0]

    torch.testing.assert_close(sample(0.0, noise), sample(0.0, other), atol=0, rtol=0)
    assert (sample(1.0, noise) - sample(1.0, other)).abs().max() > 1e-3
    torch.testing.assert_close(sample(0.5, noise), sample(1.0, 0.5 * noise), atol=1e-6, rtol=1e-6)


def test_a_negative_sample_noise_scale_is_refused():
    with pytest.raises(ValueError, match="sample_noise_scale must be >= 0"):
        dataclasses.replace(small_config().flow, sample_noise_scale=-0.1)


def test_batch_matches_single_samples():
    model, config = small_model(), small_config()
    x = random_inputs(config, batch=2)
    x.camera_mask[0, 0] = False
    x.text_mask[1, 3:] = False
    noise = random_noise(config, batch=2)
    actions, latents = model.sample(x, noise)
    for i in range(2):
        one = replace(x, **{f: getattr(x, f)[i : i + 1] for f in ("images", "camera_mask", "text_tokens", "text_mask", "history_latents", "state")})
        single_actions, single_latents = model.sample(one, noise[i : i + 1])
        torch.testing.assert_close(single_actions, actions[i : i + 1], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(single_latents, latents[i : i + 1], atol=1e-5, rtol=1e-5)


def test_block_mask_and_positions():
    model, config = small_model(), small_config()
    x = random_inputs(config, text_len=3)
    x.camera_mask[0, 1] = False
    layout = model.layout(x)
    mask = layout.mask[0]
    k = config.vision.tokens_per_side
    per_camera = k * k + 2
    # Blocks: prefix reads only the prefix; generation reads prefix + itself; actions read everything.
    first_gen, state, first_action = layout.generation.start, layout.suffix.start, layout.suffix.start + 1
    assert not mask[0, first_gen] and not mask[first_gen, state] and mask[first_gen, 0]
    assert mask[state, first_gen] and not mask[state, first_action]
    assert mask[first_action, state] and mask[first_action, layout.suffix.stop - 1]
    model.config.action_reads_generation = False  # the ablation: state and actions skip the generation block
    blind = model.layout(x).mask[0]
    gen = slice(first_gen, state)
    assert not blind[state:, gen].any() and blind[state:, 0].all() and blind[first_action, state]
    assert torch.equal(blind[:state], mask[:state])
    # Padding (the missing camera's tokens, text after 3 tokens) is never read by another token.
    pad_camera = list(range(per_camera, 2 * per_camera))
    pad_text = list(range(3 * per_camera + 3, layout.prefix.stop))
    for col in pad_camera + pad_text:
        assert mask[:, col].sum() == 1 and mask[col, col]
    # Qwen3-VL M-RoPE: vision-start at p, the image at (p+1, p+1+row, p+1+col), vision-end at p+1+k.
    positions = layout.positions[:, 0]
    assert positions[:, 0].tolist() == [0, 0, 0]
    assert positions[:, 1 + k * k - 1].tolist() == [1, k, k]  # last image token of the first camera
    assert positions[:, per_camera - 1].tolist() == [1 + k] * 3
    # The missing camera does not advance positions: the third camera starts right after the first.
    assert positions[:, 2 * per_camera].tolist() == [2 + k] * 3
    last_text = positions[0, 3 * per_camera + 2]
    assert positions[:, first_gen].tolist() == [last_text + 1] * 3


def test_action_loss_reaches_all_three_experts_and_generation_loss_skips_actions():
    model, config = small_model(), small_config()
    model.train()
    x = random_inputs(config, batch=2)
    actions = torch.randn(2, config.chunk_size, config.max_action_dim)
    mot = model.qwen3_vl_with_expert
    reached = {
        "und": mot.und_expert.model.language_model.layers[0].self_attn.q_proj.weight,
        "gen": mot.gen_expert.layers[0].self_attn.q_proj.weight,
        "act": mot.act_expert.layers[0].self_attn.q_proj.weight,
        "vision": mot.und_expert.model.visual.stem.weight,
        "foresight tokens": model.downsample_conv.weight,
    }
    noise, t = torch.randn_like(actions), torch.full((2,), 0.5)
    latents, velocity = model.predict(x, flow.noisy_actions(actions, noise, t), t)
    action_loss = (velocity - flow.velocity_target(actions, noise)).pow(2).mean()
    grads = torch.autograd.grad(action_loss, list(reached.values()), retain_graph=True)
    for name, grad in zip(reached, grads):
        assert grad.abs().sum() > 0, f"the action loss does not reach {name}"

    gen_loss = latents.pow(2).mean()
    act_grad = torch.autograd.grad(gen_loss, reached["act"], allow_unused=True)[0]
    assert act_grad is None or act_grad.abs().sum() == 0


def test_training_loss_combines_action_and_generation_losses():
    model, config = small_model(), small_config()
    x = random_inputs(config, batch=2)
    x.camera_mask[0, 1] = False
    actions = torch.randn(2, config.chunk_size, config.max_action_dim)
    fs = config.foresight
    target = torch.randn(2, config.num_cameras, fs.latent_channels, fs.latent_size, fs.latent_size)
    losses = model(x, actions, target)
    expected = losses["action_loss"] + config.gen_loss_weight * losses["gen_loss"]
    torch.testing.assert_close(losses["loss"].detach(), expected)
    # The missing camera's target is not scored.
    fixed = {"noise": torch.zeros_like(actions), "t": torch.full((2,), 0.5)}
    base = model(x, actions, target, **fixed)
    target[0, 1] += 1e6
    torch.testing.assert_close(model(x, actions, target, **fixed)["gen_loss"], base["gen_loss"])


def test_committed_steps_are_given_clean_at_time_zero_and_left_out_of_the_action_loss(monkeypatch):
    base = small_config()
    config = dataclasses.replace(base, flow=dataclasses.replace(base.flow, max_committed_steps=3))
    torch.manual_seed(0)
    model = InternVLA(config).eval()
    x = random_inputs(config, batch=2)
    actions = torch.randn(2, config.chunk_size, config.max_action_dim)
    fs = config.foresight
    target = torch.randn(2, config.num_cameras, fs.latent_channels, fs.latent_size, fs.latent_size)
    noise, t = torch.randn_like(actions), torch.tensor([0.6, 0.9])
    committed = torch.zeros(2, config.chunk_size, dtype=torch.bool)
    committed[0, :2] = True  # the first chunk has 2 committed steps, the second none
    monkeypatch.setattr(flow, "sample_committed", lambda *args: committed)
    losses = model(x, actions, target, noise=noise, t=t)

    noisy = flow.noisy_actions(actions, noise, t)
    noisy[0, :2] = actions[0, :2]
    step_t = t[:, None].repeat(1, config.chunk_size)
    step_t[0, :2] = 0.0
    _, velocity = model.predict(x, noisy, step_t)
    error = (velocity - flow.velocity_target(actions, noise)).pow(2)
    expected = (error[0, 2:].sum() + error[1].sum()) / ((2 * config.chunk_size - 2) * config.max_action_dim)
    torch.testing.assert_close(losses["action_loss"], expected)


def test_a_model_trained_with_committed_steps_keeps_them_exactly_and_denoises_the_rest_beside_them():
    base = small_config()
    config = dataclasses.replace(base, flow=dataclasses.replace(base.flow, max_committed_steps=3))
    torch.manual_seed(0)
    model = InternVLA(config).eval()
    x = random_inputs(config)
    noise = random_noise(config, seed=3)
    target = torch.full_like(noise, 0.4)
    weight = torch.zeros(1, config.chunk_size)
    weight[0, :2] = 1.0
    layout, cache = model.prefill_prefix(x)
    cache, _ = model.prefill_generation(x, layout, cache)
    free = model.denoise(x.state, layout, cache, noise)
    kept = model.denoise(x.state, layout, cache, noise, guide=(target, weight))
    torch.testing.assert_close(kept[:, :2], target[:, :2], atol=0, rtol=0)  # given clean, never moved
    assert not torch.allclose(kept[:, 2:], free[:, 2:], atol=1e-4)  # the rest reads them


def test_committed_steps_must_leave_steps_to_learn():
    base = small_config()
    with pytest.raises(ValueError, match="max_committed_steps must leave steps to learn"):
        dataclasses.replace(base, flow=dataclasses.replace(base.flow, max_committed_steps=base.chunk_size))
    with pytest.raises(ValueError, match="max_committed_steps must be a whole number"):
        dataclasses.replace(base.flow, max_committed_steps=-1)
