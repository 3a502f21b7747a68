"""Tokenizer training on a tiny recorded dataset (3 cameras of 64x64 moving squares): PSNR rises above the
untrained autoencoder's, the weights load into the model's tokenizer, resuming is exact, bad input is named.

Small on purpose (2 shared CPU cores): 2 episodes of 8 frames, a few dozen steps at batch 4.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from model.config import tiny
from model.internvla import InternVLA, build_model
from model.preprocess import to_model_images
from robot_io.images import letterbox
from model.tokenizer import CONV_WEIGHTS_FILE, ConvAutoencoder, load_conv_weights
from model.train_tokenizer import (
    METRICS_FILE,
    STATE_FILE,
    TokenizerTrainConfig,
    main,
    tokenizer_input,
    train,
)
from robot_io.datasets.recorder import EpisodeRecorder

CAMERAS = ("head", "wrist", "side")
SIZE = 64
FRAMES = 8
EPISODES = 2  # one to train on, one held out


def picture(episode: int, t: int, cam: int) -> np.ndarray:
    """A coloured square moving over a per-camera background."""
    image = np.empty((SIZE, SIZE, 3), np.uint8)
    image[:] = (40 + 60 * cam, 90, 160 - 40 * cam)
    x, y = 4 + 5 * t + 3 * episode, 10 + 12 * cam
    image[y : y + 16, x : x + 16] = (230, 40 + 50 * episode, 30)
    return image


def record(root: Path, cameras: tuple[str, ...]) -> Path:
    recorder = EpisodeRecorder(root, fps=15, observation_features={"j.pos": float, **{c: (SIZE, SIZE, 3) for c in cameras}},
                               action_features={"j.pos": float})
    for episode in range(EPISODES):
        recorder.start_episode("pick up the red block")
        for t in range(FRAMES):
            observation = {"j.pos": 0.1 * t, **{c: picture(episode, t, i) for i, c in enumerate(cameras)}}
            recorder.add_frame(observation, {"j.pos": 0.1 * t}, intervention=False, source="policy")
        recorder.save_episode()
    recorder.finalize()
    return root


def config(dataset: Path, out: Path, steps: int, max_frames: int = 16, eval_frames: int = 4) -> TokenizerTrainConfig:
    return TokenizerTrainConfig(
        datasets=(dataset,), out=out, steps=steps, batch_size=4, max_frames=max_frames, eval_frames=eval_frames, save_every=1, lr=3e-3,
    )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return record(tmp_path_factory.mktemp("data") / "squares", CAMERAS)


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("tokenizer")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before conftest's per-test setting
    try:
        return out, train(config(dataset, out, steps=40))
    finally:
        torch.set_num_threads(threads)


def test_training_raises_psnr_on_held_out_frames(trained):
    out, metrics = trained
    assert json.loads((out / METRICS_FILE).read_text()) == metrics
    assert set(metrics["psnr_db"]) == set(CAMERAS)
    assert metrics["held_out_episodes"] == {str(metrics["datasets"][0]): EPISODES - 1}
    assert metrics["train_frames"] == len(CAMERAS) * (EPISODES - 1) * FRAMES
    for camera in CAMERAS:
        assert metrics["psnr_db"][camera] > metrics["psnr_db_untrained"][camera] + 1.0, camera


def test_saved_weights_load_as_the_models_tokenizer(trained):
    out, _ = trained
    trained_state = torch.load(out / STATE_FILE, weights_only=True)["tokenizer"]
    saved = load_file(str(out / CONV_WEIGHTS_FILE))
    assert saved.keys() == trained_state.keys()

    model = build_model(tiny(), tokenizer_folder=out)  # the path model.train --tokenizer OUT takes
    for key, value in model.cosmos.state_dict().items():
        assert torch.equal(value, trained_state[key]), key
    torch.manual_seed(1)
    fresh = InternVLA(tiny())
    load_conv_weights(fresh.cosmos, out)
    assert all(torch.equal(v, trained_state[k]) for k, v in fresh.cosmos.state_dict().items())


def test_frames_are_prepared_as_the_model_prepares_them(trained):
    out, _ = trained
    model = build_model(tiny(), tokenizer_folder=out)
    frame = picture(0, 3, 1)
    image = tokenizer_input(frame, model.config)
    fs = model.config.foresight
    assert image.shape == (3, fs.image_size, fs.image_size) and image.abs().max() <= 1
    with torch.no_grad():
        latents = model.cosmos.encode(image[None])
        through_model = model.encode_frames(to_model_images(letterbox(frame, model.config.image_size))[None, None, None])
    assert latents.shape == (1, 16, fs.image_size // 8, fs.image_size // 8)
    torch.testing.assert_close(through_model[0, 0, 0], latents[0])


def test_resuming_continues_the_same_run(dataset, tmp_path):
    def run(name: str, steps: int) -> dict:
        return train(config(dataset, tmp_path / name, steps, max_frames=4, eval_frames=2))

    straight = run("straight", steps=2)
    run("resumed", steps=1)
    resumed = run("resumed", steps=2)
    assert torch.load(tmp_path / "resumed" / STATE_FILE, weights_only=True)["step"] == 2
    assert resumed["psnr_db"] == straight["psnr_db"]
    a, b = (load_file(str(tmp_path / name / CONV_WEIGHTS_FILE)) for name in ("straight", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_dataset_without_cameras_is_refused_by_name(tmp_path, capsys):
    no_cameras = record(tmp_path / "no_cameras", cameras=())
    with pytest.raises(ValueError, match="no camera features"):
        train(config(no_cameras, tmp_path / "out", steps=2))
    assert main(["--dataset", str(no_cameras), "--out", str(tmp_path / "out")]) == 2
    assert "no camera features" in capsys.readouterr().err


def test_config_is_checked():
    with pytest.raises(ValueError, match="at least one dataset"):
        TokenizerTrainConfig(datasets=(), out=Path("out"))
    with pytest.raises(ValueError, match="steps must be > 0"):
        TokenizerTrainConfig(datasets=(Path("d"),), out=Path("out"), steps=0)
    with pytest.raises(ValueError, match="only our 'conv' autoencoder"):
        TokenizerTrainConfig(datasets=(Path("d"),), out=Path("out"), preset="a1-3b")


def test_weights_that_do_not_fit_are_named(trained, tmp_path):
    out, _ = trained
    with pytest.raises(ValueError, match=f"{CONV_WEIGHTS_FILE} does not fit"):
        load_conv_weights(ConvAutoencoder(channels=(8, 8, 8)), out)
    with pytest.raises(FileNotFoundError, match="model.train_tokenizer"):
        load_conv_weights(ConvAutoencoder(), tmp_path)
