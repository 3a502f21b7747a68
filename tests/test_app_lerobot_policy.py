"""--lerobot-policy: an ACT that lerobot-train learned from sim demonstrations drives the sim through
the console's own session (its own policy process, 15 Hz), with plans on the page and in Rerun,
takeover and recording; a checkpoint for another robot stops the start with both lists."""

import dataclasses
import json
import math
import multiprocessing
import os
import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app import build_checkpoint_policy, main, open_console, parse_args
from robot_io.datasets.schema import ACTION_SOURCE_KEY, ACTION_SOURCES, CHUNK_KEY, SOURCE_OPERATOR, SOURCE_POLICY
from runtime.control.commands import Mode, RunPolicy, StartRecording, StopRecording, TakeOver, TeleopKeys
from runtime.control.foresight_reckoning import NO_FORESIGHT_MESSAGE
from tests.browser_support import free_port
from tests.lerobot_training import CHUNK, IMAGE
from tests.runtime.rerun.test_logger import planned_path_points
from tests.session_support import wait_for_json, wait_until

INSTRUCTION = "pick up the red block and put it in the bin"
FPS = 15
POLICY_TICKS = 60  # four seconds of the policy driving
STARVED_CHILD_SLOTS = 8 * FPS  # eight seconds of frames
pytestmark = pytest.mark.filterwarnings("ignore:RRD file has no footer")


def console_args(checkpoint, tmp_path, *more):
    args = parse_args(["--lerobot-policy", str(checkpoint), "--image-size", str(IMAGE), "--fps", str(FPS),
                       "--record-to", str(tmp_path / "recorded"), "--rerun-port", str(free_port()),
                       "--rerun-dir", str(tmp_path / "rrd"), "--audit-log", str(tmp_path / "audit.jsonl"), *more])
    # The shared CI cores can starve the policy's child for seconds at a time: a longer frame ring than
    # the console's 2 s keeps its frames until it catches up (what is judged here is the policy path).
    if args.process is not None:
        args.process = dataclasses.replace(args.process, slots=STARVED_CHILD_SLOTS)
    return args


def test_the_lerobot_act_drives_the_sim_through_the_console_session(lerobot_act, tmp_path):
    console = open_console(console_args(lerobot_act.checkpoint, tmp_path))
    session, robot = console.session, console.session.robot
    assert session.policy_label == str(lerobot_act.checkpoint)
    assert "policy-pretrained_model" in [child.name for child in multiprocessing.active_children()]  # its own process
    console.start()
    try:
        client = TestClient(console.app())  # the page is built before the policy runs, as app.py does
        session.submit(StartRecording())
        session.submit(RunPolicy(INSTRUCTION))
        first = wait_until(lambda s: (s.action_source == SOURCE_POLICY and s.recording.active) or s.last_error,
                           session, timeout_s=120)
        assert first.last_error == ""
        last = wait_until(lambda s: s.tick >= first.tick + POLICY_TICKS, session, timeout_s=30)
        assert last.mode is Mode.RUNNING and last.last_error == ""

        # Every tick while it drives carries a policy command: the next chunk is always there in time
        # (it thinks in its own process while the loop runs on). The loop's rate and missed ticks are
        # figures of bench.bench_lerobot_policy, not asserted here.
        ticks, sources, commands = session.sent_commands.since(first.tick)
        assert ticks == list(range(first.tick, ticks[-1] + 1)) and ticks[-1] >= last.tick
        assert set(sources) == {SOURCE_POLICY} and np.isfinite(commands).all()
        # chunks are scheduled one after another, each the whole ACT chunk after the observation's tick
        assert last.chunk_id >= first.chunk_id + 3 and len(last.chunk.actions) == CHUNK - 1
        raw = session.last_inference.output.actions
        assert raw.shape == (CHUNK, len(robot.action_features)) and np.isfinite(raw).all()
        # the commands move the arm, within its limits
        assert any(abs(last.state[k] - first.state[k]) > 1e-3 for k in robot.action_features)
        for key, (low, high) in robot.joint_limits.items():
            assert math.isfinite(last.action[key]) and low <= last.action[key] <= high
        # the page: the plan chart and the foresight panel, which says there is no foresight
        plan = client.get("/api/plan").json()
        assert plan["chunk"] is not None and plan["keys"] == list(robot.action_features)
        foresight = wait_for_json(client, "/api/foresight", lambda f: f["available"] is False)
        assert foresight["message"] == NO_FORESIGHT_MESSAGE

        counts = planned_path_points(console.rerun.save(), "/world/plan/current")
        assert counts and set(counts) == {CHUNK - 1}  # the chunk's planned path in Rerun

        session.submit(TakeOver())
        session.submit(TeleopKeys(frozenset({"KeyR"})))
        wait_until(lambda s: s.action_source == SOURCE_OPERATOR and s.recording.episode_frames > 0, session, timeout_s=10)
        session.submit(StopRecording("failure"))
        wait_until(lambda s: s.recording.saved_episodes == 1 and s.recording.backlog == 0, session, timeout_s=60)
    finally:
        console.close()
    assert session.loop_error is None

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    os.environ["HF_HUB_OFFLINE"] = "1"
    dataset = LeRobotDataset("local/recorded", root=tmp_path / "recorded")
    actors = dataset.hf_dataset[ACTION_SOURCE_KEY]
    sources = {ACTION_SOURCES[int(code)] for code in actors}
    assert {SOURCE_POLICY, SOURCE_OPERATOR} <= sources
    assert max(int(c) for c in dataset.hf_dataset[CHUNK_KEY]) >= first.chunk_id


def test_a_lerobot_checkpoint_for_another_robot_stops_the_start_with_both_lists(lerobot_act, tmp_path, capsys):
    folder = shutil.copytree(lerobot_act.checkpoint, tmp_path / "other_robot")
    config = json.loads((folder / "config.json").read_text())
    config["input_features"]["observation.images.front"] = config["input_features"].pop("observation.images.head")
    (folder / "config.json").write_text(json.dumps(config))
    args = ["--lerobot-policy", str(folder), "--image-size", str(IMAGE), "--no-record", "--no-rerun",
            "--audit-log", str(tmp_path / "audit.jsonl")]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert "cameras ['front'] are missing" in error and "the robot has ['head', 'wrist', 'side']" in error


def test_the_lerobot_policy_flag_is_parsed_and_excludes_a_policy_url(tmp_path, capsys):
    args = parse_args(["--lerobot-policy", str(tmp_path)])
    assert args.lerobot_policy == tmp_path and parse_args([]).lerobot_policy is None
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--lerobot-policy", str(tmp_path), "--policy-url", "ws://127.0.0.1:1"])
    assert exit_.value.code == 2 and "give one" in capsys.readouterr().err
    assert main(["--lerobot-policy", str(tmp_path), "--no-record", "--no-rerun",
                 "--audit-log", str(tmp_path / "audit.jsonl")]) == 2
    assert "is not a LeRobot checkpoint folder" in capsys.readouterr().err


def test_the_model_panel_lists_and_loads_lerobot_checkpoints(lerobot_act, tmp_path):
    from robot_io.lerobot_policy import LeRobotPolicy
    from robot_io.sim.conveyor_env import ConveyorSimConfig
    from robot_io.sim.sim_robot import SimRobot
    from runtime.control.checkpoint_loader import CheckpointLoader

    args = console_args(lerobot_act.checkpoint, tmp_path, "--checkpoint-root", str(lerobot_act.output_dir),
                        "--no-rerun", "--no-policy-process", "--no-record")
    console = open_console(args)
    try:
        assert isinstance(console.checkpoints, CheckpointLoader)
        assert lerobot_act.checkpoint.resolve() in console.checkpoints.checkpoints()
    finally:
        console.close()
    robot = SimRobot(ConveyorSimConfig(image_height=IMAGE, image_width=IMAGE))
    assert isinstance(build_checkpoint_policy(lerobot_act.checkpoint, robot, None), LeRobotPolicy)
