"""runtime.collect_corrections end to end: an untrained policy on a fast belt, the automatic
operator takes over, and the correction lands as an intervention episode LeRobot loads."""

import os

from runtime.collect_corrections import main
from robot_io.sim.conveyor_env import ConveyorSimConfig
from robot_io.sim.sim_robot import SimRobot
from tests.model.helpers import write_checkpoint


def test_an_untrained_policy_gets_corrected_and_the_correction_is_recorded(tmp_path, capsys):
    checkpoint = tmp_path / "ckpt"
    write_checkpoint(checkpoint, SimRobot(ConveyorSimConfig()))
    out = tmp_path / "corrections"
    assert main(["--checkpoint", str(checkpoint), "--episodes", "1", "--out", str(out), "--seed", "7",
                 "--belt-speed", "0.2,0.2"]) == 0
    printed = capsys.readouterr().out
    assert "operator took over" in printed and "policy alone: 0/1" in printed

    os.environ["HF_HUB_OFFLINE"] = "1"
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/corrections", root=out)
    assert ds.num_episodes == 1
    assert all(bool(v) for v in ds.hf_dataset["intervention"])  # a correction: the operator throughout
    assert int(ds.hf_dataset["episode_outcome"][0]) == 1  # "success": the expert finished the job
