"""The instruction probe: a policy that does what it is told scores 100%, one that always picks
the same colour scores only the probes that named that colour."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import pytest

from robot_io.sim.conveyor_env import ConveyorSimConfig
from robot_io.sim.instruction_probe import format_probe, probe_instructions
from robot_io.sim.scripted_expert import ScriptedExpert, ScriptedExpertConfig
from robot_io.sim.sim_robot import SIM_STATE_KEY, SimRobot

SEEDS = [0, 1, 2, 3]


class AlwaysRed(ScriptedExpert):
    """Ignores the words: plans for the red block whatever it is told."""

    def infer(self, observation, instruction):
        return super().infer(observation, "pick up the red block and put it in the bin")


@pytest.fixture
def robot():
    robot = SimRobot(ConveyorSimConfig(cameras=()))
    robot.connect()
    yield robot
    robot.disconnect()


def test_a_policy_that_follows_the_words_is_always_nearest_the_named_plan(robot):
    result = probe_instructions(robot, ScriptedExpert(ScriptedExpertConfig(chunk_steps=50)), SEEDS)
    assert result["named_nearest"] == result["probes"] > len(SEEDS)
    assert result["chance_share"] < 1
    assert "100%" in format_probe(result)


def test_an_instruction_blind_policy_scores_only_the_probes_naming_its_colour(robot):
    red_scenes = []
    for seed in SEEDS:
        robot.reset_scene(seed)
        red_scenes.append("red" in robot.get_observation()[SIM_STATE_KEY].block_colors)
    assert any(red_scenes), "the seeds must put a red block on some belt"
    result = probe_instructions(robot, AlwaysRed(ScriptedExpertConfig(chunk_steps=50)), SEEDS)
    assert result["named_nearest"] == sum(red_scenes)
    assert result["named_nearest_share"] == pytest.approx(sum(red_scenes) / result["probes"])


def test_a_plan_shorter_than_the_probe_is_refused(robot):
    with pytest.raises(ValueError, match="plans 10 steps"):
        probe_instructions(robot, ScriptedExpert(ScriptedExpertConfig(chunk_steps=10)), SEEDS[:1])
