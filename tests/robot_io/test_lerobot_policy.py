"""The LeRobot round trip: lerobot-train learns from a sim recording (issue 22 part 1), and the
checkpoint it writes runs behind our Policy interface through LeRobot's own classes (part 2)."""

import json
import shutil

import numpy as np
import pytest
import torch

from robot_io.devices.robot import camera_keys, state_keys
from robot_io.lerobot_policy import LeRobotPolicy, LeRobotPolicyError, check_layout, read_layout
from robot_io.sim.conveyor_env import ConveyorSimConfig
from robot_io.sim.sim_robot import SimRobot
from tests.lerobot_training import CHUNK, IMAGE, STEPS

INSTRUCTION = "pick up the red block and put it in the bin"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sim(image=IMAGE):
    robot = SimRobot(ConveyorSimConfig(image_height=image, image_width=image))
    robot.connect()
    robot.reset_scene(3)
    return robot


def keys(robot, **changes):
    return {"state_keys": state_keys(robot), "action_keys": list(robot.action_features), "camera_keys": camera_keys(robot)} | changes


def test_lerobot_train_turns_a_sim_recording_into_a_loadable_checkpoint(lerobot_act):
    from lerobot.policies.factory import get_policy_class

    assert f"Checkpoint policy after step {STEPS}" in lerobot_act.log and "End of training" in lerobot_act.log
    assert (lerobot_act.output_dir / "checkpoints" / f"{STEPS:06d}" / "pretrained_model").is_dir()
    policy = get_policy_class("act").from_pretrained(lerobot_act.checkpoint, local_files_only=True)
    assert policy.config.chunk_size == CHUNK and policy.config.pretrained_backbone_weights is None
    robot = sim()
    layout = read_layout(lerobot_act.checkpoint)
    assert layout.cameras == {camera: (3, IMAGE, IMAGE) for camera in camera_keys(robot)}
    assert layout.state_names == state_keys(robot) and layout.action_names == list(robot.action_features)


def test_the_whole_chunk_comes_back_as_lerobots_own_inference_computes_it(lerobot_act):
    from lerobot.common.control_utils import predict_action

    robot = sim()
    policy = LeRobotPolicy(lerobot_act.checkpoint, **keys(robot))
    assert (policy.chunk_starts_next_tick, policy.foresight_horizon, policy.name) == (False, None, "lerobot-act")
    observation = robot.get_observation()
    output = policy.infer(observation, INSTRUCTION)
    assert output.actions.shape == (CHUNK, len(robot.action_features)) and output.actions.dtype == np.float32
    assert np.isfinite(output.actions).all() and output.foresight is None
    assert output.timings_ms["total"] >= output.timings_ms["model"] > 0

    # LeRobot's own one-step path (select_action after its processors) gives the chunk's first step
    frame = {f"observation.images.{camera}": observation[camera] for camera in camera_keys(robot)}
    frame["observation.state"] = np.array([observation[key] for key in state_keys(robot)], np.float32)
    first = predict_action(frame, policy.policy, torch.device("cpu"), policy.preprocessor, policy.postprocessor,
                           use_amp=False, task=INSTRUCTION)
    np.testing.assert_allclose(output.actions[0], first.squeeze(0).numpy(), rtol=1e-5, atol=1e-5)


def test_actions_follow_the_robots_order_and_frames_of_another_size_are_resized(lerobot_act):
    robot = sim(image=2 * IMAGE)
    observation = robot.get_observation()
    forward = LeRobotPolicy(lerobot_act.checkpoint, **keys(robot)).infer(observation, INSTRUCTION).actions
    reversed_keys = list(robot.action_features)[::-1]
    backward = LeRobotPolicy(lerobot_act.checkpoint, **keys(robot, action_keys=reversed_keys)).infer(observation, INSTRUCTION).actions
    np.testing.assert_allclose(backward, forward[:, ::-1], rtol=1e-5, atol=1e-5)


def test_a_checkpoint_for_other_cameras_or_joints_is_refused_with_both_lists(lerobot_act):
    robot = sim()
    with pytest.raises(LeRobotPolicyError, match="another robot") as err:
        LeRobotPolicy(lerobot_act.checkpoint, **keys(robot, camera_keys=["front", "wrist"],
                                                     state_keys=["shoulder.pos", *state_keys(robot)[1:]]))
    message = str(err.value)
    assert "cameras ['head', 'side'] are missing" in message and "['front', 'wrist']" in message
    assert "state keys ['joint_1.pos'] are missing" in message and "shoulder.pos" in message
    assert "--camera-map" in message
    with pytest.raises(LeRobotPolicyError, match=r"action keys differ .*the robot takes \['joint_1.pos'\]"):
        check_layout(read_layout(lerobot_act.checkpoint), **keys(robot, action_keys=["joint_1.pos"]), folder="x")


def test_without_its_training_dataset_the_checkpoint_is_judged_by_sizes(lerobot_act, tmp_path):
    folder = shutil.copytree(lerobot_act.checkpoint, tmp_path / "moved")
    train_config = json.loads((folder / "train_config.json").read_text())
    train_config["dataset"]["root"] = str(tmp_path / "gone")
    (folder / "train_config.json").write_text(json.dumps(train_config))
    layout = read_layout(folder)
    assert layout.state_names is None and layout.action_names is None and layout.action_dim == 7
    robot = sim()
    check_layout(layout, **keys(robot), folder=folder)  # the robot's own order is assumed
    with pytest.raises(LeRobotPolicyError, match=r"writes 7 action values, the robot takes 6: \['a0"):
        check_layout(layout, **keys(robot, action_keys=[f"a{i}" for i in range(6)]), folder=folder)


def test_a_folder_that_is_not_a_lerobot_checkpoint_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(LeRobotPolicyError, match=r"lacks \['model.safetensors', 'policy_preprocessor.json'\]"):
        read_layout(tmp_path)
