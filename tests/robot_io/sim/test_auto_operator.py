"""The sim's automatic operator: it watches without moving, then takes over when the target is
about to leave the arm's reach or has stayed in it unpicked, recovers to where the scripted expert
lines up, and drives the scripted expert's commands."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import pytest

from itertools import groupby

from robot_io.sim import scene
from robot_io.sim.auto_operator import LIFTED_Z, AutoOperator, AutoOperatorConfig
from robot_io.sim.scripted_expert import ScriptedExpert
from robot_io.sim.conveyor_env import ConveyorSimConfig
from robot_io.sim.sim_robot import SimRobot


def belt_robot(speed: float):
    robot = SimRobot(ConveyorSimConfig(cameras=(), belt_speed_range=(speed, speed)))
    robot.connect()
    return robot


@pytest.fixture
def robot():
    robot = belt_robot(0.15)
    yield robot
    robot.disconnect()


def hold(robot):
    """Advance one tick with the arm holding its command."""
    observation = robot.get_observation()
    robot.send_action({k: observation[k] for k in robot.action_features})


def test_watches_still_then_takes_over_before_the_target_leaves_reach(robot):
    robot.reset_scene(3)
    operator = AutoOperator(robot, AutoOperatorConfig(catch_margin_s=2.0))
    first = operator.get_action()
    readings = []
    for _ in range(robot.config.max_ticks):
        reading = operator.get_action()
        readings.append(reading)
        if operator.reason:
            break
        hold(robot)
    assert operator.reason_kind == "missed" and "leaving the arm's reach" in operator.reason
    assert all(r == first for r in readings[:-1])  # watching: the same rest reading every tick
    assert readings[-1] != first  # taking over: the expert's command, a jump the session sees
    state = robot.env.state()
    time_left = (0.40 - state.block_positions[state.target_index, 0]) / state.belt_speed
    assert 1.5 < time_left < 2.0  # it leaves the expert its catch margin

    # The expert's commands, followed, pick the target and bin it.
    for _ in range(robot.config.max_ticks):
        robot.get_observation()
        robot.send_action(operator.get_action())
        if robot.is_success():
            break
    assert robot.is_success()

    robot.reset_scene(4)  # a new scene: watching again
    operator.get_action()
    assert operator.reason == "" and operator.reason_kind == ""


def test_on_a_slow_belt_it_takes_over_once_the_target_has_been_in_reach_too_long():
    # At 0.03 m/s the target stays in reach (0.8 m) longer than an episode: "missed" never comes.
    robot = belt_robot(0.03)
    try:
        robot.reset_scene(3)
        state = robot.env.state()
        reach_start = AutoOperator(robot)._expert.config.reach_x_range[0]
        in_reach_at = max(0.0, (reach_start - state.block_positions[state.target_index, 0]) / state.belt_speed)
        operator = AutoOperator(robot, AutoOperatorConfig(fumble_s=3.0))
        for _ in range(robot.config.max_ticks):
            operator.get_action()
            if operator.reason:
                break
            hold(robot)
        assert operator.reason_kind == "fumbled" and "within the arm's reach 3 s" in operator.reason
        assert 3.0 < robot.env.state().time - in_reach_at <= 3.0 + 2 * state.control_period

        # Turned off, the same scene runs to its time limit without a takeover.
        robot.reset_scene(3)
        patient = AutoOperator(robot, AutoOperatorConfig(fumble_s=None))
        for _ in range(robot.config.max_ticks):
            patient.get_action()
            hold(robot)
        assert patient.reason == ""
    finally:
        robot.disconnect()


def test_after_a_wrong_block_it_lets_go_rises_lines_up_then_corrects(robot):
    # The scripted expert, told the wrong colour, drives until the operator takes over.
    robot.reset_scene(3)
    state = robot.env.state()
    wrong = next(c for i, c in enumerate(state.block_colors) if i != state.target_index)
    misled, operator = ScriptedExpert(), AutoOperator(robot)
    segments, grippers, heights = [], [], []
    for _ in range(robot.config.max_ticks):
        observation = robot.get_observation()
        command = operator.get_action()
        if not operator.reason:
            command = dict(zip(robot.action_features, map(float, misled.infer(observation, f"pick the {wrong} block").actions[0])))
        state = robot.env.state()
        segments.append(operator.intervention_segment())
        grippers.append(state.gripper)
        heights.append(float(state.ee_position[2]))
        robot.send_action(command)
        if robot.is_success():
            break
    assert operator.reason_kind == "wrong_block"
    runs = [(segment, len(list(ticks))) for segment, ticks in groupby(segments)]
    assert [segment for segment, _ in runs] == ["none", "recovery", "correction"]  # once each, in that order
    recovery = range(runs[0][1], runs[0][1] + runs[1][1])
    assert grippers[recovery[0]] > 0.5 and grippers[recovery[-1]] < 0.15  # it let go of the wrong block...
    expert = ScriptedExpert().config
    approach = scene.BLOCK_REST_Z + expert.grasp_height + expert.hover_height  # the height the expert lines up at
    assert heights[recovery[-1]] > heights[recovery[0]] and heights[recovery[-1]] == pytest.approx(approach, abs=0.01)
    assert robot.is_success() and robot.env.blocks_in_bin() == (state.block_colors[state.target_index],)


def test_holding_the_target_it_corrects_without_recovering(robot):
    robot.reset_scene(3)
    operator = AutoOperator(robot, AutoOperatorConfig(deliver_s=0.5))
    expert = ScriptedExpert()
    segments, command = [], None
    for _ in range(robot.config.max_ticks):
        observation = robot.get_observation()
        operator.get_action()
        segments.append(operator.intervention_segment())
        if operator.reason:
            break
        state = robot.env.state()
        if command is None or state.block_positions[state.target_index, 2] <= LIFTED_Z:  # it stalls once it lifted the target
            command = dict(zip(robot.action_features, map(float, expert.infer(observation, robot.episode.instruction).actions[0])))
        robot.send_action(command)
    assert operator.reason_kind == "stalled" and segments[-1] == "correction" and "recovery" not in segments


def test_config_is_checked():
    with pytest.raises(ValueError, match="must be > 0"):
        AutoOperatorConfig(catch_margin_s=0)
    with pytest.raises(ValueError, match="must be > 0"):
        AutoOperatorConfig(fumble_s=0)
    with pytest.raises(ValueError, match="recovery_tolerance > 0"):
        AutoOperatorConfig(recovery_tolerance=0)
