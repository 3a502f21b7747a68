"""Averaging checkpoints: the mean of the weights as a loadable checkpoint; sources that disagree refused."""

import dataclasses
import json

import pytest
import torch

from model.average_checkpoints import average_checkpoints, main
from model.checkpoint import TRAIN_CONFIG_FILE, CheckpointError, load_checkpoint, read_layout, save_checkpoint
from tests.model.helpers import CAMERAS, STATE_KEYS, small_model, stats_for

LAYOUT = {"robot_type": "sim", "cameras": CAMERAS, "state_keys": STATE_KEYS, "action_keys": STATE_KEYS}


def fine_tuned(folder, seed, stats=None, layout=LAYOUT):
    """A checkpoint with its own weights (seeded) and a train_config.json naming `layout`."""
    model = small_model(seed)
    save_checkpoint(folder, model, stats or stats_for(STATE_KEYS))
    (folder / TRAIN_CONFIG_FILE).write_text(json.dumps({"train": {"seed": seed}, "dataset": layout}))
    return model


def test_average_is_the_mean_of_the_weights_and_loads(tmp_path):
    a, b = fine_tuned(tmp_path / "a", seed=1), fine_tuned(tmp_path / "b", seed=2)
    out = average_checkpoints([tmp_path / "a", tmp_path / "b"], tmp_path / "soup")

    soup, stats = load_checkpoint(out)
    for name, tensor in soup.state_dict().items():
        if tensor.is_floating_point():
            expected = (a.state_dict()[name] + b.state_dict()[name]) / 2
            assert torch.allclose(tensor, expected, atol=1e-6), name
    assert not torch.equal(soup.state_dict()["action_out_proj.weight"], a.state_dict()["action_out_proj.weight"])
    assert stats == stats_for(STATE_KEYS)
    assert read_layout(out) == read_layout(tmp_path / "a")
    sources = json.loads((out / TRAIN_CONFIG_FILE).read_text())["average_of"]
    assert sources == [str((tmp_path / name).resolve()) for name in ("a", "b")]


def test_sources_with_other_stats_or_layout_are_refused_by_name(tmp_path):
    fine_tuned(tmp_path / "a", seed=1)
    fine_tuned(tmp_path / "other_stats", seed=2, stats=stats_for(STATE_KEYS, std=0.5))
    fine_tuned(tmp_path / "other_layout", seed=3, layout={**LAYOUT, "action_keys": STATE_KEYS[:-1]})

    with pytest.raises(CheckpointError, match="normalisation stats differ"):
        average_checkpoints([tmp_path / "a", tmp_path / "other_stats"], tmp_path / "soup")
    with pytest.raises(CheckpointError, match="robot layout differ"):
        average_checkpoints([tmp_path / "a", tmp_path / "other_layout"], tmp_path / "soup")
    assert not (tmp_path / "soup").exists()


def test_other_learning_rates_average_but_another_time_embedding_is_refused(tmp_path):
    """The optimizer settings and the sampling noise scale do not shape the weights: the first source's are kept."""
    fine_tuned(tmp_path / "a", seed=1)
    other = small_model(2)
    other.config.optim = dataclasses.replace(other.config.optim, lr=1e-5)
    other.config.flow = dataclasses.replace(other.config.flow, sample_noise_scale=1.0)
    save_checkpoint(tmp_path / "other_lr", other, stats_for(STATE_KEYS))
    (tmp_path / "other_lr" / TRAIN_CONFIG_FILE).write_text(json.dumps({"dataset": LAYOUT}))
    soup, _ = load_checkpoint(average_checkpoints([tmp_path / "a", tmp_path / "other_lr"], tmp_path / "soup"))
    first, _ = load_checkpoint(tmp_path / "a")
    assert soup.config.to_dict() == first.config.to_dict()

    other_periods = small_model(3)  # the time embedding the action expert learned to read
    other_periods.config.flow = dataclasses.replace(other_periods.config.flow, max_period=2 * other_periods.config.flow.max_period)
    save_checkpoint(tmp_path / "other_flow", other_periods, stats_for(STATE_KEYS))
    (tmp_path / "other_flow" / TRAIN_CONFIG_FILE).write_text(json.dumps({"dataset": LAYOUT}))
    with pytest.raises(CheckpointError, match="model config differ"):
        average_checkpoints([tmp_path / "a", tmp_path / "other_flow"], tmp_path / "soup2")


def test_command_line_refuses_one_source_a_missing_one_and_overwriting_a_source(tmp_path, capsys):
    fine_tuned(tmp_path / "a", seed=1)

    assert main([str(tmp_path / "a"), "--out", str(tmp_path / "soup")]) == 2
    assert "at least 2 checkpoints" in capsys.readouterr().err
    assert main([str(tmp_path / "a"), str(tmp_path / "missing"), "--out", str(tmp_path / "soup")]) == 2
    assert "not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "a"), str(tmp_path / "a"), "--out", str(tmp_path / "a")])
    assert not (tmp_path / "soup").exists()
