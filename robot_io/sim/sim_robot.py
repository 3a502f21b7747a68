"""The conveyor simulation behind the `Robot` and `Camera` interfaces.

Observation: "joint_1.pos" .. "joint_6.pos" (rad), "gripper.pos" (0 = open, 1 = closed; about
0.55 when holding a block), and one uint8 RGB (H, W, 3) image per camera ("head", "wrist",
"side"). Actions: the same scalar keys, absolute targets.

The simulation's clock is the control loop's clock: each `send_action` advances the physics by
exactly one control period, so a slow tick slows the world instead of skipping physics.

Threading: all MuJoCo calls happen on the thread that calls `get_observation` / `send_action`
(the offscreen GL context is bound to it). `connect` and `reset_scene` only touch physics.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from robot_io.devices.camera import Camera
from robot_io.devices.robot import CameraModel, Robot, SceneObject
from robot_io.sim import scene
from robot_io.sim.conveyor_env import ConveyorEnv, ConveyorSimConfig, EpisodeSpec, SimState
from robot_io.sim.scene_geometry import SimSceneGeometry

GRIPPER_KEY = "gripper.pos"
JOINT_KEYS = tuple(f"{joint}.pos" for joint in scene.ARM_JOINTS)
SIM_STATE_KEY = "sim_state"  # privileged SimState in every observation; not a feature, never recorded
FIRST_SEED = 0  # the scene `connect` starts with
MAX_RANDOM_SEED = 2**31  # reset_scene(None) draws a seed below this


class SimRobot(Robot):
    name = "conveyor_sim"

    def __init__(self, config: ConveyorSimConfig | None = None) -> None:
        self.config = config or ConveyorSimConfig()
        self._env: ConveyorEnv | None = None
        self._frames: dict[str, np.ndarray] = {}
        self._state: SimState | None = None  # the latest observation's, for scene_objects
        self._geometry: SimSceneGeometry | None = None  # built on first use (a private model)
        self._geometry_lock = threading.Lock()

    # --- features ------------------------------------------------------------------------
    @property
    def observation_features(self) -> dict[str, type | tuple[int, ...]]:
        shape = (self.config.image_height, self.config.image_width, 3)
        return {**self.action_features, **{camera: shape for camera in self.config.cameras}}

    @property
    def action_features(self) -> dict[str, type]:
        return {**{key: float for key in JOINT_KEYS}, GRIPPER_KEY: float}

    @property
    def joint_limits(self) -> dict[str, tuple[float, float]]:
        limits = {key: (float(lo), float(hi)) for key, (lo, hi) in zip(JOINT_KEYS, scene.ARM_JOINT_RANGES)}
        return {**limits, GRIPPER_KEY: (0.0, 1.0)}

    @property
    def home_pose(self) -> dict[str, float]:
        """The arm over the belt, clear of the head camera, gripper open: where every episode starts
        (less its jitter). Needs the simulation built (connect)."""
        return {**dict(zip(JOINT_KEYS, map(float, self.env.home_joints))), GRIPPER_KEY: 0.0}

    # --- lifecycle -----------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self._env is not None

    def connect(self, calibrate: bool = True) -> None:
        """Build the simulation (a few hundred ms) and start the scene with seed FIRST_SEED."""
        if self._env is None:
            self._env = ConveyorEnv(self.config)
            self.reset_scene(FIRST_SEED)

    def disconnect(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
            self._frames = {}
            self._state = None

    @property
    def env(self) -> ConveyorEnv:
        if self._env is None:
            raise RuntimeError("SimRobot is not connected: call connect() first")
        return self._env

    # --- the control loop ----------------------------------------------------------------
    def get_observation(self) -> dict[str, Any]:
        env = self.env
        observation: dict[str, Any] = dict(zip(JOINT_KEYS, map(float, env.joint_positions())))
        observation[GRIPPER_KEY] = env.gripper_closure()
        self._frames = {camera: env.render(camera) for camera in self.config.cameras}
        observation.update(self._frames)
        self._state = observation[SIM_STATE_KEY] = env.state()
        return observation

    def send_action(self, action: dict[str, float]) -> dict[str, float]:
        """Clamp to the joint limits, apply, and advance one control period; returns what was sent."""
        missing = [key for key in self.action_features if key not in action]
        if missing:
            raise KeyError(f"SimRobot.send_action is missing {missing}; it needs every key of action_features")
        sent = {key: float(np.clip(action[key], lo, hi)) for key, (lo, hi) in self.joint_limits.items()}
        self.env.step(np.array([sent[key] for key in JOINT_KEYS]), sent[GRIPPER_KEY])
        return sent

    # --- the simulation's extras ---------------------------------------------------------
    def reset_scene(self, seed: int | None, target_index: int | None = None) -> EpisodeSpec:
        """A new episode; `seed` None draws a random one (reported in the returned spec);
        `target_index` another block of the scene as the target (see ConveyorEnv.reset)."""
        return self.env.reset(secrets.randbelow(MAX_RANDOM_SEED) if seed is None else seed, target_index)

    @property
    def episode(self) -> EpisodeSpec | None:
        return self.env.episode

    def is_success(self) -> bool:
        return self.env.is_success()

    def ee_delta_action(self, delta: np.ndarray, gripper: float | None) -> dict[str, float]:
        """Joint targets moving the commanded end-effector pose by (dx, dy, dz, droll, dpitch,
        dyaw) in world metres / radians; `gripper` in [0, 1], or None to keep the command."""
        env = self.env
        action = dict(zip(JOINT_KEYS, map(float, env.ee_delta(delta))))
        action[GRIPPER_KEY] = env.gripper_command() if gripper is None else float(np.clip(gripper, 0.0, 1.0))
        return action

    def latest_frame(self, camera: str) -> np.ndarray | None:
        """The frame `camera` rendered at the last `get_observation`, if any."""
        return self._frames.get(camera)

    # --- SceneGeometry (any thread: a private kinematic model, never the running one) ----------
    def link_positions(self, joints: Mapping[str, float]) -> np.ndarray:
        return self._scene_geometry().link_positions(joints)

    def end_effector_path(self, joint_path: Sequence[Mapping[str, float]]) -> np.ndarray:
        return self._scene_geometry().end_effector_path(joint_path)

    def camera_models(self, joints: Mapping[str, float]) -> dict[str, CameraModel]:
        return self._scene_geometry().camera_models(joints)

    def scene_objects(self) -> tuple[SceneObject, ...]:
        return self._scene_geometry().scene_objects(self._state)

    def _scene_geometry(self) -> SimSceneGeometry:
        with self._geometry_lock:
            if self._geometry is None:
                size = (self.config.image_height, self.config.image_width)
                self._geometry = SimSceneGeometry(JOINT_KEYS, self.config.cameras, size, self.config.foresight.cover_x)
            return self._geometry


class SimCamera(Camera):
    """One camera of a `SimRobot`. It renders nothing itself (rendering belongs to the robot's
    driving thread): `read` returns the frame of the robot's latest observation, or a black
    frame before the first one."""

    def __init__(self, robot: SimRobot, camera: str) -> None:
        if camera not in robot.config.cameras:
            raise ValueError(f"SimRobot has no camera {camera!r}; it has {robot.config.cameras}")
        self.robot = robot
        self.camera = camera
        self.height = robot.config.image_height
        self.width = robot.config.image_width
        self.fps = round(robot.config.fps)

    @property
    def is_connected(self) -> bool:
        return self.robot.is_connected

    def connect(self, warmup: bool = True) -> None:
        if not self.robot.is_connected:
            raise RuntimeError(f"SimCamera {self.camera!r}: connect its SimRobot first")

    def read(self) -> np.ndarray:
        frame = self.robot.latest_frame(self.camera)
        return np.zeros((self.height, self.width, 3), np.uint8) if frame is None else frame

    def disconnect(self) -> None:
        return None
