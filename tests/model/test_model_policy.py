"""InternVLAPolicy: the console's Policy call around the tiny model."""

import dataclasses

import numpy as np
import pytest
import torch

from model.checkpoint import save_checkpoint
from model.config import tiny
from model.internvla import build_model
from model.policy import FrameHistory, InternVLAPolicy
from robot_io.policy import Policy
from tests.model.helpers import CAMERAS, STATE_KEYS, stats_for

INSTRUCTION = "pick the red block and place it in the bin"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(tiny())


def make_policy(model, **kwargs):
    options = {"state_keys": STATE_KEYS, "action_keys": STATE_KEYS, "camera_keys": CAMERAS, "seed": 0}
    return InternVLAPolicy(model, stats_for(STATE_KEYS, std=0.5), **(options | kwargs))


def observation(seed=0, size=(224, 224), cameras=CAMERAS):
    rng = np.random.default_rng(seed)
    obs = {key: float(v) for key, v in zip(STATE_KEYS, rng.uniform(-1, 1, len(STATE_KEYS)))}
    return obs | {cam: rng.integers(0, 256, (*size, 3), dtype=np.uint8) for cam in cameras}


def test_infer_returns_finite_actions_foresight_and_timings(model):
    policy = make_policy(model)
    assert isinstance(policy, Policy)
    out = policy.infer(observation(), INSTRUCTION)
    assert out.actions.shape == (50, len(STATE_KEYS)) and out.actions.dtype == np.float32
    assert np.isfinite(out.actions).all()
    assert set(out.foresight) == set(CAMERAS) == set(out.foresight_latents)
    assert all(p.shape == (128, 128, 3) and p.dtype == np.uint8 for p in out.foresight.values())
    assert all(z.shape == (16, 16, 16) for z in out.foresight_latents.values())
    assert set(out.timings_ms) == {"prefix", "generation_decode", "denoise", "total"}
    assert all(v > 0 for v in out.timings_ms.values())


def test_deferred_pictures_decode_to_the_same_foresight(model):
    obs = observation()
    full = make_policy(model).infer(obs, INSTRUCTION)
    deferred = make_policy(model, defer_pictures=True)
    first = deferred.infer(obs, INSTRUCTION)
    assert first.pictures_pending and first.foresight is None
    np.testing.assert_array_equal(first.actions, full.actions)
    decoded = deferred.decode_foresight(first)
    assert not decoded.pictures_pending and decoded.timings_ms["decode"] > 0
    for camera in CAMERAS:
        assert np.abs(decoded.foresight[camera].astype(int) - full.foresight[camera].astype(int)).max() <= 1


def test_other_image_sizes_are_letterboxed_and_missing_cameras_masked(model):
    policy = make_policy(model)
    out = policy.infer(observation(size=(480, 640), cameras=["head", "wrist"]), INSTRUCTION)
    assert np.isfinite(out.actions).all()
    assert set(out.foresight) == {"head", "wrist"}


def test_same_seed_same_actions(model):
    obs = observation()
    first = make_policy(model).infer(obs, INSTRUCTION).actions
    np.testing.assert_array_equal(make_policy(model).infer(obs, INSTRUCTION).actions, first)


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda obs: ("", obs), "instruction is empty"),
        (lambda obs: ("   ", obs), "instruction is empty"),
        (lambda obs: (INSTRUCTION, obs | {"joint_2.pos": float("nan")}), r"NaN or infinite values at \['joint_2.pos'\]"),
        (lambda obs: (INSTRUCTION, {k: v for k, v in obs.items() if k != "gripper.pos"}), "lacks state keys"),
        (lambda obs: (INSTRUCTION, obs | {"head": obs["head"].astype(np.float32)}), "uint8"),
        (lambda obs: (INSTRUCTION, obs | {"wrist": [[0]]}), "'wrist' must be a uint8"),
    ],
)
def test_bad_input_is_rejected_clearly(model, break_it, message):
    instruction, obs = break_it(observation())
    with pytest.raises(ValueError, match=message):
        make_policy(model).infer(obs, instruction)


def test_bad_construction_is_rejected_clearly(model):
    with pytest.raises(ValueError, match="4 cameras"):
        make_policy(model, camera_keys=[*CAMERAS, "top"])
    with pytest.raises(ValueError, match="action_mode"):
        make_policy(model, action_mode="relative")
    with pytest.raises(ValueError, match="robot type 'arm'"):
        make_policy(model, robot_type="arm")


def test_delta_and_absolute_modes_unnormalise_the_chunk(model, monkeypatch):
    """With the network's output pinned to 0 (the normalised mean), actions are the mean, plus the
    current state on joints in delta mode."""
    stats = stats_for(STATE_KEYS, std=0.5)
    stats["sim"]["action"]["mean"] = [0.25] * len(STATE_KEYS)
    monkeypatch.setattr(model, "denoise", lambda state, layout, cache, noise, guide=None: torch.zeros_like(noise))
    obs = observation()
    state = np.array([obs[k] for k in STATE_KEYS], np.float32)
    options = {"state_keys": STATE_KEYS, "action_keys": STATE_KEYS, "camera_keys": CAMERAS, "seed": 0}
    delta = InternVLAPolicy(model, stats, action_mode="delta", **options).infer(obs, INSTRUCTION).actions
    absolute = InternVLAPolicy(model, stats, action_mode="absolute", **options).infer(obs, INSTRUCTION).actions
    np.testing.assert_allclose(absolute, 0.25)
    np.testing.assert_allclose(delta[:, :6], 0.25 + state[None, :6].repeat(50, 0), rtol=1e-6)
    np.testing.assert_allclose(delta[:, 6], 0.25)  # the gripper stays absolute


def test_non_finite_model_output_is_refused(model, monkeypatch):
    monkeypatch.setattr(model, "denoise", lambda state, layout, cache, noise, guide=None: torch.full_like(noise, float("nan")))
    with pytest.raises(RuntimeError, match="NaN"):
        make_policy(model).infer(observation(), INSTRUCTION)


def test_from_checkpoint_builds_the_same_policy(model, tmp_path):
    save_checkpoint(tmp_path, model, stats_for(STATE_KEYS, std=0.5))
    loaded = InternVLAPolicy.from_checkpoint(tmp_path, state_keys=STATE_KEYS, action_keys=STATE_KEYS, camera_keys=CAMERAS, seed=0)
    obs = observation()
    np.testing.assert_array_equal(loaded.infer(obs, INSTRUCTION).actions, make_policy(model).infer(obs, INSTRUCTION).actions)


def test_history_keeps_frame_t_minus_15():
    history = FrameHistory(steps=15)
    for tick in range(20):
        history.push({"head": tick})
        assert history.now["head"] == tick
        assert history.past["head"] == max(0, tick - 15)


def test_observe_then_infer_on_the_same_tick_records_one_frame(model):
    policy = make_policy(model)
    first = observation(seed=1)
    policy.observe(first)
    second = observation(seed=2)
    policy.observe(second)
    policy.infer(second, INSTRUCTION)
    assert policy.history.past["head"] is not policy.history.now["head"]
    assert (policy.history.past["head"] == first["head"]).all() and (policy.history.now["head"] == second["head"]).all()
    policy.reset()
    policy.infer(first, INSTRUCTION)
    assert policy.history.past is policy.history.now  # the first call uses frame t for both


def test_encode_foresight_frames_gives_latents_comparable_to_the_foresight(model):
    """The console's reckoning compares foresight latents with these: same shape, and the
    encoding the generation expert reads for frame t."""
    from model.preprocess import to_model_images
    from robot_io.images import letterbox

    policy = make_policy(model)
    obs = observation(size=(480, 640), cameras=["head", "wrist"])
    out = policy.infer(obs, INSTRUCTION)
    latents = policy.encode_foresight_frames({cam: obs[cam] for cam in ("head", "wrist")} | {"side": None})
    assert set(latents) == {"head", "wrist"}
    assert all(latents[cam].shape == out.foresight_latents[cam].shape for cam in latents)
    with torch.inference_mode():
        expected = model.encode_frames(to_model_images(letterbox(obs["head"], 224)[None, None])[:, :, None])[0, 0, 0]
    np.testing.assert_allclose(latents["head"], expected.numpy(), atol=1e-5)
    assert policy.encode_foresight_frames({}) == {}


def test_a_guided_chunk_keeps_the_committed_steps_and_continues_from_them(model):
    obs = observation()
    free = make_policy(model).infer(obs, INSTRUCTION).actions  # (50, A)
    plan = free[:10] + 0.3  # a running plan that disagrees with what the model would do now
    guided = make_policy(model).infer_guided(obs, INSTRUCTION, plan, committed=3).actions
    np.testing.assert_allclose(guided[:3], plan[:3], atol=1e-4)  # frozen
    assert not np.allclose(guided[3:], free[3:], atol=1e-3)  # the rest is denoised beside them
    unguided = make_policy(model).infer_guided(obs, INSTRUCTION, plan, committed=0).actions
    np.testing.assert_array_equal(unguided, free)
    with pytest.raises(ValueError, match="guide plan must be finite"):
        make_policy(model).infer_guided(obs, INSTRUCTION, plan[:, :2], committed=3)


def test_a_model_trained_with_committed_steps_is_given_no_more_than_it_learned(model):
    obs = observation()
    conditioned = build_model(tiny())
    conditioned.load_state_dict(model.state_dict())
    conditioned.config.flow = dataclasses.replace(conditioned.config.flow, max_committed_steps=2)
    free = make_policy(conditioned).infer(obs, INSTRUCTION).actions  # (50, A)
    plan = free[:10] + 0.3
    kept = make_policy(conditioned).infer_guided(obs, INSTRUCTION, plan, committed=5).actions
    np.testing.assert_allclose(kept[:2], plan[:2], atol=1e-5)  # the 2 it was trained with
    assert np.abs(kept[2:5] - plan[2:5]).max() > 1e-2  # the others are its own
