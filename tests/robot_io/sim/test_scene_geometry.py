"""The sim's SceneGeometry: forward kinematics against MuJoCo's own, camera models against what
MuJoCo renders, scene boxes, and that none of it disturbs the running simulation."""

from __future__ import annotations

import itertools
import threading

import mujoco
import numpy as np
import pytest

from robot_io.devices.robot import SceneGeometry
from robot_io.sim import scene
from robot_io.sim.sim_robot import JOINT_KEYS, SimRobot

PIXEL_TOLERANCE = 1.5  # px: a cube's rendered outline against its projected one (224 x 224)
CHANGED_PIXEL = 30  # summed RGB difference that counts as the probe cube
PROBE_OFFSETS = ((0.0, 0.0, 0.2), (0.04, -0.03, 0.18))  # camera-frame points (x right, y down, z ahead), m
OUT_OF_SIGHT = (0.0, 0.0, -10.0)  # under the floor


@pytest.fixture(scope="module")
def robot():
    robot = SimRobot()
    robot.connect()
    yield robot
    robot.disconnect()


def zero_pose():
    return {key: 0.0 for key in JOINT_KEYS}


def test_sim_robot_offers_scene_geometry(robot):
    assert isinstance(robot, SceneGeometry)


def test_forward_kinematics_of_the_zero_pose_matches_mujoco(robot):
    model = mujoco.MjModel.from_xml_string(scene.build_scene_xml(num_blocks=2))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)  # qpos 0: every arm joint at zero
    links = robot.link_positions(zero_pose())
    np.testing.assert_allclose(links[-1], data.site("ee").xpos, atol=1e-9)
    np.testing.assert_allclose(links[1], data.body("link_1").xpos, atol=1e-9)
    # Straight up at zero: the end effector hangs below the wrist, ahead of the shoulder.
    assert links[-1][2] == pytest.approx(scene.SHOULDER_HEIGHT + scene.UPPER_ARM - scene.WRIST - scene.GRASP_DEPTH)


def test_forward_kinematics_matches_the_running_sim_and_leaves_it_alone(robot):
    env = robot.env
    observation = robot.get_observation()
    joints = {key: observation[key] for key in JOINT_KEYS}
    qpos, time = env.data.qpos.copy(), env.data.time
    path = robot.end_effector_path([zero_pose(), joints])
    np.testing.assert_allclose(path[1], env.data.site("ee").xpos, atol=1e-9)
    np.testing.assert_allclose(robot.link_positions(joints)[-1], env.data.site("ee").xpos, atol=1e-9)
    np.testing.assert_array_equal(env.data.qpos, qpos)
    assert env.data.time == time


def test_kinematics_is_safe_from_several_threads(robot):
    poses = [{**zero_pose(), "joint_1.pos": angle, "joint_2.pos": 0.5} for angle in (-1.0, 1.0)]
    expected = [robot.link_positions(pose)[-1] for pose in poses]
    failures = []

    def hammer(pose, want):
        for _ in range(300):
            if not np.allclose(robot.link_positions(pose)[-1], want):
                failures.append(pose)

    threads = [threading.Thread(target=hammer, args=(p, e)) for p, e in zip(poses, expected)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not failures


def rendered_box(env, camera: str, block: int, position: np.ndarray) -> np.ndarray:
    """(u_min, v_min, u_max, v_max) pixel bounds of what changes in `camera`'s picture when `block`
    (axis-aligned) moves from out of sight to `position`."""
    address = env.model.jnt_qposadr[env.model.joint(f"block_{block}").id]
    saved = env.data.qpos[address : address + 7].copy()

    def render_with_block_at(where) -> np.ndarray:
        env.data.qpos[address : address + 3] = where
        env.data.qpos[address + 3 : address + 7] = (1.0, 0.0, 0.0, 0.0)
        mujoco.mj_forward(env.model, env.data)
        return env.render(camera).astype(int)

    before = render_with_block_at(OUT_OF_SIGHT)
    after = render_with_block_at(position)
    env.data.qpos[address : address + 7] = saved
    mujoco.mj_forward(env.model, env.data)
    rows, cols = np.nonzero(np.abs(after - before).sum(axis=2) > CHANGED_PIXEL)
    assert len(rows) > 20, f"the probe block is not visible in {camera}"
    return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])  # pixel edges


@pytest.mark.parametrize("camera", scene.CAMERA_NAMES)
def test_projection_lands_where_mujoco_renders(robot, camera):
    """A cube's outline in the picture is the outline of its eight projected corners."""
    env = robot.env
    joints = {key: float(v) for key, v in zip(JOINT_KEYS, env.joint_positions())}
    model = robot.camera_models(joints)[camera]
    assert (model.width, model.height) == (robot.config.image_width, robot.config.image_height)
    for offset in PROBE_OFFSETS:
        center = model.position + model.rotation @ np.array(offset)  # a point ahead of the camera
        corners = center + scene.BLOCK_HALF * np.array(list(itertools.product((-1, 1), repeat=3)))  # (8, 3)
        pixels, in_front = model.project(corners)
        assert in_front.all()
        projected = np.concatenate([pixels.min(axis=0), pixels.max(axis=0)])
        np.testing.assert_allclose(rendered_box(env, camera, 0, center), projected, atol=PIXEL_TOLERANCE)


def test_points_behind_a_camera_do_not_project(robot):
    model = robot.camera_models(zero_pose())["head"]
    behind = model.position - model.rotation[:, 2]  # 1 m behind the image plane
    _, in_front = model.project(np.stack([behind, model.position + model.rotation[:, 2]]))
    assert in_front.tolist() == [False, True]


def test_scene_objects_are_the_belt_the_bin_and_the_blocks_where_they_are(robot):
    observation = robot.get_observation()
    objects = robot.scene_objects()
    fixed = [o for o in objects if o.fixed]
    blocks = [o for o in objects if not o.fixed]
    assert "belt_frame" in {o.name for o in fixed} and sum(o.name.startswith("bin") for o in fixed) == 5
    state = observation["sim_state"]
    assert [o.name for o in blocks] == [f"{c} block" for c in state.block_colors]
    np.testing.assert_allclose([o.center for o in blocks], state.block_positions)
    assert blocks[0].rgba == scene.BLOCK_RGBA[state.block_colors[0]]
