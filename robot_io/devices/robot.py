"""The Robot interface: LeRobot's shape, so a `lerobot.robots.Robot` fits without a wrapper."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


class Robot(abc.ABC):
    """A robot the control loop can drive.

    `observation_features` maps each key of `get_observation()` to `float` (one scalar, e.g.
    "joint_1.pos") or to an image shape `(height, width, 3)` (a camera, uint8 RGB).
    `action_features` maps each key `send_action()` takes to `float`.
    """

    name: str = "robot"

    @property
    @abc.abstractmethod
    def observation_features(self) -> dict[str, type | tuple[int, ...]]: ...

    @property
    @abc.abstractmethod
    def action_features(self) -> dict[str, type]: ...

    @property
    @abc.abstractmethod
    def is_connected(self) -> bool: ...

    @abc.abstractmethod
    def connect(self, calibrate: bool = True) -> None: ...

    @abc.abstractmethod
    def get_observation(self) -> dict[str, Any]: ...

    @abc.abstractmethod
    def send_action(self, action: dict[str, float]) -> dict[str, float]:
        """Command the robot; returns the action actually sent (after the robot's own limits)."""

    @abc.abstractmethod
    def disconnect(self) -> None: ...


def state_keys(robot: Robot) -> list[str]:
    """Scalar observation keys in declaration order: the robot's state vector."""
    return [k for k, v in robot.observation_features.items() if v is float]


def camera_keys(robot: Robot) -> list[str]:
    """Image observation keys in declaration order."""
    return [k for k, v in robot.observation_features.items() if isinstance(v, tuple)]


def camera_shapes(robot: Robot) -> dict[str, tuple[int, int, int]]:
    """Image observation key -> its (H, W, 3) shape, in declaration order."""
    return {key: robot.observation_features[key] for key in camera_keys(robot)}


@runtime_checkable
class CartesianControl(Protocol):
    """A robot that can turn an end-effector delta into joint commands (keyboard teleop needs it)."""

    def ee_delta_action(self, delta: np.ndarray, gripper: float | None) -> dict[str, float]:
        """delta = (dx, dy, dz, droll, dpitch, dyaw) in metres / radians from the current pose;
        gripper in [0, 1] (0 open, 1 closed) or None to keep it."""
        ...


@runtime_checkable
class ResettableScene(Protocol):
    """A robot whose world can be reset to a seeded episode (the simulation)."""

    def reset_scene(self, seed: int | None) -> Any:
        """Returns the episode spec; it has at least `.seed` and `.instruction`."""
        ...

    def is_success(self) -> bool: ...


@runtime_checkable
class HasJointLimits(Protocol):
    @property
    def joint_limits(self) -> dict[str, tuple[float, float]]: ...


@runtime_checkable
class HasStepLimits(Protocol):
    """A robot whose config bounds how far a command may move each joint per control tick (LeRobot's
    `max_relative_target`); keys it leaves out get the session's default."""

    @property
    def max_step(self) -> dict[str, float]: ...


@runtime_checkable
class HasHomePose(Protocol):
    """A robot with a pose to return to on request (action keys -> positions); None when it has
    none configured (the session then takes the pose of its first tick)."""

    @property
    def home_pose(self) -> dict[str, float] | None: ...


@runtime_checkable
class CameraFreshness(Protocol):
    """A robot whose cameras capture on their own clock (real cameras, a video playing): how old the
    frames of the latest observation are. A robot without it renders on demand (the sim): always fresh."""

    def frame_ages_ms(self) -> dict[str, float | None]:
        """camera key -> milliseconds since its latest frame was captured (None: no frame yet)."""
        ...


MIN_PROJECTION_DEPTH = 1e-3  # m: points closer to (or behind) a camera's image plane do not project


@dataclass(frozen=True)
class CameraModel:
    """A pinhole camera: intrinsics in pixels and its pose in the world.

    Camera axes follow OpenCV (x right, y down, z forward, "RDF"); `rotation` holds them as
    columns in world coordinates, so world = rotation @ camera + position."""

    width: int  # pixels
    height: int
    focal_px: float  # fx = fy
    principal_px: tuple[float, float]  # (cx, cy)
    position: np.ndarray  # (3,) world metres
    rotation: np.ndarray  # (3, 3) world_from_camera

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (N, 2) (u right, v down) of world points (N, 3), and a mask (N,) of
        the points in front of the camera (the others' pixels are meaningless)."""
        camera = (np.asarray(points, dtype=float) - self.position) @ self.rotation  # (N, 3) camera frame
        in_front = camera[:, 2] > MIN_PROJECTION_DEPTH
        depth = np.where(in_front, camera[:, 2], 1.0)
        pixels = self.focal_px * camera[:, :2] / depth[:, None] + np.asarray(self.principal_px)
        return pixels, in_front


@dataclass(frozen=True)
class SceneObject:
    """A box in the world (a block, the bin, a belt), for 3D views."""

    name: str
    center: np.ndarray  # (3,) world metres
    half_size: np.ndarray  # (3,) metres, along the object's own axes
    rotation: np.ndarray  # (3, 3) world_from_object
    rgba: tuple[float, float, float, float]
    fixed: bool  # True when it never moves (views draw it once)


@runtime_checkable
class SceneGeometry(Protocol):
    """A robot that can describe its world in 3D (the Rerun view draws it; robots without it get
    the time series and the camera images only).

    Every method may be called from any thread while the robot runs: implementations compute on
    their own kinematic model, never on the running one."""

    def link_positions(self, joints: Mapping[str, float]) -> np.ndarray:
        """(links, 3) world positions of the joint origins from the base to the end effector (its
        last row), by forward kinematics of `joints` (action keys; missing ones count as 0)."""
        ...

    def end_effector_path(self, joint_path: Sequence[Mapping[str, float]]) -> np.ndarray:
        """(steps, 3) end-effector positions of a sequence of joint vectors (e.g. a planned chunk)."""
        ...

    def camera_models(self, joints: Mapping[str, float]) -> Mapping[str, CameraModel]:
        """Each camera's model with the arm at `joints` (cameras on the arm move with it)."""
        ...

    def scene_objects(self) -> tuple[SceneObject, ...]:
        """The objects of the world as of the latest observation."""
        ...
