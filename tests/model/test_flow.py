"""Flow matching: time sampling, Euler integration, and learning a toy 2-D distribution."""

import math

import pytest
import torch
from torch import nn

from model import flow
from model.config import FlowConfig

MODES = torch.tensor([[-1.5, 0.0], [1.5, 0.0]])  # a mixture of two tight Gaussians
MODE_STD = 0.1
TIME_WIDTH = 16


def test_time_sampling_follows_the_shifted_beta():
    config = FlowConfig()
    torch.manual_seed(0)
    t = flow.sample_time(20000, config)
    assert t.min() >= config.time_offset and t.max() <= config.time_offset + config.time_scale
    expected_mean = config.beta_alpha / (config.beta_alpha + config.beta_beta) * config.time_scale + config.time_offset
    assert abs(t.mean().item() - expected_mean) < 0.01


def test_euler_integrates_from_noise_at_t1_to_data_at_t0():
    noise = torch.randn(4, 3)
    times = []

    def constant_velocity(x, t):
        times.append(t[0].item())
        return torch.ones_like(x)

    out = flow.euler_sample(constant_velocity, noise, steps=10)
    torch.testing.assert_close(out, noise - 1.0)
    assert times == pytest.approx([1.0 - i / 10 for i in range(10)])


def test_noisy_actions_and_target_are_consistent():
    actions, noise, t = torch.randn(2, 5, 3), torch.randn(2, 5, 3), torch.tensor([0.0, 1.0])
    x_t = flow.noisy_actions(actions, noise, t)
    torch.testing.assert_close(x_t[0], actions[0])
    torch.testing.assert_close(x_t[1], noise[1])
    # Moving along the target velocity from the data reaches the noise at t = 1.
    torch.testing.assert_close(actions + flow.velocity_target(actions, noise), noise)


def test_time_embedding_shape_and_range():
    emb = flow.time_embedding(torch.tensor([0.0, 0.5, 1.0]), 32, 4e-3, 4.0)
    assert emb.shape == (3, 32) and emb.abs().max() <= 1
    torch.testing.assert_close(emb[0], torch.cat([torch.zeros(16), torch.ones(16)]))


class VelocityField(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 + TIME_WIDTH, 128), nn.SiLU(), nn.Linear(128, 128), nn.SiLU(), nn.Linear(128, 2))

    def forward(self, x, t):
        return self.net(torch.cat([x, flow.time_embedding(t, TIME_WIDTH, 4e-3, 4.0)], dim=-1))


def sample_data(n):
    return MODES[torch.randint(0, 2, (n,))] + MODE_STD * torch.randn(n, 2)


def fits_the_mixture(samples):
    """Most samples near a mode, and both modes used."""
    distance = torch.cdist(samples, MODES)  # (n, 2)
    nearest = distance.argmin(dim=1)
    near = distance.min(dim=1).values < 0.5
    share = nearest.float().mean().item()
    return near.float().mean().item() > 0.8 and 0.3 < share < 0.7


def test_flow_matching_learns_a_toy_distribution():
    torch.manual_seed(0)
    config = FlowConfig()
    model = VelocityField()
    sample = lambda: flow.euler_sample(model, torch.randn(2000, 2), config.denoise_steps)
    with torch.no_grad():
        assert not fits_the_mixture(sample()), "an untrained field must fail the check"

    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(400):
        data, noise = sample_data(256), torch.randn(256, 2)
        t = flow.sample_time(256, config)
        loss = (model(flow.noisy_actions(data, noise, t), t) - flow.velocity_target(data, noise)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    with torch.no_grad():
        samples = sample()
    assert fits_the_mixture(samples), f"samples spread: mean |x| {samples[:, 0].abs().mean():.2f}"
    assert math.isfinite(loss.item())


def test_guided_sampling_ends_on_the_target_where_its_weight_is_one():
    noise = torch.randn(1, 6, 2)
    target = torch.full((1, 6, 2), 0.5)
    weight = torch.tensor([[1.0, 1.0, 0.0, 0.0, 0.0, 0.0]])
    x = flow.euler_sample(lambda x, t: x, noise, steps=4, guide=(target, weight))  # velocity x: pulls toward 0
    torch.testing.assert_close(x[:, :2], target[:, :2])
    free = flow.euler_sample(lambda x, t: x, noise, steps=4)
    torch.testing.assert_close(x[:, 2:], free[:, 2:])  # the velocity reads no other step here


def test_committed_steps_are_a_prefix_of_every_length_up_to_the_maximum():
    torch.manual_seed(0)
    committed = flow.sample_committed(4000, 10, 3)  # (B, chunk)
    lengths = committed.sum(1)
    assert set(lengths.tolist()) == {0, 1, 2, 3}
    torch.testing.assert_close(committed, torch.arange(10)[None] < lengths[:, None])  # always the first d steps
    assert all(abs((lengths == d).float().mean().item() - 0.25) < 0.03 for d in range(4))  # uniform


def test_no_committed_steps_leave_the_random_stream_as_it_was():
    torch.manual_seed(0)
    assert not flow.sample_committed(8, 10, 0).any()
    after = torch.rand(1)
    torch.manual_seed(0)
    torch.testing.assert_close(after, torch.rand(1))
