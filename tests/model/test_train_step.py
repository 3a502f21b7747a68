"""One optimisation step on CPU: AdamW (0.9, 0.95) at lr 5e-5, tokenizer frozen, loss goes down."""

import pytest
import torch

from model import flow
from model.train_step import TrainBatch, make_optimizer, train_step
from tests.model.helpers import random_inputs, small_config, small_model


def make_batch(config, batch=4):
    fs = config.foresight
    x = random_inputs(config, batch=batch)
    x.camera_mask[0, 2] = False
    actions = torch.randn(batch, config.chunk_size, config.max_action_dim, generator=torch.Generator().manual_seed(5))
    target = torch.randn(batch, config.num_cameras, fs.latent_channels, fs.latent_size, fs.latent_size)
    action_mask = torch.arange(config.max_action_dim) < 7  # 7 real action dims, the rest padding
    return TrainBatch(x, actions, target, action_mask.expand(batch, -1))


def test_optimizer_follows_the_paper():
    model = small_model()
    optimizer = make_optimizer(model)
    group = optimizer.param_groups[0]
    assert (group["lr"], group["betas"]) == (5e-5, (0.9, 0.95))
    tokenizer_params = {id(p) for p in model.cosmos.parameters()}
    assert not any(id(p) in tokenizer_params for p in group["params"])


def test_train_step_updates_the_policy_but_not_the_tokenizer():
    model, config = small_model(), small_config()
    optimizer = make_optimizer(model)
    tokenizer_before = [p.clone() for p in model.cosmos.parameters()]
    act_before = model.qwen3_vl_with_expert.act_expert.layers[0].mlp.up_proj.weight.clone()
    stats = train_step(model, optimizer, make_batch(config))
    assert set(stats) == {"loss", "action_loss", "gen_loss", "grad_norm"}
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
    assert not torch.equal(model.qwen3_vl_with_expert.act_expert.layers[0].mlp.up_proj.weight, act_before)
    assert all(torch.equal(a, b) for a, b in zip(model.cosmos.parameters(), tokenizer_before))


def test_repeated_steps_fit_a_fixed_batch():
    torch.manual_seed(0)
    model, config = small_model(), small_config()
    optimizer = make_optimizer(model)
    for group in optimizer.param_groups:
        group["lr"] = 3e-3  # the toy model needs a larger step than the real 5e-5 to move within a test
    batch = make_batch(config, batch=2)
    fixed = {"noise": torch.zeros_like(batch.actions), "t": torch.full((2,), 0.5)}
    before = model(batch.inputs, batch.actions, batch.target_latents, batch.action_mask, **fixed)["loss"].item()
    for _ in range(30):
        train_step(model, optimizer, batch)
    after = model(batch.inputs, batch.actions, batch.target_latents, batch.action_mask, **fixed)["loss"].item()
    assert after < 0.7 * before


def test_padded_chunk_steps_do_not_count_in_the_action_loss():
    model, config = small_model(), small_config()
    batch = make_batch(config, batch=2)
    is_pad = torch.zeros(2, config.chunk_size, dtype=torch.bool)
    is_pad[:, -2:] = True  # the last two steps lie past the episode end
    noise, t = torch.zeros_like(batch.actions), torch.full((2,), 0.5)
    with torch.no_grad():
        masked = model(batch.inputs, batch.actions, batch.target_latents, batch.action_mask, noise=noise, t=t, action_is_pad=is_pad)
        unmasked = model(batch.inputs, batch.actions, batch.target_latents, batch.action_mask, noise=noise, t=t)
        _, velocity = model.predict(batch.inputs, flow.noisy_actions(batch.actions, noise, t), t)
    error = (velocity - flow.velocity_target(batch.actions, noise)).pow(2)[:, :, :7]  # 7 real action dims
    assert masked["action_loss"].item() == pytest.approx(error[:, :-2].mean().item(), rel=1e-5)
    assert unmasked["action_loss"].item() == pytest.approx(error.mean().item(), rel=1e-5)


def test_frame_weights_make_the_action_loss_a_weighted_mean_over_frames():
    model, config = small_model(), small_config()
    batch = make_batch(config, batch=3)
    noise, t = torch.zeros_like(batch.actions), torch.full((3,), 0.5)
    with torch.no_grad():
        plain = model(batch.inputs, batch.actions, batch.target_latents, batch.action_mask, noise=noise, t=t)
        ones = model(batch.inputs, batch.actions, batch.target_latents, batch.action_mask, noise=noise, t=t,
                     frame_weight=torch.ones(3))
        weights = torch.tensor([3.0, 1.0, 0.0])
        weighted = model(batch.inputs, batch.actions, batch.target_latents, batch.action_mask, noise=noise, t=t,
                         frame_weight=weights)
        _, velocity = model.predict(batch.inputs, flow.noisy_actions(batch.actions, noise, t), t)
    per_frame = (velocity - flow.velocity_target(batch.actions, noise)).pow(2)[:, :, :7].mean(dim=(1, 2))  # (3,)
    assert torch.equal(ones["action_loss"], plain["action_loss"])  # weights of 1 change nothing, to the bit
    assert weighted["action_loss"].item() == pytest.approx(((weights * per_frame).sum() / weights.sum()).item(), rel=1e-5)
    assert weighted["action_loss"].item() != pytest.approx(plain["action_loss"].item(), rel=1e-3)  # the weights count
    assert torch.equal(weighted["gen_loss"], plain["gen_loss"])  # L_gen is not weighted


def test_train_step_passes_the_batch_frame_weights_to_the_loss():
    config = small_config()
    batch = make_batch(config, batch=2)
    losses = {}
    for name, weight in (("plain", None), ("ones", torch.ones(2)), ("first only", torch.tensor([1.0, 0.0]))):
        torch.manual_seed(0)  # the same noise and times each run
        model = small_model()
        losses[name] = train_step(model, make_optimizer(model), TrainBatch(batch.inputs, batch.actions, batch.target_latents,
                                                                           batch.action_mask, frame_weight=weight))
    assert losses["ones"] == losses["plain"]
    assert losses["first only"]["action_loss"] != pytest.approx(losses["plain"]["action_loss"], rel=1e-3)
