"""Safety for real arms in the session: step limits from the robot's config, the end-effector
workspace box, the stale-camera lockout, return-to-home within the step clamp, and a robot or
teleop device that stops answering (hold, say which, reconnect)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from robot_io.devices.lerobot_devices import build_devices
from robot_io.sim.conveyor_env import ConveyorSimConfig
from robot_io.sim.sim_robot import SimRobot
from runtime.control.commands import EStop, Mode, Pause, Reconnect, ResetScene, ReturnHome, RunPolicy, TakeOver, TeleopKeys
from runtime.control.safety import WorkspaceBox
from tests.fakes import ConstantPolicy, FakeRobot
from tests.robot_io.devices import config_fake_lerobot  # noqa: F401 - registers the fake LeRobot devices
from tests.robot_io.devices.test_lerobot_devices import parse
from tests.robot_io.devices.test_playback_camera import write_video
from tests.runtime.control.test_operator_control import FakeLeader
from tests.session_support import wait_until

PROMPT = "pick up the red block"
STEP = 0.02
FLOOR_BELOW_HOME_M = 0.03  # the sim test's box floor, under the gripper's start height
BOX_X_HIGH = 0.3  # FkRobot's end effector sits at x = joint 1: the policy's target 0.5 is outside


class FkRobot(FakeRobot):
    """FakeRobot with forward kinematics (end effector at (joint_1, joint_2, 0)), its own step limits
    and a home pose."""

    home_pose = {"joint_1.pos": 0.2, "joint_2.pos": -0.1, "gripper.pos": 0.0}
    max_step = {"joint_2.pos": 0.01}

    def link_positions(self, joints):
        base = np.zeros(3)
        return np.stack([base, np.array([joints.get("joint_1.pos", 0.0), joints.get("joint_2.pos", 0.0), 0.0])])

    def end_effector_path(self, joint_path):
        return np.stack([self.link_positions(j)[-1] for j in joint_path])

    def camera_models(self, joints):
        return {}

    def scene_objects(self):
        return ()


class FreshnessRobot(FakeRobot):
    """FakeRobot whose cameras report frame ages the test sets."""

    def __init__(self) -> None:
        super().__init__()
        self.ages = {"head": 10.0, "wrist": 10.0}

    def frame_ages_ms(self):
        return dict(self.ages)


class FlakyRobot(FakeRobot):
    """FakeRobot whose next send_action raises while `fail_send` is set."""

    fail_send = False

    def send_action(self, action):
        if self.fail_send:
            raise OSError("bus write failed")
        return super().send_action(action)


def steps_of(robot, key):
    values = [command[key] for command in robot.sent]
    return np.abs(np.diff(values))


def test_the_robots_own_step_limits_bound_each_joint(make_session):
    session, _ = make_session(robot=FkRobot(), max_step_per_tick=STEP)
    assert session.safety.max_step == {"joint_1.pos": STEP, "joint_2.pos": 0.01, "gripper.pos": STEP}


def test_a_policy_steering_the_end_effector_out_of_the_box_is_held_and_paused(make_session):
    box = WorkspaceBox((-1.0, -1.0, -1.0), (BOX_X_HIGH, 1.0, 1.0))
    session, robot = make_session(ConstantPolicy(target=0.5, steps=40), robot=FkRobot(), max_step_per_tick=STEP, workspace=box)
    session.submit(RunPolicy(PROMPT))
    held = wait_until(lambda s: s.mode is Mode.PAUSED, session)
    assert "workspace box" in held.last_error
    assert max(command["joint_1.pos"] for command in robot.sent) <= BOX_X_HIGH  # never outside
    assert max(command["joint_1.pos"] for command in robot.sent) > BOX_X_HIGH - STEP  # it did get to the wall


def test_a_robot_without_forward_kinematics_says_the_box_is_not_enforced(make_session):
    session, _ = make_session(workspace=WorkspaceBox((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)))
    wait_until(lambda s: any("Workspace box not enforced" in e for e in s.events), session)


def test_the_sims_forward_kinematics_keep_the_gripper_above_the_box_floor(make_session):
    robot = SimRobot(ConveyorSimConfig(image_height=32, image_width=32))
    robot.connect()
    floor = float(robot.link_positions(robot.home_pose)[-1][2]) - FLOOR_BELOW_HOME_M
    box = WorkspaceBox((-2.0, -2.0, floor), (2.0, 2.0, 2.0))
    session, _ = make_session(robot=robot, fps=15, workspace=box)
    wait_until(lambda s: s.tick > 2, session, timeout_s=60)
    session.submit(TakeOver("tab"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any("workspace box" in e for e in session.snapshot().events):
        session.submit(TeleopKeys(frozenset({"KeyF"}), client="tab"))  # down, as a held key does
        time.sleep(0.02)
    snapshot = wait_until(lambda s: "workspace box" in s.last_error, session, timeout_s=5)
    assert snapshot.mode is Mode.TAKEOVER  # the operator keeps control; the command is held
    history = session.sent_commands
    _, _, commands = history.since(0)
    heights = [robot.link_positions(dict(zip(history.keys, map(float, row))))[-1][2] for row in commands]
    assert min(heights) >= floor - 1e-6


def test_a_stale_camera_holds_pauses_and_is_named(make_session):
    session, robot = make_session(ConstantPolicy(target=0.5, steps=200), robot=FreshnessRobot(), max_step_per_tick=STEP,
                                  stale_frame_ms=100)
    session.submit(RunPolicy(PROMPT))
    wait_until(lambda s: s.action_source == "policy", session)
    robot.ages["wrist"] = 400.0
    held = wait_until(lambda s: s.mode is Mode.PAUSED, session)
    assert held.stale_cameras == ("wrist",) and "'wrist'" in held.last_error and "400 ms" in held.last_error
    session.submit(TakeOver("tab"))
    session.submit(TeleopKeys(frozenset({"KeyW"}), client="tab"))
    later = wait_until(lambda s: s.tick > held.tick + 5, session)
    assert later.action_source == "hold"  # the operator cannot move it on a stale picture either
    robot.ages["wrist"] = 10.0
    wait_until(lambda s: s.stale_cameras == () and any("fresh again" in e for e in s.events), session)


def test_a_camera_that_stops_is_locked_out_through_a_lerobot_robot(make_session, tmp_path):
    args = parse(
        "--robot.type=fake_arm", "--robot.port=/dev/ttyFAKE0", f"--robot.calibration_dir={tmp_path}",
        "--robot.max_relative_target=5", "--robot.max_frame_age_ms=60000",
        f"--robot.cameras={{front: {{type: playback, path: {write_video(tmp_path / 'clip.mp4')}, loop: false}}}}",
        "--camera-map", "head=front",
    )
    robot = build_devices(args, default_robot=FakeRobot()).robot
    session, _ = make_session(robot=robot, stale_frame_ms=150)
    held = wait_until(lambda s: s.stale_cameras == ("head",), session, timeout_s=30)  # the 0.3 s clip ended
    assert "'head'" in held.last_error


def test_return_to_home_moves_within_the_step_clamp_then_idles(make_session):
    session, robot = make_session(ConstantPolicy(target=0.5, steps=10), robot=FkRobot(), max_step_per_tick=STEP)
    wait_until(lambda s: s.tick > 1, session)
    session.submit(RunPolicy(PROMPT))
    wait_until(lambda s: s.action["joint_1.pos"] > 0.45, session)
    session.submit(Pause())
    session.submit(ReturnHome())
    wait_until(lambda s: s.mode is Mode.HOMING, session)
    home = wait_until(lambda s: s.mode is Mode.IDLE, session)
    assert home.action == pytest.approx(FkRobot.home_pose)
    assert any("Home reached" in e for e in home.events)
    assert steps_of(robot, "joint_1.pos").max() <= STEP + 1e-9 and steps_of(robot, "joint_2.pos").max() <= 0.01 + 1e-9


def test_home_without_a_home_pose_is_the_first_ticks_pose_and_estop_interrupts_it(make_session):
    session, robot = make_session(ConstantPolicy(target=0.5, steps=10), max_step_per_tick=STEP)
    session.submit(RunPolicy(PROMPT))
    wait_until(lambda s: s.action["joint_1.pos"] > 0.3, session)
    session.submit(ReturnHome())
    wait_until(lambda s: s.mode is Mode.HOMING, session)
    session.submit(EStop())
    stopped = wait_until(lambda s: s.mode is Mode.ESTOP, session)
    session.submit(ReturnHome())
    refused = wait_until(lambda s: s.tick > stopped.tick + 3, session)
    assert refused.mode is Mode.ESTOP and "E-stop is engaged" in refused.last_error
    session.submit(ResetScene(0))
    session.submit(ReturnHome())
    wait_until(lambda s: s.mode is Mode.IDLE and any("Home reached" in e for e in s.events), session)
    assert any("first tick" in e for e in session.snapshot().events)


def test_a_lerobot_robot_that_disconnects_holds_names_itself_and_reconnects(make_session, tmp_path):
    args = parse(
        "--robot.type=fake_arm", "--robot.port=/dev/ttyFAKE0", f"--robot.calibration_dir={tmp_path}",
        "--robot.max_relative_target=5", "--joint-map", "joint_1.pos=shoulder.pos,joint_2.pos=elbow.pos",
        f"--robot.cameras={{front: {{type: playback, path: {write_video(tmp_path / 'clip.mp4')}}}}}", "--camera-map", "head=front",
    )
    robot = build_devices(args, default_robot=FakeRobot()).robot
    session, _ = make_session(ConstantPolicy(target=50.0, steps=200), robot=robot)
    session.submit(RunPolicy(PROMPT))
    wait_until(lambda s: s.action_source == "policy", session)
    arm = robot.robot
    arm.unplug()
    held = wait_until(lambda s: s.device_fault != "", session)
    assert "fake_arm" in held.device_fault and "get_observation" in held.device_fault and "/dev/ttyFAKE0" in held.device_fault
    assert wait_until(lambda s: s.mode is Mode.PAUSED, session).device_fault
    sent = len(arm.sent)
    session.submit(Reconnect())  # still unplugged: it says so and keeps holding
    wait_until(lambda s: any("Reconnecting robot 'fake_arm' failed" in e for e in s.events), session)
    session.submit(EStop())  # commands still work while the robot is gone
    wait_until(lambda s: s.mode is Mode.ESTOP, session)
    assert len(arm.sent) == sent
    arm.plug()  # its old port handle stays dead: LeRobot could neither disconnect nor connect it
    connects = arm.connects
    session.submit(Reconnect())
    back = wait_until(lambda s: s.device_fault == "" and len(arm.sent) > sent + 2, session)
    assert arm.connects == connects + 1 and any("Reconnected robot 'fake_arm'" in e for e in back.events)
    assert back.action["joint_1.pos"] == pytest.approx(arm.positions["shoulder.pos"])  # holds where it is


def test_a_failing_send_action_holds_too(make_session):
    session, robot = make_session(robot=FlakyRobot())
    wait_until(lambda s: s.tick > 1, session)
    robot.fail_send = True
    held = wait_until(lambda s: "send_action" in s.device_fault, session)
    assert "bus write failed" in held.device_fault
    robot.fail_send = False
    session.submit(Reconnect())
    wait_until(lambda s: s.device_fault == "", session)


def test_a_teleop_device_that_stops_is_named_and_reconnect_tries_it(make_session):
    leader = FakeLeader()
    session, _ = make_session(teleoperator=leader)
    wait_until(lambda s: s.tick > 1, session)
    leader.fail = True
    faulted = wait_until(lambda s: "fake_leader" in s.device_fault, session)
    assert "USB cable unplugged" in faulted.device_fault
    session.submit(Reconnect())
    wait_until(lambda s: any("Reconnected teleoperator 'fake_leader'" in e for e in s.events), session)
    leader.fail = False  # plugged back in: the next reading clears the fault
    wait_until(lambda s: s.device_fault == "" and any("answers again" in e for e in s.events), session)


def test_a_lerobot_gamepad_drives_the_end_effector_like_the_browsers_keys(make_session, tmp_path):
    args = parse("--teleop.type=fake_gamepad", f"--teleop.calibration_dir={tmp_path}")
    devices = build_devices(args, default_robot=FakeRobot())
    session, robot = make_session(teleoperator=devices.teleoperator, robot=devices.robot, max_step_per_tick=STEP)
    wait_until(lambda s: s.tick > 1, session)
    devices.teleoperator.teleop.action = {"delta_x": 1.0, "delta_y": 0.0, "delta_z": 0.0, "gripper": 0}
    moved = wait_until(lambda s: s.action["joint_1.pos"] > 0.02, session)  # the stick takes over and x moves joint 1
    assert moved.mode is Mode.TAKEOVER and moved.controller == "teleop-device"
    wait_until(lambda s: s.action["gripper.pos"] == 1.0, session)  # 0 = close


def test_reconnect_with_nothing_to_reconnect_says_so(make_session):
    session, _ = make_session()
    session.submit(Reconnect())
    wait_until(lambda s: any("Nothing to reconnect" in e for e in s.events), session)


def test_session_config_checks_the_new_fields():
    from runtime.control.session import SessionConfig

    with pytest.raises(ValueError, match="stale_frame_ms"):
        SessionConfig(stale_frame_ms=0)
    with pytest.raises(TypeError, match="workspace"):
        SessionConfig(workspace=(0, 0, 0, 1, 1, 1))
