"""Image range, mean/std normalisation and delta actions."""

import numpy as np
import pytest

from model.preprocess import (
    STD_EPS,
    DeltaActions,
    Normalizer,
    to_model_images,
    to_uint8_images,
)
from tests.model.helpers import STATE_KEYS, stats_for


def test_image_range_round_trip():
    frames = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    images = to_model_images(frames)
    assert images.shape == (2, 3, 8, 8) and images.min() >= -1 and images.max() <= 1
    assert (to_uint8_images(images) == frames).all()


def test_normalizer_uses_mean_and_std_plus_eps():
    stats = {"sim": {"action": {"mean": [1.0, 2.0], "std": [0.5, 0.0]}}}
    norm = Normalizer.from_stats(stats, "sim", "action", 2)
    x = np.array([2.0, 2.0], np.float32)
    np.testing.assert_allclose(norm.normalize(x), [(2 - 1) / (0.5 + STD_EPS), 0.0])
    np.testing.assert_allclose(norm.unnormalize(norm.normalize(x)), x, rtol=1e-6)


def test_normalizer_errors_name_the_problem():
    stats = stats_for(STATE_KEYS)
    with pytest.raises(ValueError, match="robot type 'arm'"):
        Normalizer.from_stats(stats, "arm", "action", 7)
    with pytest.raises(ValueError, match="7 dims, expected 6"):
        Normalizer.from_stats(stats, "sim", "action", 6)
    stats["sim"]["action"]["std"][0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        Normalizer.from_stats(stats, "sim", "action", 7)


def test_delta_actions_make_joints_relative_and_keep_grippers_absolute():
    delta = DeltaActions.by_name(STATE_KEYS, STATE_KEYS)
    assert delta.action_index.tolist() == list(range(6))
    state = np.arange(7, dtype=np.float32)
    actions = np.ones((3, 7), np.float32) * 10
    relative = delta.to_delta(actions, state)
    np.testing.assert_allclose(relative[:, :6], 10 - state[:6][None].repeat(3, 0))
    np.testing.assert_allclose(relative[:, 6], 10)
    np.testing.assert_allclose(delta.to_absolute(relative, state), actions)
    batch = delta.to_absolute(np.zeros((2, 3, 7), np.float32), np.stack([state, state + 1]))
    np.testing.assert_allclose(batch[1, :, 0], 1.0)


def test_delta_actions_need_matching_state_names():
    with pytest.raises(ValueError, match="joint_9.pos"):
        DeltaActions.by_name(["joint_9.pos"], STATE_KEYS)
