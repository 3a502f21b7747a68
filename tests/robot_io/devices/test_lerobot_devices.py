"""LeRobot devices from a config file or LeRobot-style flags, built through LeRobot's own registries
and factories: fake devices registered as real ones are (tests/robot_io/devices/config_fake_lerobot.py),
with playback cameras, behind our thin adapters."""

from __future__ import annotations

import argparse
import importlib.util
import json

import numpy as np
import pytest
from lerobot.cameras import CameraConfig
from lerobot.robots import RobotConfig
from lerobot.teleoperators import TeleoperatorConfig

from robot_io.devices.lerobot_adapters import LeRobotCartesianTeleoperator, LeRobotRobot, LeRobotTeleoperator
from robot_io.devices.device_flags import add_device_arguments, device_request
from robot_io.devices.lerobot_devices import DeviceError, DeviceRequest, build_devices, load_lerobot_registry
from robot_io.devices.robot import CameraFreshness, HasHomePose, HasJointLimits, HasStepLimits, camera_keys, state_keys
from tests.fakes import FakeRobot
from tests.robot_io.devices import config_fake_lerobot  # noqa: F401 - registers the fake devices
from tests.robot_io.devices.fake_lerobot import ELBOW_RANGE, STEPS_PER_TURN, FakeArm, FakeGamepad, FakeLeader
from tests.robot_io.devices.test_playback_camera import write_video

SIM = FakeRobot()  # stands in for the simulation (the default robot); it has end-effector control


def parse(*argv: str) -> DeviceRequest:
    """The console's own device arguments, as app.parse_args reads them."""
    parser = argparse.ArgumentParser()
    add_device_arguments(parser)
    args, leftovers = parser.parse_known_args(argv)
    return device_request(parser, args, leftovers)


@pytest.fixture
def devices_file(tmp_path):
    """write(**overrides) -> a YAML devices file for the fake arm with two playback cameras."""
    video = write_video(tmp_path / "clip.mp4")

    def write(suffix: str = ".yaml", **overrides) -> str:
        config = {
            "robot": {"type": "fake_arm", "port": "/dev/ttyFAKE0", "calibration_dir": str(tmp_path / "calibration"),
                      "max_relative_target": 5.0,
                      "cameras": {"front": {"type": "playback", "path": str(video)},
                                  "gripper": {"type": "playback", "path": str(video), "width": 32, "height": 24}}},
            **overrides,
        }
        path = tmp_path / f"devices{suffix}"
        # JSON is valid YAML: one writer serves both formats.
        path.write_text(json.dumps(config))
        return str(path)

    return write


def close(devices) -> None:
    devices.robot.disconnect()


def test_lerobots_registry_is_loaded_whole_with_ours():
    load_lerobot_registry()
    robots, teleops, cameras = (set(c.get_known_choices()) for c in (RobotConfig, TeleoperatorConfig, CameraConfig))
    assert {"so100_follower", "so101_follower", "koch_follower", "bi_so_follower", "fake_arm"} <= robots
    assert {"so101_leader", "koch_leader", "gamepad", "keyboard", "fake_leader"} <= teleops
    assert {"opencv", "intelrealsense", "playback"} <= cameras


def test_no_device_arguments_keep_the_simulation():
    devices = build_devices(parse(), default_robot=SIM)
    assert devices.robot is SIM and devices.teleoperator is None


def test_a_devices_file_builds_the_robot_through_lerobots_factory_with_the_models_names(devices_file):
    devices = build_devices(parse("--devices", devices_file(), "--camera-map", "head=front,wrist=gripper",
                                  "--joint-map", "joint_1.pos=shoulder.pos"), default_robot=SIM)
    robot = devices.robot
    try:
        assert isinstance(robot, LeRobotRobot) and isinstance(robot.robot, FakeArm) and robot.is_connected
        assert robot.name == "fake_arm"
        assert camera_keys(robot) == ["head", "wrist"] and state_keys(robot) == ["joint_1.pos", "elbow.pos", "gripper.pos"]
        assert robot.observation_features["wrist"] == (24, 32, 3)
        observation = robot.get_observation()
        assert observation["head"].shape == (48, 64, 3) and observation["wrist"].shape == (24, 32, 3)
        sent = robot.send_action({"joint_1.pos": 1.0, "elbow.pos": 2.0, "gripper.pos": 3.0})
        assert sent == {"joint_1.pos": 1.0, "elbow.pos": 2.0, "gripper.pos": 3.0}
        assert robot.robot.positions == {"shoulder.pos": 1.0, "elbow.pos": 2.0, "gripper.pos": 3.0}
        assert isinstance(robot, CameraFreshness)
        assert all(age is not None and age >= 0 for age in robot.frame_ages_ms().values())
        assert set(robot.frame_ages_ms()) == {"head", "wrist"}
    finally:
        close(devices)


def test_safety_comes_from_the_robots_own_config(devices_file):
    devices = build_devices(parse("--devices", devices_file()), default_robot=SIM)
    robot = devices.robot
    try:
        assert isinstance(robot, HasJointLimits) and isinstance(robot, HasStepLimits) and isinstance(robot, HasHomePose)
        half_range = (ELBOW_RANGE[1] - ELBOW_RANGE[0]) / 2 * 360 / (STEPS_PER_TURN - 1)  # calibrated range, in degrees
        assert robot.joint_limits["shoulder.pos"] == (-100.0, 100.0)  # MotorNormMode.RANGE_M100_100
        assert robot.joint_limits["gripper.pos"] == (0.0, 100.0)  # RANGE_0_100
        assert robot.joint_limits["elbow.pos"] == pytest.approx((-half_range, half_range))
        assert robot.max_step == dict.fromkeys(["shoulder.pos", "elbow.pos", "gripper.pos"], 5.0)  # max_relative_target
        assert robot.home_pose is None  # none configured: the session takes the first tick's pose
    finally:
        close(devices)


def test_limits_in_degrees_come_from_a_calibration_made_at_connect_else_a_note_says_they_are_unknown(devices_file):
    devices = build_devices(parse("--devices", devices_file(), "--robot.calibrated=false"), default_robot=SIM)
    try:
        assert "elbow.pos" in devices.robot.joint_limits and devices.notes == ()
    finally:
        close(devices)
    path = devices_file(calibrate=False)
    devices = build_devices(parse("--devices", path, "--robot.calibrated=false"), default_robot=SIM)
    try:
        assert "elbow.pos" not in devices.robot.joint_limits
        assert any("No joint limits known for ['elbow.pos']" in note for note in devices.notes)
    finally:
        close(devices)


def test_the_file_overrides_and_per_motor_targets(devices_file):
    path = devices_file(".json", joint_limits={"elbow.pos": [-30, 30]}, max_step={"gripper.pos": 10},
                        home={"shoulder.pos": 0, "elbow.pos": 45, "gripper.pos": 0})
    devices = build_devices(parse("--devices", path, "--robot.max_relative_target={shoulder: 1, elbow: 2, gripper: 3}"),
                            default_robot=SIM)
    robot = devices.robot
    try:
        assert robot.joint_limits["elbow.pos"] == (-30, 30)
        assert robot.max_step == {"shoulder.pos": 1.0, "elbow.pos": 2.0, "gripper.pos": 10.0}  # flag, then the file's max_step
        assert robot.home_pose == {"shoulder.pos": 0, "elbow.pos": 45, "gripper.pos": 0}
    finally:
        close(devices)


def test_lerobot_style_flags_alone_build_the_robot(tmp_path):
    video = write_video(tmp_path / "clip.mp4")
    devices = build_devices(parse(
        "--robot.type=fake_arm", "--robot.port", "/dev/ttyFAKE1", f"--robot.calibration_dir={tmp_path}",
        "--robot.max_relative_target=2", f"--robot.cameras={{top: {{type: playback, path: {video}}}}}",
    ), default_robot=SIM)
    try:
        assert devices.robot.robot.config.port == "/dev/ttyFAKE1" and camera_keys(devices.robot) == ["top"]
    finally:
        close(devices)


def test_a_camera_map_naming_a_camera_the_robot_lacks_is_refused_with_both_lists(devices_file):
    with pytest.raises(ValueError, match="lacks") as err:
        build_devices(parse("--devices", devices_file(), "--camera-map", "head=front,wrist=left_wrist"), default_robot=SIM)
    message = str(err.value)
    assert "['left_wrist']" in message and "['front', 'gripper']" in message


def test_a_joint_map_naming_a_joint_the_robot_lacks_is_refused_with_both_lists(devices_file):
    with pytest.raises(ValueError, match="lacks") as err:
        build_devices(parse("--devices", devices_file(), "--joint-map", "joint_1.pos=wrist.pos"), default_robot=SIM)
    assert "['wrist.pos']" in str(err.value) and "shoulder.pos" in str(err.value)


def test_a_map_renaming_onto_a_name_the_robot_keeps_is_refused(devices_file):
    with pytest.raises(ValueError, match="already has"):
        build_devices(parse("--devices", devices_file(), "--camera-map", "front=gripper"), default_robot=SIM)


def test_a_robot_without_a_step_limit_is_refused(devices_file):
    with pytest.raises(DeviceError, match=r"no maximum step per tick for \['shoulder.pos', 'elbow.pos', 'gripper.pos'\].*max_relative_target"):
        build_devices(parse("--devices", devices_file(), "--robot.max_relative_target=null"), default_robot=SIM)


def test_a_robot_that_cannot_connect_is_refused_with_the_reason(devices_file, monkeypatch):
    def unplugged(self, calibrate=True):
        raise ConnectionError(f"could not open port {self.config.port}")

    monkeypatch.setattr(FakeArm, "connect", unplugged)  # as a real arm with no adapter on its port
    with pytest.raises(DeviceError, match="cannot connect robot 'fake_arm'.*/dev/ttyFAKE0"):
        build_devices(parse("--devices", devices_file()), default_robot=SIM)


@pytest.mark.parametrize(("argv", "message"), [
    (["--robot.type=no_such_robot"], "invalid choice: 'no_such_robot'.*so101_follower"),
    (["--robot.type=fake_arm"], "port"),
    (["--robot.type=fake_arm", "--robot.port=x", "--robot.prot=y"], "unrecognized arguments: --robot.prot=y"),
    (["--devices", "/nonexistent/devices.yaml"], "no devices file at /nonexistent/devices.yaml"),
    (["--camera-map", "head=front"], "give the robot too"),
    (["--camera-map", "head"], "camera mapping: expected model_camera=robot_camera pairs"),
])
def test_bad_device_arguments_get_a_clear_error(argv, message):
    with pytest.raises(ValueError, match=message):
        build_devices(parse(*argv), default_robot=SIM)


def test_other_unknown_arguments_stay_errors():
    with pytest.raises(SystemExit):
        parse("--robt.type=fake_arm")


@pytest.mark.skipif(importlib.util.find_spec("scservo_sdk") is not None, reason="feetech's SDK is installed here")
def test_a_real_so101_without_its_motor_sdk_names_the_missing_package(tmp_path):
    with pytest.raises(DeviceError, match="feetech-servo-sdk"):
        build_devices(parse("--robot.type=so101_follower", "--robot.port=/dev/ttyACM0", f"--robot.calibration_dir={tmp_path}"),
                      default_robot=SIM)


def test_a_leader_arm_is_mapped_like_the_robot(devices_file, tmp_path):
    teleop = {"type": "fake_leader", "port": "/dev/ttyFAKE2", "calibration_dir": str(tmp_path / "calibration")}
    devices = build_devices(parse("--devices", devices_file(teleop=teleop), "--joint-map", "joint_1.pos=shoulder.pos"),
                            default_robot=SIM)
    try:
        leader = devices.teleoperator
        assert isinstance(leader, LeRobotTeleoperator) and isinstance(leader.teleop, FakeLeader) and leader.is_connected
        leader.teleop.positions["shoulder.pos"] = 12.0
        assert leader.get_action()["joint_1.pos"] == 12.0
        assert set(leader.action_features) <= set(devices.robot.action_features)
    finally:
        close(devices)


def test_a_leader_arm_whose_joints_the_robot_lacks_is_refused(tmp_path):
    with pytest.raises(DeviceError, match=r"gives \['shoulder.pos', 'elbow.pos'.*joint_map"):
        build_devices(parse("--teleop.type=fake_leader", "--teleop.port=/dev/ttyFAKE2", f"--teleop.calibration_dir={tmp_path}"),
                      default_robot=SIM)


def test_a_gamepad_drives_the_end_effector_of_a_robot_that_has_one(tmp_path):
    devices = build_devices(parse("--teleop.type=fake_gamepad", f"--teleop.calibration_dir={tmp_path}"), default_robot=SIM)
    gamepad = devices.teleoperator
    assert devices.robot is SIM and isinstance(gamepad, LeRobotCartesianTeleoperator) and isinstance(gamepad.teleop, FakeGamepad)
    gamepad.teleop.action = {"delta_x": 0.5, "delta_y": -2.0, "delta_z": 0.0, "gripper": 0}
    motion = gamepad.get_motion()
    assert np.allclose(motion.axes, (0.5, -1.0, 0.0)) and motion.gripper_closed is True  # clipped to [-1, 1]; 0 = close
    gamepad.teleop.action["gripper"] = 1
    assert gamepad.get_motion().gripper_closed is None  # 1 = stay


def test_a_gamepad_for_a_robot_without_end_effector_control_is_refused(devices_file, tmp_path):
    teleop = {"type": "fake_gamepad", "calibration_dir": str(tmp_path / "calibration")}
    with pytest.raises(DeviceError, match="no end-effector control"):
        build_devices(parse("--devices", devices_file(teleop=teleop)), default_robot=SIM)


def test_a_teleoperator_giving_neither_joints_nor_deltas_is_refused(tmp_path):
    with pytest.raises(DeviceError, match="neither joint positions nor end-effector deltas"):
        build_devices(parse("--teleop.type=fake_gamepad", "--teleop.raw_keys=true", f"--teleop.calibration_dir={tmp_path}"),
                      default_robot=SIM)
