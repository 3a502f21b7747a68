"""The conveyor sim's world in 3D for views: forward kinematics of the arm, camera models, and the
belt, bin and blocks as boxes (`SceneGeometry` of robot_io/devices/robot.py).

Everything is computed on a private model of the scene (no blocks) with its own `MjData`, behind
a lock, so any thread (the Rerun logger's) may ask while the control thread steps the simulation.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence

import mujoco
import numpy as np

from robot_io.devices.robot import CameraModel, SceneObject
from robot_io.sim import scene
from robot_io.sim.arm_kinematics import EE_SITE
from robot_io.sim.conveyor_env import SimState

# Bodies whose origins are the arm's joints, base first; the `ee` site closes the chain.
LINK_BODIES = ("pedestal", "link_1", "link_2", "link_3", "link_4", "link_5", "link_6")
FIXED_BOX_GEOMS = ("belt_frame",)  # single geoms drawn as boxes
FIXED_BOX_BODIES = ("bin",)  # bodies whose box geoms are all drawn
COVER_BODY = "cover"  # the foresight setting's cover, drawn too where the scene has one
# MuJoCo cameras look along -z with y up; our CameraModel is OpenCV's x right, y down, z forward.
MUJOCO_TO_RDF = np.diag([1.0, -1.0, -1.0])


class SimSceneGeometry:
    def __init__(self, joint_keys: Sequence[str], cameras: Sequence[str], image_size: tuple[int, int],
                 cover_x: tuple[float, float] | None = None) -> None:
        """`joint_keys[i]` names arm joint `scene.ARM_JOINTS[i]`; `image_size` is (height, width);
        `cover_x` the foresight setting's cover (ForesightSetting.cover_x)."""
        if len(joint_keys) != len(scene.ARM_JOINTS):
            raise ValueError(f"{len(scene.ARM_JOINTS)} joint keys expected (one per arm joint), got {list(joint_keys)}")
        self._model = mujoco.MjModel.from_xml_string(scene.build_scene_xml(num_blocks=0, cover_x=cover_x))
        self._box_bodies = FIXED_BOX_BODIES + ((COVER_BODY,) if cover_x is not None else ())
        self._data = mujoco.MjData(self._model)
        self._lock = threading.Lock()
        m = self._model
        self._joint_keys = tuple(joint_keys)
        self._qpos_adr = m.jnt_qposadr[[m.joint(name).id for name in scene.ARM_JOINTS]]
        self._link_bodies = [m.body(name).id for name in LINK_BODIES]
        self._ee_site = m.site(EE_SITE).id
        self._cameras = {name: m.camera(name).id for name in cameras}
        self._height, self._width = image_size
        with self._lock:
            mujoco.mj_kinematics(m, self._data)
            self._fixed = tuple(self._fixed_boxes())

    # --- SceneGeometry ---------------------------------------------------------------------
    def link_positions(self, joints: Mapping[str, float]) -> np.ndarray:
        with self._lock:
            self._set_joints(joints)
            links = self._data.xpos[self._link_bodies]  # (bodies, 3)
            return np.vstack([links, self._data.site_xpos[self._ee_site]])  # (links, 3)

    def end_effector_path(self, joint_path: Sequence[Mapping[str, float]]) -> np.ndarray:
        path = np.empty((len(joint_path), 3))
        with self._lock:
            for i, joints in enumerate(joint_path):
                self._set_joints(joints)
                path[i] = self._data.site_xpos[self._ee_site]
        return path

    def camera_models(self, joints: Mapping[str, float]) -> dict[str, CameraModel]:
        focal = {name: self._height / 2 / math.tan(math.radians(self._model.cam_fovy[cam]) / 2)
                 for name, cam in self._cameras.items()}
        with self._lock:
            self._set_joints(joints)
            mujoco.mj_camlight(self._model, self._data)
            return {
                name: CameraModel(
                    width=self._width,
                    height=self._height,
                    focal_px=focal[name],
                    principal_px=(self._width / 2, self._height / 2),
                    position=self._data.cam_xpos[cam].copy(),
                    rotation=self._data.cam_xmat[cam].reshape(3, 3) @ MUJOCO_TO_RDF,
                )
                for name, cam in self._cameras.items()
            }

    def scene_objects(self, state: SimState | None) -> tuple[SceneObject, ...]:
        """The belt and bin, and the blocks where `state` (the latest observation's) has them."""
        if state is None:
            return self._fixed
        half = np.full(3, scene.BLOCK_HALF)
        blocks = tuple(
            SceneObject(f"{color} block", position.copy(), half, _yaw_rotation(yaw), scene.BLOCK_RGBA[color], fixed=False)
            for color, position, yaw in zip(state.block_colors, state.block_positions, state.block_yaws)
        )
        return self._fixed + blocks

    # --- inside ----------------------------------------------------------------------------
    def _set_joints(self, joints: Mapping[str, float]) -> None:
        """Caller holds the lock."""
        self._data.qpos[self._qpos_adr] = [joints.get(key, 0.0) for key in self._joint_keys]
        mujoco.mj_kinematics(self._model, self._data)

    def _fixed_boxes(self):
        """The belt frame, the bin's walls and the cover, read from the model itself (sizes are half sizes)."""
        m, d = self._model, self._data
        named = [(name, m.geom(name).id) for name in FIXED_BOX_GEOMS]
        for body in self._box_bodies:
            body_id = m.body(body).id
            boxes = [g for g in range(m.ngeom) if m.geom_bodyid[g] == body_id and m.geom_type[g] == mujoco.mjtGeom.mjGEOM_BOX]
            named += [(f"{body}_{i}", g) for i, g in enumerate(boxes)]
        for name, g in named:
            material = m.geom_matid[g]
            rgba = m.mat_rgba[material] if material >= 0 else m.geom_rgba[g]
            yield SceneObject(name, d.geom_xpos[g].copy(), m.geom_size[g].copy(), d.geom_xmat[g].reshape(3, 3).copy(),
                              tuple(float(c) for c in rgba), fixed=True)


def _yaw_rotation(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
