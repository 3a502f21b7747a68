"""runtime.collect_corrections end to end: an untrained policy on a fast belt, the automatic
operator takes over, and the correction lands as an intervention episode LeRobot loads, both in
the real-time session and unpaced."""

import os

import pytest

from runtime import collect_corrections
from runtime.collect_corrections import main
from robot_io.datasets.schema import (ACTION_SOURCES, EPISODE_OUTCOMES, FORESIGHT_KEY, INTERVENTION_SEGMENTS, OUTCOME_KEY,
                                      SEGMENT_KEY, SOURCE_HOLD, SOURCE_OPERATOR, SOURCE_POLICY, SURPRISE_KEY, UNKNOWN)
from robot_io.sim.conveyor_env import ConveyorSimConfig
from robot_io.sim.sim_robot import SimRobot
from robot_io.surprise_calibration import CALIBRATION_FILE, SurpriseCalibration
from tests.model.helpers import write_checkpoint


# Judged predictions of an untrained model score far below 40 dB: each gets the smallest p-value, 0.1.
CALIBRATION = SurpriseCalibration.from_scores([-40.0 - k for k in range(9)], false_alarm=0.1, unit="prediction", episodes=3)


def collect(tmp_path, *extra: str, calibrated: bool = False):
    checkpoint = tmp_path / "ckpt"
    write_checkpoint(checkpoint, SimRobot(ConveyorSimConfig()))
    if calibrated:
        CALIBRATION.save(checkpoint / CALIBRATION_FILE)
    out = tmp_path / "corrections"
    assert main(["--checkpoint", str(checkpoint), "--episodes", "1", "--out", str(out), "--seed", "7",
                 "--belt-speed", "0.2,0.2", *extra]) == 0
    os.environ["HF_HUB_OFFLINE"] = "1"
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset("local/corrections", root=out)


def segments_of(ds) -> list[str]:
    return [INTERVENTION_SEGMENTS[int(v)] for v in ds.hf_dataset[SEGMENT_KEY]]


@pytest.mark.parametrize("pacing", [[], ["--unpaced"]], ids=["session", "unpaced"])
def test_an_untrained_policy_gets_corrected_and_the_correction_is_recorded_with_its_context(tmp_path, capsys, pacing):
    ds = collect(tmp_path, *pacing, calibrated=True)
    printed = capsys.readouterr().out
    assert "operator took over" in printed and "policy alone: 0/1" in printed and "no surprise calibration" not in printed
    assert ds.num_episodes == 1
    assert all(bool(v) for v in ds.hf_dataset["intervention"])  # a correction: the operator throughout
    assert int(ds.hf_dataset["episode_outcome"][0]) == 1  # "success": the expert finished the job
    segments = segments_of(ds)
    recovered = segments.index("correction")
    assert recovered > 0 and set(segments[:recovered]) == {"recovery"} and set(segments[recovered:]) == {"correction"}
    # The model's last predictions come due after the takeover: judged, and scored by the checkpoint's
    # calibration. (In real time an inference slower than the horizon is judged on landing, beside the
    # frames: only the unpaced run's one tick of latency makes them certain.)
    psnrs, scores = [float(v) for v in ds.hf_dataset[FORESIGHT_KEY]], [float(v) for v in ds.hf_dataset[SURPRISE_KEY]]
    judged = [i for i, v in enumerate(psnrs) if v != UNKNOWN]
    assert judged or not pacing
    assert all(scores[i] == pytest.approx(CALIBRATION.p_value(psnrs[i])) for i in judged)
    assert all(score == UNKNOWN for i, score in enumerate(scores) if i not in judged)


def test_unpaced_attempts_record_the_whole_scene_with_the_takeover_tagged(tmp_path, monkeypatch, capsys):
    horizons, latencies, real_run_episode = [], [], collect_corrections.run_episode

    def run_episode(*args, **kwargs):  # the real rollout, its chunk steps per inference and latency noted
        horizons.append(kwargs["chunks"].execute_horizon)
        latencies.append(kwargs["latency_ticks"])
        return real_run_episode(*args, **kwargs)

    monkeypatch.setattr(collect_corrections, "run_episode", run_episode)
    ds = collect(tmp_path, "--unpaced", "--mode", "attempts", "--execute-horizon", "3", "--latency-ticks", "3,2")
    assert "no surprise calibration beside" in capsys.readouterr().out
    assert horizons == [3] and latencies == [3]
    assert ds.num_episodes == 1
    intervention = [bool(v) for v in ds.hf_dataset["intervention"]]
    sources = [ACTION_SOURCES[int(v)] for v in ds.hf_dataset["actor"]]
    takeover = intervention.index(True)
    assert takeover > 0 and all(intervention[takeover:])  # the policy first, then the operator to the end
    assert all(s == SOURCE_OPERATOR for s in sources[takeover:]) and SOURCE_OPERATOR not in sources[:takeover]
    assert int(ds.hf_dataset["episode_outcome"][0]) == 1
    assert set(segments_of(ds)[:takeover]) == {"none"} and "none" not in segments_of(ds)[takeover:]
    assert any(float(v) > 0 for v in ds.hf_dataset[FORESIGHT_KEY][:takeover])  # the policy's foresight, judged
    assert all(float(v) == UNKNOWN for v in ds.hf_dataset[SURPRISE_KEY])  # no calibration: no score


def test_without_an_operator_each_scene_is_the_policys_alone_recorded_whole(tmp_path, capsys):
    ds = collect(tmp_path, "--unpaced", "--mode", "attempts", "--no-operator", "--latency-ticks", "3")
    printed = capsys.readouterr().out
    assert "operator took over in 0" in printed and "policy alone" in printed
    assert ds.num_episodes == 1 and ds.num_frames > 0
    assert not any(bool(v) for v in ds.hf_dataset["intervention"])
    assert {ACTION_SOURCES[int(v)] for v in ds.hf_dataset["actor"]} <= {SOURCE_POLICY, SOURCE_HOLD}
    assert EPISODE_OUTCOMES[int(ds.hf_dataset[OUTCOME_KEY][0])] in ("success", "failure")  # never unknown
    with pytest.raises(SystemExit):  # corrections mode would record nothing without an operator
        main(["--checkpoint", str(tmp_path / "ckpt"), "--episodes", "1", "--out", str(tmp_path / "x"), "--no-operator"])


def test_a_broken_calibration_file_is_refused(tmp_path, capsys):
    (tmp_path / "broken.json").write_text("{")
    assert main(["--checkpoint", str(tmp_path), "--episodes", "1", "--out", str(tmp_path / "out"),
                 "--surprise-calibration", str(tmp_path / "broken.json")]) == 2
    assert "cannot read the surprise calibration" in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags", [["--latency-ticks", "0"], ["--latency-ticks", "2,x"], ["--latency-ticks", "3"]],
                         ids=["zero", "not-a-number", "without-unpaced"])
def test_bad_latency_ticks_are_refused(tmp_path, flags, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--checkpoint", str(tmp_path), "--episodes", "1", "--out", str(tmp_path / "out"), *flags])
    assert stop.value.code == 2 and "latency" in capsys.readouterr().err
