"""model.evaluate end to end on a tiny checkpoint trained for two steps on recorded sim demonstrations:
the report's structure, figures checked against direct computations, and refusals."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from model import evaluate
from model.checkpoint import TRAIN_CONFIG_FILE
from robot_io.images import psnr
from model.train import main as train_main
from model.train_data import (
    TrainingData,
    build_cache,
    check_dataset,
    open_dataset,
    read_dataset,
)
from robot_io.chunks.blending import BlendConfig
from robot_io.chunks.schedule import ChunkConfig
from robot_io.sim import collect

EPISODES = 2


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    root = tmp_path_factory.mktemp("demos") / "heldout"
    assert collect.main(["--episodes", str(EPISODES), "--out", str(root), "--seed", "0", "--image-size", "64"]) == 0
    return root


@pytest.fixture(scope="module")
def checkpoint(demos, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    argv = ["--preset", "tiny", "--dataset", str(demos), "--out", str(out), "--steps", "2", "--batch-size", "2", "--threads", "1"]
    assert train_main(argv) == 0
    return sorted((out / "checkpoints").iterdir())[-1]


def test_report_has_closed_and_open_loop_figures(checkpoint, demos, tmp_path, capsys):
    out = tmp_path / "report.json"
    argv = ["--checkpoint", str(checkpoint), "--episodes", "2", "--seed", "7", "--demos", str(demos),
            "--demo-frames", "12", "--probe-scenes", "2", "--workers", "1", "--json", str(out)]
    assert evaluate.main(argv) == 0
    report = json.loads(out.read_text())
    closed = report["closed_loop"]
    assert closed["episodes"] == 2 and [e["seed"] for e in closed["per_episode"]] == [7, 8]
    assert sum(r["episodes"] for r in closed["by_speed"].values()) == 2
    assert sum(r["episodes"] for r in closed["by_color"].values()) == 2
    assert 0 <= closed["success_rate"] <= 1

    opened = report["open_loop"]
    assert opened["frames"] == 12 and set(opened["foresight"]) == {"head", "wrist", "side"}
    for cam, m in opened["foresight"].items():
        assert set(m) == {f"{n}_{k}" for n in ("foresight", "copy", "ceiling") for k in ("psnr", "ssim")}
        assert 0 < m["copy_psnr"] < 100 and -1 <= m["foresight_ssim"] <= 1
    assert opened["action_mse"] > 0 and np.isfinite(opened["action_mse"])
    probe = report["instruction_probe"]
    assert probe["scenes"] == 2 and probe["probes"] >= 2 and 0 <= probe["named_nearest"] <= probe["probes"]
    printed = capsys.readouterr().out
    assert "copy frame t" in printed and "success:" in printed and "instruction probe" in printed


def test_copy_baseline_and_action_error_match_direct_computations(checkpoint, demos, tmp_path):
    """The copy-frame-t PSNR is that of frame t against frame t+15 at the tokenizer's size, and the
    training target chunk, scored as a prediction, has zero error on its real steps."""
    robot = evaluate.SimRobot(evaluate.ConveyorSimConfig())
    policy = evaluate.policy_for_robot(checkpoint, robot)
    model, layout = policy.model, evaluate.robot_layout(robot)
    result = evaluate.open_loop(model, policy.stats, layout, demos, frames=24, seed=3, execute_horizon=8)

    dataset = open_dataset(demos)
    info = check_dataset(dataset.meta, model.config, layout.cameras, policy.stats)
    arrays = read_dataset(dataset)
    cache = build_cache(dataset, info, model, tmp_path / "cache")
    has_future = np.flatnonzero(np.arange(len(arrays.state)) + 15 < arrays.episodes[:, 1])
    frames = np.sort(np.random.default_rng(3).choice(has_future, 24, replace=False))  # the documented draw
    assert result["frames"] == 24
    size = model.config.foresight.image_size
    head_t = torch.nn.functional.interpolate(torch.from_numpy(np.asarray(cache.frames[frames, 0])).permute(0, 3, 1, 2).float(),
                                             size=(size, size), mode="bilinear", antialias=True)
    head_future = torch.nn.functional.interpolate(torch.from_numpy(np.asarray(cache.frames[frames + 15, 0])).permute(0, 3, 1, 2).float(),
                                                  size=(size, size), mode="bilinear", antialias=True)
    as_uint8 = lambda x: x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()  # noqa: E731
    direct = psnr(as_uint8(head_t), as_uint8(head_future)).mean()
    assert result["foresight"]["head"]["copy_psnr"] == pytest.approx(direct, abs=0.3)  # [-1, 1] round trip rounding

    data = TrainingData(info, arrays, cache, policy.stats, model.config)
    chosen = frames[:6]
    target = data.batch(chosen).actions[:, :, : len(layout.action_keys)].numpy()
    errors, first = evaluate._action_errors(data, chosen, target, 8)
    assert errors.max() < 1e-8 and first.max() < 1e-8
    errors, _ = evaluate._action_errors(data, chosen, target + 0.5, 8)
    assert errors.mean() > 1e-4


def test_a_checkpoint_for_another_robot_layout_is_refused(checkpoint, tmp_path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    for f in checkpoint.iterdir():
        if f.is_file():
            (other / f.name).write_bytes(f.read_bytes())
    config = json.loads((other / TRAIN_CONFIG_FILE).read_text())
    config["dataset"]["action_keys"] = config["dataset"]["action_keys"][:-1]
    config["dataset"]["robot_type"] = "so101_follower"
    (other / TRAIN_CONFIG_FILE).write_text(json.dumps(config))
    assert evaluate.main(["--checkpoint", str(other), "--episodes", "1", "--demo-frames", "0"]) == 2
    err = capsys.readouterr().err
    assert "another robot layout" in err and "robot_type" in err and "action_keys" in err


def test_training_seeds_are_refused(capsys):
    with pytest.raises(SystemExit):
        evaluate.main(["--episodes", "5", "--seed", str(evaluate.TRAINING_SEED_START - 2)])
    assert "training demonstrations" in capsys.readouterr().err


def test_a_harder_belt_speed_range_is_used_for_the_closed_loop(checkpoint, tmp_path, capsys):
    out = tmp_path / "fast.json"
    argv = ["--checkpoint", str(checkpoint), "--episodes", "1", "--seed", "3", "--demo-frames", "0",
            "--probe-scenes", "0", "--workers", "1", "--belt-speed", "0.2,0.22", "--json", str(out)]
    assert evaluate.main(argv) == 0
    episode = json.loads(out.read_text())["closed_loop"]["per_episode"][0]
    assert 0.2 <= episode["belt_speed"] <= 0.22
    with pytest.raises(SystemExit):
        evaluate.main(["--episodes", "1", "--belt-speed", "fast"])
    assert "expected a belt speed range LOW,HIGH" in capsys.readouterr().err


def test_sampling_overrides_reach_the_open_loop_and_the_closed_loop_workers(checkpoint, demos, tmp_path, monkeypatch, capsys):
    """With --noise-scale 0 the open-loop chunks no longer depend on the noise drawn; the figures
    are in the report and each closed-loop worker's policy samples with them too."""
    def action_mse(noise_seed, scale):
        monkeypatch.setattr(evaluate, "NOISE_SEED", noise_seed)
        out = tmp_path / f"open_{noise_seed}_{scale}.json"
        argv = ["--checkpoint", str(checkpoint), "--episodes", "0", "--demos", str(demos), "--demo-frames", "8",
                "--probe-scenes", "0", "--noise-scale", str(scale), "--denoise-steps", "3", "--json", str(out)]
        assert evaluate.main(argv) == 0
        report = json.loads(out.read_text())
        assert (report["noise_scale"], report["denoise_steps"]) == (scale, 3)
        return report["open_loop"]["action_mse"]

    assert action_mse(0, 0.0) == action_mse(5, 0.0)
    assert action_mse(0, 1.0) != action_mse(5, 1.0)

    evaluate._start_worker(checkpoint, evaluate.ConveyorSimConfig(), evaluate.Sampling(0.0, 3), {})
    try:
        flow_config = evaluate._worker["policy"].model.config.flow
        assert (flow_config.sample_noise_scale, flow_config.denoise_steps) == (0.0, 3)
    finally:
        evaluate._worker["robot"].disconnect()
    with pytest.raises(SystemExit):
        evaluate.main(["--episodes", "1", "--noise-scale", "-1"])
    assert "--noise-scale must be >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate.main(["--episodes", "1", "--denoise-steps", "0"])
    assert "--denoise-steps must be >= 1" in capsys.readouterr().err


def test_mask_generation_reaches_every_part_and_the_report(checkpoint, demos, tmp_path, monkeypatch, capsys):
    """--mask-generation hides the generation tokens from the action expert in the open loop (other
    chunks), the instruction probe's policy and each closed-loop worker's; the report says so."""
    probed = []  # the probe's policy reads the generation tokens?
    real_probe = evaluate.probe_instructions

    def probe(robot, policy, seeds):
        probed.append(policy.model.config.action_reads_generation)
        return real_probe(robot, policy, seeds)

    monkeypatch.setattr(evaluate, "probe_instructions", probe)

    def report(*flags):
        out = tmp_path / f"mask_{len(flags)}.json"
        argv = ["--checkpoint", str(checkpoint), "--episodes", "0", "--demos", str(demos), "--demo-frames", "8",
                "--probe-scenes", "1", *flags, "--json", str(out)]
        assert evaluate.main(argv) == 0
        return json.loads(out.read_text())

    read, masked = report(), report("--mask-generation")
    assert (read["action_reads_generation"], masked["action_reads_generation"]) == (True, False)
    assert probed == [True, False]
    assert masked["open_loop"]["action_mse"] != read["open_loop"]["action_mse"]
    printed = capsys.readouterr().out
    assert "action expert reads the generation tokens" in printed and "action expert blind to the generation tokens" in printed

    evaluate._start_worker(checkpoint, evaluate.ConveyorSimConfig(), evaluate.Sampling(mask_generation=True), {})
    try:
        assert evaluate._worker["policy"].model.config.action_reads_generation is False
    finally:
        evaluate._worker["robot"].disconnect()


def test_closed_loop_runs_chunks_as_the_console_does_unless_told(checkpoint, tmp_path, monkeypatch, capsys):
    out = tmp_path / "blend.json"
    argv = ["--checkpoint", str(checkpoint), "--episodes", "1", "--seed", "3", "--demo-frames", "0",
            "--probe-scenes", "0", "--workers", "1", "--json", str(out)]
    assert evaluate.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["blend"] == dataclasses.asdict(BlendConfig())  # the console's defaults
    assert (report["execute_horizon"], report["latency_ticks"]) == (ChunkConfig().execute_horizon, 1)
    assert evaluate.main(argv + ["--blend", "linear", "--blend-steps", "3", "--latency-ticks", "3"]) == 0
    assert json.loads(out.read_text())["blend"] == dataclasses.asdict(BlendConfig("linear", steps=3))
    assert "3 ticks of inference latency, chunks blended 'linear' over 3 ticks" in capsys.readouterr().out

    used = []  # each worker runs its episodes as it was started to
    monkeypatch.setattr(evaluate, "run_episode", lambda robot, policy, **kwargs: used.append(kwargs))
    rollout = {"chunks": ChunkConfig(4, BlendConfig("exponential", ensemble_k=0.5)), "latency_ticks": 2}
    evaluate._start_worker(checkpoint, evaluate.ConveyorSimConfig(), evaluate.Sampling(), rollout)
    try:
        evaluate._run_seed(3)
    finally:
        evaluate._worker["robot"].disconnect()
    assert used == [rollout]
    with pytest.raises(SystemExit):
        evaluate.main(["--episodes", "1", "--latency-ticks", "0"])
    assert "--latency-ticks must be >= 1" in capsys.readouterr().err

    with pytest.raises(SystemExit):
        evaluate.main(["--episodes", "1", "--blend", "linear", "--blend-steps", "0"])
    assert "blend steps must be an integer >= 1" in capsys.readouterr().err


def test_absent_default_demos_skip_the_open_loop_with_the_command_that_records_them(checkpoint, demos, tmp_path,
                                                                                     monkeypatch, capsys):
    """A fresh clone has no recordings/conveyor_heldout: the open loop is skipped with a note naming
    the collect command; demos named with --demos must exist; the default is used once recorded."""
    monkeypatch.chdir(tmp_path)  # no recordings/ here
    out = tmp_path / "report.json"
    argv = ["--checkpoint", str(checkpoint), "--episodes", "0", "--probe-scenes", "0", "--demo-frames", "4", "--json", str(out)]
    assert evaluate.main(argv) == 0
    report = json.loads(out.read_text())
    assert "open_loop" not in report
    command = "python -m robot_io.sim.collect --episodes 30 --out recordings/conveyor_heldout --seed 0"
    assert command in report["open_loop_skipped"]
    notes = [line for line in capsys.readouterr().out.splitlines() if "open loop skipped" in line]
    assert len(notes) == 1 and command in notes[0]

    missing = tmp_path / "elsewhere"
    assert evaluate.main(argv + ["--demos", str(missing)]) == 2
    assert f"{missing} holds no LeRobot dataset" in capsys.readouterr().err

    monkeypatch.setattr(evaluate, "DEFAULT_DEMOS", demos)  # recorded: the default is read
    assert evaluate.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["open_loop"]["demos"] == str(demos) and report["open_loop"]["frames"] == 4
    assert "open_loop_skipped" not in report
