"""model.train / model.train_data on a tiny synthetic LeRobot dataset recorded with EpisodeRecorder."""

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from model.checkpoint import KEY_PREFIX, TOKENIZER_PREFIX, load_checkpoint
from model.config import tiny
from model.policy import InternVLAPolicy
from model.tokenizer import ConvAutoencoder
from model.train import PROGRESS_FILE, TrainConfig, learning_rate, main
from model.train_data import (
    DatasetError,
    TrainingData,
    build_cache,
    check_dataset,
    compute_stats,
    open_dataset,
    open_metadata,
    read_dataset,
    target_frames,
)
from model.train_step import make_optimizer, train_step, trainable_parameters
from robot_io.datasets.recorder import EpisodeRecorder
from robot_io.datasets.schema import OUTCOME_KEY
from tests.model.helpers import CAMERAS, STATE_KEYS, small_config, small_model
from tests.model.test_frame_weights import CALIBRATION
from tests.robot_io.datasets.older_schema import CONTEXT_KEYS, older_schema

EPISODES = [("pick the red block", 20), ("pick the blue block", 12)]  # (task, frames)
SIZE = 32  # the video encoder's smallest side


def record(root, action_keys=STATE_KEYS, episodes=EPISODES, takeovers=(), context=None, outcomes=()):
    """Joints drift per frame, actions lead the state a little; every frame a different picture.
    takeovers: per episode, the frame from which the operator drives (None: the policy throughout).
    outcomes: per episode, how it ended (default "unknown").
    context(episode, frame): add_frame's context keywords (segment, foresight_psnr_db, surprise_score)."""
    rng = np.random.default_rng(0)
    features = {key: float for key in STATE_KEYS}
    cameras = {cam: (SIZE, SIZE, 3) for cam in CAMERAS}
    recorder = EpisodeRecorder(root, 15, features | cameras, {key: float for key in action_keys})
    for e, (task, frames) in enumerate(episodes):
        takeover = takeovers[e] if e < len(takeovers) else None
        recorder.start_episode(task)
        for i in range(frames):
            operator = takeover is not None and i >= takeover
            state = rng.normal(size=len(STATE_KEYS)) * 0.1 + i * 0.05
            images = {cam: rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for cam in cameras}
            action = {key: state[i % len(state)] + 0.02 for i, key in enumerate(action_keys)}
            recorder.add_frame(dict(zip(STATE_KEYS, state)) | images, action, intervention=operator,
                               source="operator" if operator else "policy", **(context(e, i) if context else {}))
        recorder.save_episode(outcomes[e] if e < len(outcomes) else "unknown")
    recorder.finalize()
    return root


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    return record(tmp_path_factory.mktemp("data") / "demos")


@pytest.fixture(scope="module")
def trained(dataset_dir, tmp_path_factory):
    """A 2-step run, checkpointing every step; returns its --out folder."""
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(cli(dataset_dir, out, steps=2)) == 0
    return out


def cli(dataset, out, steps):
    return ["--preset", "tiny", "--dataset", str(dataset), "--out", str(out), "--steps", str(steps),
            "--batch-size", "2", "--save-every", "1", "--device", "cpu", "--threads", "1"]


def history(folder):
    return torch.load(folder / "training_state.pt", weights_only=False)["history"]


def test_stats_have_the_released_layout_and_match_numpy(dataset_dir):
    dataset = open_dataset(dataset_dir)
    info = check_dataset(dataset.meta, small_config(), CAMERAS)
    arrays = read_dataset(dataset)
    stats = compute_stats(arrays, info, chunk=6)
    assert list(stats) == ["conveyor_sim"]
    assert set(stats["conveyor_sim"]) == {"observation.state", "action"}

    # Direct computation: every real step k of every chunk from t, joints minus state t, gripper absolute.
    state, action = arrays.state, arrays.action
    deltas, start = [], 0
    for _, frames in EPISODES:
        for t in range(start, start + frames):
            for k in range(t, min(t + 6, start + frames)):
                deltas.append(np.concatenate([action[k, :6] - state[t, :6], action[k, 6:]]))
        start += frames
    deltas = np.array(deltas, dtype=np.float64)
    entry = stats["conveyor_sim"]
    np.testing.assert_allclose(entry["action"]["mean"], deltas.mean(0), atol=1e-6)
    np.testing.assert_allclose(entry["action"]["std"], deltas.std(0), atol=1e-6)
    np.testing.assert_allclose(entry["observation.state"]["mean"], state.mean(0), atol=1e-6)
    np.testing.assert_allclose(entry["observation.state"]["std"], state.std(0), atol=1e-6)


@pytest.fixture(scope="module")
def small_data(dataset_dir, tmp_path_factory):
    dataset = open_dataset(dataset_dir)
    model, config = small_model(), small_config()
    info = check_dataset(dataset.meta, config, CAMERAS)
    arrays = read_dataset(dataset)
    stats = compute_stats(arrays, info, config.chunk_size)
    cache = build_cache(dataset, info, model, tmp_path_factory.mktemp("cache"))
    return model, TrainingData(info, arrays, cache, stats, config), stats, dataset


def test_batches_are_built_like_the_policy_inputs(small_data):
    model, data, stats, dataset = small_data
    config = model.config
    policy = InternVLAPolicy(model, stats, state_keys=STATE_KEYS, action_keys=STATE_KEYS, camera_keys=CAMERAS)
    frames = np.array([3, 25])  # episode 0 is frames [0, 20), episode 1 is [20, 32)
    batch = data.batch(frames)
    x = batch.inputs

    # frame t-15 clamped at the episode start, t+15 at its end
    latents = torch.from_numpy(np.array(data.cache.latents)).float()
    torch.testing.assert_close(x.history_latents[:, :, 0], latents[[0, 20]])
    torch.testing.assert_close(x.history_latents[:, :, 1], latents[[3, 25]])
    torch.testing.assert_close(batch.target_latents, latents[[18, 31]])
    # frame t as LeRobot reads it, letterboxed by the policy; its latent is the model's encoding of it
    item = dataset[3]
    raw = {cam: (item[f"observation.images.{cam}"] * 255).round().byte().permute(1, 2, 0).numpy() for cam in CAMERAS}
    letterboxed = policy._frames(raw)
    np.testing.assert_array_equal(np.stack([letterboxed[cam] for cam in CAMERAS]), data.cache.frames[3])
    policy_images, policy_history, mask = policy._camera_tensors(letterboxed, letterboxed)
    torch.testing.assert_close(x.images[:1], policy_images)
    torch.testing.assert_close(latents[3][None], model.encode_frames(policy_history[:, :, 1:])[:, :, 0], atol=1e-2, rtol=1e-2)
    assert x.camera_mask.all() and mask.all()

    state = data.arrays.state[frames]
    torch.testing.assert_close(x.state[1:], policy._model_state(state[1]))
    tokens, text_mask = policy.text_tokenizer(["pick the red block", "pick the blue block"])
    assert torch.equal(x.text_tokens, tokens) and torch.equal(x.text_mask, text_mask)
    assert batch.action_mask[:, :7].all() and not batch.action_mask[:, 7:].any()

    # the policy turns the target chunk back into the dataset's absolute actions; past the end it holds the last
    for row, (t, end) in enumerate([(3, 20), (25, 32)]):
        absolute = policy._unnormalize(batch.actions[row, :, :7].numpy(), state[row])
        expected = data.arrays.action[np.minimum(np.arange(t, t + config.chunk_size), end - 1)]
        np.testing.assert_allclose(absolute, expected, atol=1e-5)


def test_chunk_steps_past_the_episode_end_are_flagged_as_padding(small_data):
    _, data, _, _ = small_data
    batch = data.batch(np.array([10, 17]))  # episode 0 ends at frame 20; chunks of 6
    assert batch.action_is_pad.tolist() == [[False] * 6, [False] * 3 + [True] * 3]


def test_learning_rate_warms_up_then_decays_to_a_tenth():
    rates = [learning_rate(step, 1e-3, warmup=10, total=110) for step in range(110)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))  # never rises after the warmup
    assert learning_rate(110, 1e-3, warmup=10, total=110) == pytest.approx(1e-4)


def test_steps_on_a_fixed_dataset_batch_reduce_the_loss(small_data):
    data = small_data[1]
    model = small_model(seed=1)  # a fresh model: the shared one stays untouched
    optimizer = make_optimizer(model)
    for group in optimizer.param_groups:
        group["lr"] = 3e-3  # the toy model needs a larger step than the real 5e-5 to move within a test
    batch = data.batch(np.arange(0, 32, 4))
    fixed = {"noise": torch.zeros_like(batch.actions), "t": torch.full((8,), 0.5)}
    before = model(batch.inputs, batch.actions, batch.target_latents, batch.action_mask, **fixed)["loss"].item()
    torch.manual_seed(0)
    for _ in range(25):
        train_step(model, optimizer, batch)
    after = model(batch.inputs, batch.actions, batch.target_latents, batch.action_mask, **fixed)["loss"].item()
    assert after < 0.7 * before


def test_cli_trains_saves_and_the_policy_serves_the_checkpoint(trained):
    steps = sorted(p.name for p in (trained / "checkpoints").iterdir())
    assert steps == ["step_0000001", "step_0000002"]
    last = trained / "checkpoints" / "step_0000002"
    assert {"model.safetensors", "config.json", "stats.json", "train_config.json"} <= {p.name for p in last.iterdir()}
    losses = history(last)
    assert [h["step"] for h in losses] == [1, 2]
    assert all(np.isfinite(h[k]) for h in losses for k in ("loss", "action_loss", "gen_loss"))
    assert "plotly" in (trained / "loss_curves.html").read_text()[:5000].lower()
    assert json.loads((trained / "stats.json").read_text()) == json.loads((last / "stats.json").read_text())
    assert json.loads((last / "config.json").read_text())["gen_loss_weight"] == 0.01
    progress = [json.loads(line) for line in (trained / PROGRESS_FILE).read_text().splitlines()]
    assert progress == [  # as it happened: each step, then its checkpoint
        {**losses[0], "steps": 2}, {"step": 1, "checkpoint": str(trained / "checkpoints" / "step_0000001")},
        {**losses[1], "steps": 2}, {"step": 2, "checkpoint": str(last)},
    ]

    policy = InternVLAPolicy.from_checkpoint(
        last, state_keys=STATE_KEYS, action_keys=STATE_KEYS, camera_keys=CAMERAS, robot_type="conveyor_sim", seed=0
    )
    rng = np.random.default_rng(0)
    observation = {key: 0.1 for key in STATE_KEYS} | {cam: rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for cam in CAMERAS}
    out = policy.infer(observation, "pick the red block")
    assert out.actions.shape == (50, len(STATE_KEYS)) and np.isfinite(out.actions).all()


def test_rerun_resumes_and_matches_an_uninterrupted_run(trained, dataset_dir, tmp_path):
    resumed = tmp_path / "resumed"
    shutil.copytree(trained, resumed)
    shutil.rmtree(resumed / "checkpoints" / "step_0000002")  # interrupted after step 1
    cache_written = (resumed / "cache" / "meta.json").stat().st_mtime_ns
    assert main(cli(dataset_dir, resumed, steps=3)) == 0
    assert (resumed / "cache" / "meta.json").stat().st_mtime_ns == cache_written  # latents not re-encoded
    resumed_losses = history(resumed / "checkpoints" / "step_0000003")
    assert [h["step"] for h in resumed_losses] == [1, 2, 3]

    straight = tmp_path / "straight"
    assert main(cli(dataset_dir, straight, steps=3)) == 0
    straight_losses = history(straight / "checkpoints" / "step_0000003")
    for a, b in zip(resumed_losses, straight_losses):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)


def break_cameras(dataset_dir, tmp_path):
    root = shutil.copytree(dataset_dir, tmp_path / "bad")
    info = json.loads((root / "meta" / "info.json").read_text())
    del info["features"]["observation.images.side"]  # what a dataset recorded without it declares
    (root / "meta" / "info.json").write_text(json.dumps(info))
    return root


def wide_actions(dataset_dir, tmp_path):
    return record(tmp_path / "bad", action_keys=[f"motor_{i}" for i in range(40)], episodes=[("pick", 3)])


def break_tasks(dataset_dir, tmp_path):
    root = shutil.copytree(dataset_dir, tmp_path / "bad")
    tasks = pd.read_parquet(root / "meta" / "tasks.parquet")
    tasks.iloc[:0].to_parquet(root / "meta" / "tasks.parquet")
    return root


@pytest.mark.parametrize(
    "break_it, message",
    [
        (break_cameras, r"missing cameras \['side'\]"),
        (wide_actions, "action dimension 40 exceeds the model's max_action_dim 32"),
        (break_tasks, "no tasks"),
    ],
)
def test_bad_datasets_fail_before_the_first_step(dataset_dir, tmp_path, capsys, break_it, message):
    bad = break_it(dataset_dir, tmp_path)
    out = tmp_path / "run"
    assert main(cli(bad, out, steps=1)) == 2
    err = capsys.readouterr().err
    assert "error: cannot train on" in err
    assert re.search(message, err), err
    assert not out.exists()  # no cache, no checkpoint


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda stats: {"other_robot": stats["conveyor_sim"]}, r"robot type mismatch: the dataset is 'conveyor_sim'.*'other_robot'"),
        (lambda stats: {"conveyor_sim": stats["conveyor_sim"] | {"action": {"mean": [0.0] * 6, "std": [1.0] * 6}}},
         r"action dimension 7 differs from the checkpoint's stats \(6\)"),
    ],
)
def test_resuming_on_a_dataset_that_does_not_fit_the_checkpoint_is_refused(trained, dataset_dir, tmp_path, capsys, edit, message):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    stats_file = run / "checkpoints" / "step_0000002" / "stats.json"
    stats_file.write_text(json.dumps(edit(json.loads(stats_file.read_text()))))
    assert main(cli(dataset_dir, run, steps=3)) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (run / "checkpoints" / "step_0000003").exists()


def test_train_config_is_checked(tmp_path):
    with pytest.raises(ValueError, match="steps must be >= 1"):
        TrainConfig(dataset=tmp_path, out=tmp_path, steps=0)
    with pytest.raises(ValueError, match="unknown preset"):
        TrainConfig(dataset=tmp_path, out=tmp_path, preset="huge")
    with pytest.raises(ValueError, match="gen_loss_weight"):
        TrainConfig(dataset=tmp_path, out=tmp_path, gen_loss_weight=-1)
    with pytest.raises(ValueError, match="tokenizer folder"):
        TrainConfig(dataset=tmp_path, out=tmp_path, tokenizer=tmp_path / "missing")
    with pytest.raises(ValueError, match="max_committed_steps must be a whole number >= 0"):
        TrainConfig(dataset=tmp_path, out=tmp_path, max_committed_steps=-2)


def test_a_run_trained_blind_to_the_generation_tokens_keeps_it_in_its_checkpoint(dataset_dir, tmp_path, capsys):
    out = tmp_path / "blind"
    args = [*cli(dataset_dir, out, steps=1), "--mask-generation"]
    assert main(args) == 0
    assert json.loads((out / "checkpoints" / "step_0000001" / "config.json").read_text())["action_reads_generation"] is False
    assert main(args[:-1]) == 2  # resuming it reading the generation tokens is another run
    assert "mask_generation: checkpoint True, now False" in capsys.readouterr().err


def test_a_trained_tokenizer_folder_encodes_the_latents(dataset_dir, tmp_path):
    torch.manual_seed(3)
    trained_tokenizer = ConvAutoencoder(16, tiny().foresight.conv_channels)
    save_file(trained_tokenizer.state_dict(), str(tmp_path / "tokenizer.safetensors"))
    out = tmp_path / "run"
    assert main([*cli(dataset_dir, out, steps=1), "--tokenizer", str(tmp_path)]) == 0
    weights = load_file(str(out / "checkpoints" / "step_0000001" / "model.safetensors"))
    for name, tensor in trained_tokenizer.state_dict().items():
        assert torch.equal(weights[f"model.cosmos.{name}"], tensor)


def test_a_run_from_scratch_takes_the_tokenizer_of_a_checkpoint(trained, dataset_dir, tmp_path, capsys):
    source = trained / "checkpoints" / "step_0000002"
    tokenizer = {k: v for k, v in load_file(str(source / "model.safetensors")).items() if k.startswith("model.cosmos.")}
    out = tmp_path / "run"
    assert main([*cli(dataset_dir, out, steps=1), "--seed", "5", "--tokenizer", str(source)]) == 0
    weights = load_file(str(out / "checkpoints" / "step_0000001" / "model.safetensors"))
    assert tokenizer and all(torch.equal(weights[k], v) for k, v in tokenizer.items())
    no_tokenizer = tmp_path / "broken"
    no_tokenizer.mkdir()
    save_file({"model.state_proj.weight": torch.zeros(2, 2)}, str(no_tokenizer / "model.safetensors"))
    assert main([*cli(dataset_dir, tmp_path / "run2", steps=1), "--tokenizer", str(no_tokenizer)]) == 2
    assert "holds no image tokenizer weights (model.cosmos.*)" in capsys.readouterr().err


def test_fine_tuning_starts_from_the_checkpoint_keeps_its_stats_and_mixes_the_base_data(trained, dataset_dir, tmp_path):
    base = trained / "checkpoints" / "step_0000002"
    corrections = record(tmp_path / "corrections", episodes=[("pick the red block", 10)])
    out = tmp_path / "finetune"
    args = cli(corrections, out, steps=3) + ["--init-from", str(base), "--mix", str(dataset_dir), "--mix-fraction", "0.5"]
    assert main(args) == 0
    # The base model's normalisation is kept, not recomputed from the (different) new data.
    assert json.loads((out / "stats.json").read_text()) == json.loads((base / "stats.json").read_text())
    # Its first step starts from the base weights, with a fresh optimizer (step counter 1).
    state = torch.load(out / "checkpoints" / "step_0000001" / "training_state.pt", weights_only=False)
    assert state["step"] == 1 and all(s["step"] == 1 for s in state["optimizer"]["state"].values())
    base_weights = load_file(base / "model.safetensors")
    tuned = load_file(out / "checkpoints" / "step_0000003" / "model.safetensors")
    assert base_weights.keys() == tuned.keys()
    changed = [k for k in base_weights if not torch.equal(base_weights[k], tuned[k])]
    assert not any(k.startswith("model.cosmos.") for k in changed)  # the tokenizer stays frozen
    # Everything else trained further, but for the understanding expert's last-layer outputs,
    # which no later block reads (only that layer's keys/values are), so they get no gradient.
    unchanged = [k for k in base_weights if k not in changed and not k.startswith("model.cosmos.")]
    assert changed and all(".und_expert." in k for k in unchanged), unchanged
    assert (out / "cache_mix" / "meta.json").is_file()  # the base demonstrations were mixed in
    # Rerunning the same command resumes; another --mix-fraction is refused.
    assert main(args) == 0
    assert main(args[:-1] + ["0.9"]) == 2


def test_training_on_with_committed_steps_keeps_them_in_the_checkpoint_and_later_runs_inherit_them(trained, dataset_dir, tmp_path, capsys):
    base = trained / "checkpoints" / "step_0000002"
    conditioned = tmp_path / "conditioned"
    args = [*cli(dataset_dir, conditioned, steps=1), "--init-from", str(base), "--max-committed-steps", "4"]
    assert main(args) == 0
    step = conditioned / "checkpoints" / "step_0000001"
    assert json.loads((step / "config.json").read_text())["flow"]["max_committed_steps"] == 4
    assert json.loads((base / "config.json").read_text())["flow"]["max_committed_steps"] == 0
    assert main(args[:-1] + ["2"]) == 2  # resuming with another maximum is another run
    assert "max_committed_steps: checkpoint 4, now 2" in capsys.readouterr().err
    later = tmp_path / "later"  # a run started from it, not naming the flag, keeps its conditioning
    assert main([*cli(dataset_dir, later, steps=1), "--init-from", str(step)]) == 0
    assert json.loads((later / "checkpoints" / "step_0000001" / "config.json").read_text())["flow"]["max_committed_steps"] == 4


def test_fine_tuning_refuses_a_dataset_of_another_robot(trained, tmp_path, capsys):
    base = trained / "checkpoints" / "step_0000002"
    other = record(tmp_path / "other", action_keys=["a.pos", "b.pos"], episodes=[("pick", 6)])
    assert main(cli(other, tmp_path / "out", steps=1) + ["--init-from", str(base)]) == 2
    assert "differs from the checkpoint's stats" in capsys.readouterr().err


def test_finetune_command_writes_the_dataset_stats_and_a_loadable_checkpoint(trained, dataset_dir, tmp_path, capsys):
    from model.finetune import main as finetune

    base = trained / "checkpoints" / "step_0000002"
    corrections = record(tmp_path / "corrections", episodes=[("pick the blue block", 8)])
    out = tmp_path / "tuned"
    assert finetune(["--dataset", str(corrections), "--checkpoint", str(base), "--base-dataset", str(dataset_dir),
                     "--out", str(out), "--steps", "2", "--batch-size", "2", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    stats = json.loads((corrections / "stats.json").read_text())
    assert list(stats) == ["conveyor_sim"] and set(stats["conveyor_sim"]) == {"observation.state", "action"}
    assert len(stats["conveyor_sim"]["action"]["mean"]) == len(STATE_KEYS)
    folder = out / "checkpoints" / "step_0000002"
    assert f"fine-tuned checkpoint: {folder}" in printed
    model, tuned_stats = load_checkpoint(folder)
    assert model.config.name == "tiny" and tuned_stats == json.loads((base / "stats.json").read_text())
    with pytest.raises(SystemExit):  # no checkpoint there: refused before any work
        finetune(["--dataset", str(corrections), "--checkpoint", str(tmp_path / "none")])


def test_episode_start_frames_and_their_share_of_batches(small_data, dataset_dir, tmp_path, monkeypatch):
    _, data, _, _ = small_data
    np.testing.assert_array_equal(data.start_frame_indices(3), [0, 1, 2, 20, 21, 22])  # episodes of 20 and 12 frames
    batches = []
    original = TrainingData.batch
    monkeypatch.setattr(TrainingData, "batch", lambda self, frames, device="cpu": batches.append(list(frames)) or original(self, frames, device))
    out = tmp_path / "starts"
    assert main(cli(dataset_dir, out, steps=2) + ["--start-frames", "3", "--start-share", "0.5"]) == 0
    assert len(batches) == 2 and all(frames[0] in (0, 1, 2, 20, 21, 22) for frames in batches)  # batch 2: one start frame
    assert main(cli(dataset_dir, out, steps=2) + ["--start-frames", "3", "--start-share", "0.25"]) == 2  # another run
    with pytest.raises(SystemExit):
        main(cli(dataset_dir, tmp_path / "bad", steps=1) + ["--start-share", "0.5"])  # share without frames


def test_learning_from_the_operator_takes_only_takeover_frames_with_their_real_history(tmp_path, monkeypatch, capsys):
    # DAgger attempts: the operator took over episode 0 at frame 12; the policy finished episode 1 alone.
    attempts = record(tmp_path / "attempts", takeovers=(12, None))
    dataset = open_dataset(attempts)
    model, config = small_model(), small_config()
    info = check_dataset(dataset.meta, config, CAMERAS, learn_from="operator")
    arrays = read_dataset(dataset)
    np.testing.assert_array_equal(target_frames(arrays, "all"), np.arange(32))
    stats = compute_stats(arrays, info, config.chunk_size, target_frames(arrays, "operator"))
    data = TrainingData(info, arrays, build_cache(dataset, info, model, tmp_path / "cache"), stats, config, "operator")
    np.testing.assert_array_equal(data.targets, np.arange(12, 20))
    np.testing.assert_array_equal(data.start_frame_indices(3), [12, 13, 14])  # the first corrected frames
    # The first corrected frame sees the policy's frame 0 as its history (t-15 clamped at the
    # episode start, not at the takeover); its chunk is the operator's actions to the episode end.
    batch = data.batch(np.array([12]))
    history = torch.from_numpy(np.asarray(data.cache.latents[[0, 12]])).float()  # (2, K, C, h, w)
    torch.testing.assert_close(batch.inputs.history_latents[0, : len(CAMERAS)], history.transpose(0, 1))
    assert batch.action_is_pad[0, : 20 - 12].logical_not().all() and batch.action_is_pad[0, 20 - 12 :].all()

    # Training draws every batch from the operator's frames only.
    batches = []
    original = TrainingData.batch
    monkeypatch.setattr(TrainingData, "batch", lambda self, frames, device="cpu": batches.append(list(frames)) or original(self, frames, device))
    assert main(cli(attempts, tmp_path / "run", steps=3) + ["--learn-from", "operator", "--start-frames", "2", "--start-share", "0.5"]) == 0
    assert len(batches) == 3 and all(12 <= f < 20 for frames in batches for f in frames)
    assert all(frames[0] in (12, 13) for frames in batches)  # the start share: the takeover's first frames

    # A dataset the operator never drove, or one without the actor column, is refused before any work.
    alone = record(tmp_path / "alone", episodes=[("pick the red block", 8)])
    assert main(cli(alone, tmp_path / "run_alone", steps=1) + ["--learn-from", "operator"]) == 2
    assert "no frame of the dataset was driven by the operator" in capsys.readouterr().err
    meta = open_metadata(attempts)
    del meta.info.features["actor"]  # as in a dataset recorded by another tool
    with pytest.raises(DatasetError, match="needs the 'actor' column"):
        check_dataset(meta, config, CAMERAS, learn_from="operator")


def test_learning_from_successes_takes_only_the_episodes_the_policy_won_alone(tmp_path, monkeypatch, capsys):
    # Attempts recorded without an operator, and one the operator took over: episode 0 (frames 0-9)
    # a success alone, 1 (10-17) a success after a takeover at its frame 3, 2 (18-25) a failure alone.
    episodes = [("pick the red block", 10), ("pick the blue block", 8), ("pick the red block", 8)]
    attempts = record(tmp_path / "attempts", episodes=episodes, takeovers=(None, 3, None),
                      outcomes=("success", "success", "failure"))
    arrays = read_dataset(open_dataset(attempts))
    np.testing.assert_array_equal(target_frames(arrays, "successes"), np.arange(10))
    batches = []
    original = TrainingData.batch
    monkeypatch.setattr(TrainingData, "batch", lambda self, frames, device="cpu": batches.append(list(frames)) or original(self, frames, device))
    assert main(cli(attempts, tmp_path / "run", steps=3) + ["--learn-from", "successes"]) == 0
    assert len(batches) == 3 and all(0 <= f < 10 for frames in batches for f in frames)

    # Nothing won alone, or no outcome column: refused before any work, naming why.
    lost = record(tmp_path / "lost", episodes=episodes[:2], takeovers=(None, 3), outcomes=("failure", "success"))
    assert main(cli(lost, tmp_path / "run_lost", steps=1) + ["--learn-from", "successes"]) == 2
    assert "no episode of the dataset ended in success with the policy alone" in capsys.readouterr().err
    meta = open_metadata(attempts)
    del meta.info.features[OUTCOME_KEY]  # as in a dataset recorded by another tool
    with pytest.raises(DatasetError, match=f"needs the '{OUTCOME_KEY}' column"):
        check_dataset(meta, small_config(), CAMERAS, learn_from="successes")


# --- weighting frames by their recorded context (model/frame_weights.py) ----------------------------
def correction_context(episode, frame):
    """Episode 0: a judged foresight that raised the alarm at frame 5 (12 dB, score 0.1) and one that
    did not at frame 9; the operator takes over at 12, recovering to frame 14, then correcting."""
    psnr, score = {5: (12.0, 0.1), 9: (35.0, 0.6)}.get(frame, (-1.0, -1.0)) if episode == 0 else (-1.0, -1.0)
    segment = "none" if episode == 1 or frame < 12 else "recovery" if frame < 15 else "correction"
    return {"foresight_psnr_db": psnr, "surprise_score": score, "segment": segment}


def weights_seen(monkeypatch, argv):
    """Run model.train; (frames, frame_weight or None) of every batch it trained on."""
    seen, original = [], TrainingData.batch

    def batch(self, frames, device="cpu"):
        built = original(self, frames, device)
        seen.append((list(frames), None if built.frame_weight is None else built.frame_weight.tolist()))
        return built

    monkeypatch.setattr(TrainingData, "batch", batch)
    assert main(argv) == 0
    return seen


def test_recovery_and_surprise_frames_weigh_what_the_flags_say(tmp_path, monkeypatch, capsys):
    corrections = record(tmp_path / "corrections", takeovers=(12, None), context=correction_context)
    arrays = read_dataset(open_dataset(corrections))
    assert arrays.context.segment.tolist() == [0] * 12 + [1] * 3 + [2] * 5 + [0] * 12  # none, recovery, correction
    assert arrays.context.surprise_score[[5, 9, 10]].tolist() == pytest.approx([0.1, 0.6, -1.0])
    CALIBRATION.save(tmp_path / "calibration.json")
    flags = ["--recovery-weight", "3", "--surprise-weight", "2", "--surprise-window-s", "0.2",
             "--surprise-calibration", str(tmp_path / "calibration.json"), "--batch-size", "8"]
    seen = weights_seen(monkeypatch, cli(corrections, tmp_path / "weighted", steps=3) + flags)
    expected = np.ones(32)
    expected[5:9] = 2.0  # the surprise at frame 5 and 3 frames after it (0.2 s at 15 fps)
    expected[12:15] = 3.0  # the recovery
    assert len(seen) == 3 and all(weights == expected[frames].tolist() for frames, weights in seen)
    assert "corrections: 3 recovery frames weigh 3; 4 frames within 0.2 s after 1 surprises weigh 2" in capsys.readouterr().out
    monkeypatch.undo()

    # The defaults weigh nothing: the batches are built as before.
    assert all(weights is None for _, weights in weights_seen(monkeypatch, cli(corrections, tmp_path / "plain", steps=2)))
    # Weighting surprises needs a calibration: refused before any work.
    with pytest.raises(SystemExit):
        main(cli(corrections, tmp_path / "bad", steps=1) + ["--surprise-weight", "2"])
    assert "needs a surprise calibration" in capsys.readouterr().err


def test_datasets_recorded_before_the_context_columns_still_train_and_mix(tmp_path, monkeypatch, capsys):
    with older_schema(monkeypatch):
        old = record(tmp_path / "old_demos")
    assert not set(CONTEXT_KEYS) & set(open_metadata(old).features)
    corrections = record(tmp_path / "corrections", takeovers=(12, None), context=correction_context)
    seen = weights_seen(monkeypatch, cli(corrections, tmp_path / "mixed", steps=4) + ["--mix", str(old), "--mix-fraction", "0.5",
                                                                                       "--recovery-weight", "3"])
    printed = capsys.readouterr().out
    assert "old_demos: no intervention_segment column (recorded before it): no recovery weighting" in printed
    assert "corrections: 3 recovery frames weigh 3" in printed
    weighted = [weights for _, weights in seen if weights is not None]
    assert weighted and len(weighted) < len(seen)  # the corrections' batches weighted, the old dataset's not
    assert main(cli(old, tmp_path / "old_alone", steps=1)) == 0  # and it trains on its own as before


def test_finetune_takes_the_weighting_flags_and_the_calibration_beside_the_checkpoint(trained, tmp_path):
    from model.finetune import parse_args
    from robot_io.surprise_calibration import CALIBRATION_FILE

    base = tmp_path / "base"
    shutil.copytree(trained / "checkpoints" / "step_0000002", base)
    CALIBRATION.save(base / CALIBRATION_FILE)
    _, cfg = parse_args(["--dataset", str(tmp_path / "corrections"), "--checkpoint", str(base), "--recovery-weight", "2",
                         "--surprise-weight", "3", "--surprise-window-s", "0.5"])
    assert (cfg.recovery_weight, cfg.surprise_weight, cfg.surprise_window_s) == (2.0, 3.0, 0.5)
    assert cfg.surprise_calibration == base.absolute() / CALIBRATION_FILE
    _, default = parse_args(["--dataset", str(tmp_path / "corrections"), "--checkpoint", str(base)])
    assert (default.recovery_weight, default.surprise_weight, default.surprise_calibration) == (1.0, 1.0, None)


def test_finetune_takes_the_generation_loss_weight_for_the_ablation(trained, tmp_path, capsys):
    from model.finetune import parse_args

    base = trained / "checkpoints" / "step_0000002"
    _, ablation = parse_args(["--dataset", str(tmp_path / "corrections"), "--checkpoint", str(base), "--gen-loss-weight", "0"])
    assert ablation.gen_loss_weight == 0.0
    _, default = parse_args(["--dataset", str(tmp_path / "corrections"), "--checkpoint", str(base)])
    assert default.gen_loss_weight == TrainConfig.gen_loss_weight
    with pytest.raises(SystemExit):
        parse_args(["--dataset", str(tmp_path / "corrections"), "--checkpoint", str(base), "--gen-loss-weight", "-1"])
    assert "gen_loss_weight must be >= 0" in capsys.readouterr().err


def trainable_weights(folder):
    """The checkpoint's weights of the trained parameters (the frozen tokenizer's are left out)."""
    return {k: v for k, v in load_file(str(folder / "model.safetensors")).items() if not k.startswith(TOKENIZER_PREFIX)}


def test_a_weight_average_is_what_checkpoints_hold_and_a_resumed_run_keeps_it(trained, dataset_dir, tmp_path):
    base = trained / "checkpoints" / "step_0000002"
    # A large first step (no warmup), so the average and the trained weights are far apart.
    def args(out, steps, ema=("--ema-decay", "0.75")):
        return [*cli(dataset_dir, out, steps), "--init-from", str(base), "--lr", "0.01", "--warmup-steps", "0", *ema]

    out = tmp_path / "ema"
    assert main(args(out, 3)) == 0
    first = out / "checkpoints" / "step_0000001"
    model = load_checkpoint(first, None, "cpu")[0]
    name_of = {id(p): name for name, p in model.named_parameters()}
    names = [name_of[id(p)] for p in trainable_parameters(model)]  # the order the average keeps
    trained_after_one = dict(zip(names, torch.load(first / "training_state.pt", weights_only=False)["trained_weights"]))
    parent, average = trainable_weights(base), trainable_weights(first)
    moved = 0
    for key, value in average.items():  # one step: 0.75 of the parent, 0.25 of the trained weights
        name = key.removeprefix(KEY_PREFIX)
        if name in trained_after_one:
            expected = 0.75 * parent[key] + 0.25 * trained_after_one[name]
            assert torch.allclose(value, expected, atol=1e-6), key
            moved += bool((trained_after_one[name] - parent[key]).abs().max() > 1e-3)
    assert moved > 0  # the optimizer did move the weights the average lags behind
    assert json.loads((first / "train_config.json").read_text())["train"]["ema_decay"] == 0.75

    resumed = tmp_path / "ema_resumed"
    shutil.copytree(out, resumed)
    for step in ("step_0000002", "step_0000003"):
        shutil.rmtree(resumed / "checkpoints" / step)  # interrupted after step 1
    assert main(args(resumed, 3)) == 0
    last = "checkpoints/step_0000003"
    for key, value in trainable_weights(out / last).items():
        assert torch.allclose(trainable_weights(resumed / last)[key], value, atol=1e-5), key
    assert main(args(resumed, 4, ema=())) == 2  # without the average: another run


def test_finetune_takes_the_weight_average(trained, tmp_path, capsys):
    from model.finetune import parse_args

    base = trained / "checkpoints" / "step_0000002"
    _, averaged = parse_args(["--dataset", str(tmp_path / "corrections"), "--checkpoint", str(base), "--ema-decay", "0.999"])
    assert averaged.ema_decay == 0.999
    with pytest.raises(SystemExit):
        parse_args(["--dataset", str(tmp_path / "corrections"), "--checkpoint", str(base), "--ema-decay", "1"])
    assert "ema_decay must be in [0, 1)" in capsys.readouterr().err
