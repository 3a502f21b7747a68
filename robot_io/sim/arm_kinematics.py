"""Forward kinematics and damped-least-squares inverse kinematics of the arm's `ee` site.

An `ArmKinematics` owns a private `MjData`, so IK never disturbs the simulation it serves and a
policy thread can run it beside the control loop (each thread needs its own instance).

End-effector frame (the `ee` site, between the finger pads): z points out of the gripper (the
approach direction), y is the closing direction of the fingers. "Pointing down" means z = -world z;
the yaw is then the world-frame heading of the site's x axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from robot_io.sim.scene import ARM_JOINTS, build_scene_xml

EE_SITE = "ee"
IK_DAMPING = 0.03  # lambda of damped least squares: bounded steps near singular poses
IK_MAX_ITERATIONS = 50
IK_POSITION_TOLERANCE = 2e-4  # m
IK_ROTATION_TOLERANCE = 2e-3  # rad
IK_MAX_JOINT_STEP = 0.3  # rad per iteration, so a far target is approached rather than overshot
ROTATION_WEIGHT = 0.2  # metres that one radian of orientation error counts as


@dataclass(frozen=True)
class Pose:
    position: np.ndarray  # (3,) world metres
    rotation: np.ndarray  # (3, 3) columns are the site's axes in world coordinates

    @property
    def yaw(self) -> float:
        return yaw_of(self.rotation)


def down_rotation(yaw: float) -> np.ndarray:
    """The end-effector orientation pointing straight down with its x axis at `yaw`."""
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]])


def yaw_of(rotation: np.ndarray) -> float:
    """Heading of the site's x axis in the world xy plane."""
    return float(np.arctan2(rotation[1, 0], rotation[0, 0]))


def rotation_from_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Rotation about world x by roll, then world y by pitch, then world z by yaw."""
    cr, sr, cp, sp, cy, sy = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def apply_delta(pose: Pose, delta: np.ndarray) -> Pose:
    """`pose` moved by (dx, dy, dz) in world metres and turned by (droll, dpitch, dyaw) in world
    axes about the end effector itself."""
    delta = np.asarray(delta, dtype=float)
    if delta.shape != (6,):
        raise ValueError(
            f"an end-effector delta has 6 values (dx, dy, dz, droll, dpitch, dyaw), got shape {delta.shape}"
        )
    return Pose(pose.position + delta[:3], rotation_from_rpy(*delta[3:]) @ pose.rotation)


def rotation_error(target: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Axis * angle (world frame) that turns `current` into `target`."""
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, (target @ current.T).ravel())
    error = np.empty(3)
    mujoco.mju_quat2Vel(error, quat, 1.0)
    return error


class ArmKinematics:
    def __init__(self, model: mujoco.MjModel) -> None:
        self.model = model
        self._data = mujoco.MjData(model)
        joint_ids = [model.joint(name).id for name in ARM_JOINTS]
        self._qpos_adr = model.jnt_qposadr[joint_ids]
        self._dof_adr = model.jnt_dofadr[joint_ids]
        self.limits = model.jnt_range[joint_ids].copy()  # (joints, 2) rad
        self._site = model.site(EE_SITE).id
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    @classmethod
    def standalone(cls) -> "ArmKinematics":
        """Kinematics on a private model of the scene (no blocks), for use off the sim's thread."""
        return cls(mujoco.MjModel.from_xml_string(build_scene_xml(num_blocks=0)))

    def _set_joints(self, joints: np.ndarray) -> None:
        self._data.qpos[self._qpos_adr] = joints
        mujoco.mj_kinematics(self.model, self._data)

    def forward(self, joints: np.ndarray) -> Pose:
        self._set_joints(joints)
        return self._site_pose()

    def _site_pose(self) -> Pose:
        return Pose(self._data.site_xpos[self._site].copy(), self._data.site_xmat[self._site].reshape(3, 3).copy())

    def solve(self, target: Pose, initial_joints: np.ndarray) -> np.ndarray:
        """Joint positions (within limits) that put the site at `target`, searched from
        `initial_joints`; the closest found when the target is out of reach."""
        joints = np.clip(np.asarray(initial_joints, dtype=float), self.limits[:, 0], self.limits[:, 1])
        best, best_error = joints.copy(), np.inf
        for _ in range(IK_MAX_ITERATIONS):
            self._set_joints(joints)
            mujoco.mj_comPos(self.model, self._data)  # the Jacobian needs the com-based quantities
            pose = self._site_pose()
            position_error = target.position - pose.position
            angle_error = rotation_error(target.rotation, pose.rotation)
            error = np.concatenate([position_error, ROTATION_WEIGHT * angle_error])
            error_norm = float(np.linalg.norm(error))
            if error_norm < best_error:
                best, best_error = joints.copy(), error_norm
            converged = np.linalg.norm(position_error) < IK_POSITION_TOLERANCE
            if converged and np.linalg.norm(angle_error) < IK_ROTATION_TOLERANCE:
                break
            mujoco.mj_jacSite(self.model, self._data, self._jacp, self._jacr, self._site)
            jac = np.vstack([self._jacp[:, self._dof_adr], ROTATION_WEIGHT * self._jacr[:, self._dof_adr]])
            step = jac.T @ np.linalg.solve(jac @ jac.T + IK_DAMPING**2 * np.eye(6), error)
            step = np.clip(step, -IK_MAX_JOINT_STEP, IK_MAX_JOINT_STEP)
            joints = np.clip(joints + step, self.limits[:, 0], self.limits[:, 1])
        return best
