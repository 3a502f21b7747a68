"""runtime.collect_corrections end to end: an untrained policy on a fast belt, the automatic
operator takes over, and the correction lands as an intervention episode LeRobot loads, both in
the real-time session and unpaced."""

import os

import pytest

from runtime import collect_corrections
from runtime.collect_corrections import main
from robot_io.datasets.schema import ACTION_SOURCES, SOURCE_OPERATOR
from robot_io.sim.conveyor_env import ConveyorSimConfig
from robot_io.sim.sim_robot import SimRobot
from tests.model.helpers import write_checkpoint


def collect(tmp_path, *extra: str):
    checkpoint = tmp_path / "ckpt"
    write_checkpoint(checkpoint, SimRobot(ConveyorSimConfig()))
    out = tmp_path / "corrections"
    assert main(["--checkpoint", str(checkpoint), "--episodes", "1", "--out", str(out), "--seed", "7",
                 "--belt-speed", "0.2,0.2", *extra]) == 0
    os.environ["HF_HUB_OFFLINE"] = "1"
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset("local/corrections", root=out)


@pytest.mark.parametrize("pacing", [[], ["--unpaced"]], ids=["session", "unpaced"])
def test_an_untrained_policy_gets_corrected_and_the_correction_is_recorded(tmp_path, capsys, pacing):
    ds = collect(tmp_path, *pacing)
    printed = capsys.readouterr().out
    assert "operator took over" in printed and "policy alone: 0/1" in printed
    assert ds.num_episodes == 1
    assert all(bool(v) for v in ds.hf_dataset["intervention"])  # a correction: the operator throughout
    assert int(ds.hf_dataset["episode_outcome"][0]) == 1  # "success": the expert finished the job


def test_unpaced_attempts_record_the_whole_scene_with_the_takeover_tagged(tmp_path, monkeypatch):
    horizons, latencies, real_run_episode = [], [], collect_corrections.run_episode

    def run_episode(*args, **kwargs):  # the real rollout, its chunk steps per inference and latency noted
        horizons.append(kwargs["chunks"].execute_horizon)
        latencies.append(kwargs["latency_ticks"])
        return real_run_episode(*args, **kwargs)

    monkeypatch.setattr(collect_corrections, "run_episode", run_episode)
    ds = collect(tmp_path, "--unpaced", "--mode", "attempts", "--execute-horizon", "3", "--latency-ticks", "3,2")
    assert horizons == [3] and latencies == [3]
    assert ds.num_episodes == 1
    intervention = [bool(v) for v in ds.hf_dataset["intervention"]]
    sources = [ACTION_SOURCES[int(v)] for v in ds.hf_dataset["actor"]]
    takeover = intervention.index(True)
    assert takeover > 0 and all(intervention[takeover:])  # the policy first, then the operator to the end
    assert all(s == SOURCE_OPERATOR for s in sources[takeover:]) and SOURCE_OPERATOR not in sources[:takeover]
    assert int(ds.hf_dataset["episode_outcome"][0]) == 1


@pytest.mark.parametrize("flags", [["--latency-ticks", "0"], ["--latency-ticks", "2,x"], ["--latency-ticks", "3"]],
                         ids=["zero", "not-a-number", "without-unpaced"])
def test_bad_latency_ticks_are_refused(tmp_path, flags, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--checkpoint", str(tmp_path), "--episodes", "1", "--out", str(tmp_path / "out"), *flags])
    assert stop.value.code == 2 and "latency" in capsys.readouterr().err
