"""A planned chunk drawn over the sim's camera frames: where the path starts and how it scales."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import cv2
import numpy as np
import pytest

from robot_io.sim.conveyor_env import ConveyorSimConfig
from robot_io.sim.scripted_expert import ScriptedExpert
from robot_io.sim.sim_robot import SimRobot
from runtime.control.plan_overlay import END_RGB, PATH_RGB, START_RGB, draw_plan, plan_overlays, plan_path


@pytest.fixture(scope="module")
def scene():
    robot = SimRobot(ConveyorSimConfig())
    robot.connect()
    robot.reset_scene(3)
    observation = robot.get_observation()
    actions = ScriptedExpert().infer(observation, robot.episode.instruction).actions  # (10, 7): toward the block
    keys = list(robot.action_features)
    joints = {k: observation[k] for k in keys}
    yield robot, observation, keys, actions, joints
    robot.disconnect()


def near(image, xy, colour, radius=1):
    x, y = int(round(xy[0])), int(round(xy[1]))
    patch = image[y - radius : y + radius + 1, x - radius : x + radius + 1].reshape(-1, 3).astype(int)
    return np.abs(patch - np.array(colour)).sum(axis=1).min() < 60


def test_the_plan_starts_and_ends_where_its_end_effector_projects(scene):
    robot, observation, keys, actions, joints = scene
    frames = {c: observation[c] for c in ("head", "side")}
    originals = {c: f.copy() for c, f in frames.items()}
    drawn = plan_overlays(robot, keys, actions, joints, frames)
    assert all(np.array_equal(frames[c], originals[c]) for c in frames)  # drawn on copies
    assert set(drawn) == {"head", "side"}
    path = plan_path(robot, keys, actions)  # (10, 3)
    assert path.shape == (len(actions), 3)
    camera = robot.camera_models(joints)["head"]
    pixels, in_front = camera.project(path)
    assert in_front.all()
    assert near(drawn["head"], pixels[0], START_RGB) and near(drawn["head"], pixels[-1], END_RGB)
    changed = np.any(drawn["head"] != frames["head"], axis=2)
    assert 20 < changed.sum() < 0.2 * changed.size  # a line, not a smear
    magenta = np.abs(drawn["head"].astype(int) - np.array(PATH_RGB)).sum(axis=2) < 90
    assert magenta.any()


def test_a_frame_of_another_size_is_drawn_at_scale_and_points_behind_are_left_out(scene):
    robot, observation, keys, actions, joints = scene
    camera = robot.camera_models(joints)["head"]
    path = plan_path(robot, keys, actions)
    big = cv2.resize(observation["head"], None, fx=2, fy=2)
    drawn = draw_plan(big, camera, path)
    pixels, _ = camera.project(path)
    assert near(drawn, pixels[0] * 2, START_RGB)
    behind = camera.position - 0.5 * camera.rotation[:, 2]  # half a metre behind the lens
    untouched = draw_plan(observation["head"], camera, np.stack([behind, behind + 0.01]))
    np.testing.assert_array_equal(untouched, observation["head"])
