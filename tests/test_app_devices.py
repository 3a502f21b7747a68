"""app.py's device options: LeRobot-style flags reach the device builder through the console's own
argument parser; anything else unknown stays an error."""

import pytest

from app import parse_args
from robot_io.devices.lerobot_adapters import LeRobotRobot
from robot_io.devices.lerobot_devices import build_devices
from tests.fakes import FakeRobot
from tests.robot_io.devices import config_fake_lerobot  # noqa: F401 - registers the fake LeRobot devices
from tests.robot_io.devices.test_playback_camera import write_video


def test_lerobot_flags_and_maps_reach_the_device_builder(tmp_path):
    video = write_video(tmp_path / "clip.mp4")
    args = parse_args(["--no-record", "--robot.type=fake_arm", "--robot.port", "/dev/ttyFAKE0",
                       f"--robot.calibration_dir={tmp_path}", "--robot.max_relative_target=5",
                       f"--robot.cameras={{front: {{type: playback, path: {video}}}}}", "--camera-map", "head=front",
                       "--workspace=-1,-1,0,1,1,1"])
    assert args.no_record and args.workspace == "-1,-1,0,1,1,1"
    robot = build_devices(args.device_request, default_robot=FakeRobot()).robot
    try:
        assert isinstance(robot, LeRobotRobot) and "head" in robot.observation_features
    finally:
        robot.disconnect()


def test_no_device_flags_keep_the_simulation_and_typos_are_errors():
    sim = FakeRobot()
    assert build_devices(parse_args([]).device_request, default_robot=sim).robot is sim
    with pytest.raises(SystemExit):
        parse_args(["--recod-to", "x"])
