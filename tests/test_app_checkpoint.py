"""The console's policy from a checkpoint folder: a small InternVLA-A1 we save drives the sim
through the session (untrained, so only the plumbing is judged: chunks arrive, stay finite,
respect the safety clamp)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from app import build_policy, parse_args
from model.checkpoint import TRAIN_CONFIG_FILE, CheckpointError
from model.policy import InternVLAPolicy
from model.shipped import SHIPPED_CHECKPOINT
from robot_io.sim.conveyor_env import ConveyorSimConfig
from robot_io.sim.sim_robot import SimRobot
from runtime.control.commands import RunPolicy
from runtime.control.session import Session, SessionConfig
from tests.model.helpers import write_checkpoint
from tests.session_support import wait_until

IMAGE = 64
MAX_SHIPPED_BYTES = 50 * 2**20  # issue 4: the shipped model is at most 50 MB


def test_checkpoint_policy_drives_the_sim(tmp_path):
    robot = SimRobot(ConveyorSimConfig(image_height=IMAGE, image_width=IMAGE))
    write_checkpoint(tmp_path / "ckpt", robot)
    session = Session(robot, build_policy(tmp_path / "ckpt", robot), SessionConfig(fps=15, max_step_per_tick=0.05))
    session.start()
    try:
        session.submit(RunPolicy("pick up the red block and put it in the bin"))
        snap = wait_until(lambda s: s.action_source == "policy", session, timeout_s=60)
        assert snap.inference_ms is not None and snap.inference_ms > 0
        moved = [wait_until(lambda s, t=t: s.tick > snap.tick + t, session, timeout_s=30).action for t in (1, 2)]
        for before, after in zip(moved, moved[1:]):
            assert all(abs(after[k] - before[k]) <= 0.05 + 1e-9 for k in after)
        assert all(math.isfinite(v) for v in snap.action.values())
        assert session.last_inference.output.actions.shape[1] == len(robot.action_features)
        assert np.isfinite(session.last_inference.output.actions).all()
    finally:
        session.close()
    assert session.loop_error is None


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        build_policy(tmp_path / "nothing_here", SimRobot(ConveyorSimConfig(image_height=IMAGE, image_width=IMAGE)))


def test_the_console_runs_the_shipped_model_by_default():
    args = parse_args([])
    assert args.policy == "model" and args.checkpoint == SHIPPED_CHECKPOINT
    policy = build_policy(args.checkpoint, SimRobot(ConveyorSimConfig()))
    assert isinstance(policy, InternVLAPolicy) and policy.config.name == "tiny"
    shipped = sum(f.stat().st_size for f in SHIPPED_CHECKPOINT.iterdir())
    assert shipped <= MAX_SHIPPED_BYTES
    assert {"MODEL_CARD.md", "stats.json", "config.json", "model.safetensors"} <= {f.name for f in SHIPPED_CHECKPOINT.iterdir()}


def test_a_checkpoint_for_another_robot_is_refused_with_the_differences(tmp_path):
    robot = SimRobot(ConveyorSimConfig(image_height=IMAGE, image_width=IMAGE))
    write_checkpoint(tmp_path / "ckpt", robot)
    layout = {"robot_type": "koch_follower", "cameras": ["top"], "state_keys": ["a.pos"], "action_keys": ["a.pos"]}
    (tmp_path / "ckpt" / TRAIN_CONFIG_FILE).write_text(json.dumps({"dataset": layout}))
    with pytest.raises(CheckpointError, match="another robot layout") as err:
        build_policy(tmp_path / "ckpt", robot)
    assert all(name in str(err.value) for name in layout)


def test_the_shipped_model_in_its_own_process_answers_as_in_the_console_process():
    from app import build_live_policy
    from robot_io.devices.robot import camera_keys
    from runtime.control.policy_process import PolicyProcess, PolicyProcessConfig

    assert parse_args([]).process == PolicyProcessConfig()  # its own process unless told
    assert parse_args(["--no-policy-process"]).process is None
    assert parse_args(["--policy-threads", "2"]).process == PolicyProcessConfig(threads=2)
    robot = SimRobot(ConveyorSimConfig())
    robot.connect()
    try:
        robot.reset_scene(0)
        observation = robot.get_observation()
        instruction = robot.episode.instruction
        local = build_live_policy(SHIPPED_CHECKPOINT, robot, None)
        remote = build_live_policy(SHIPPED_CHECKPOINT, robot, PolicyProcessConfig())
        try:
            assert isinstance(remote, PolicyProcess) and remote.foresight_horizon == local.foresight_horizon
            assert remote.frame_encoder() is not None  # latent L2 still measured, by the parent's own copy
            here, there = local.infer(observation, instruction), remote.infer(observation, instruction)
            np.testing.assert_allclose(there.actions, here.actions, atol=1e-5)  # same weights, same noise seed
            # the live policy hands its chunk over first; its pictures come from decode_foresight
            assert here.pictures_pending and there.pictures_pending
            here, there = local.decode_foresight(here), remote.decode_foresight(there)
            assert set(there.foresight) == set(here.foresight) == set(camera_keys(robot))
            for camera in here.foresight:
                np.testing.assert_array_equal(there.foresight[camera], here.foresight[camera])
        finally:
            remote.close()
    finally:
        robot.disconnect()
