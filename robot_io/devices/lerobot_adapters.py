"""LeRobot robots and teleoperators behind our interfaces, through one thin adapter each.

LeRobot's method names and feature dicts are already ours (robot_io/devices/robot.py), so the adapters only
add what the session asks robots for:
- the model's names: cameras and joints renamed with NameMapping (both directions);
- safety from the robot's own config: joint limits from its motor bus' normalisation range and
  calibration, the per-tick step from `max_relative_target` (both overridable), a home pose;
- camera freshness from LeRobot cameras' capture timestamps (the stale-camera lockout).

LeRobot conventions relied on (lerobot 0.6): a robot's arms hold a `bus` (a MotorsBus with
`motors` and `calibration`) and a `config` with `max_relative_target`; bimanual robots hold their
arms as `left_arm` / `right_arm` and prefix those arms' keys with "left_" / "right_"; cameras keep
`latest_timestamp` (time.perf_counter() of the latest capture).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator, Mapping
from typing import Any

from robot_io.devices.name_mapping import NameMapping
from robot_io.devices.robot import Robot
from robot_io.devices.teleop import Teleoperator, TeleopMotion

POSITION_SUFFIX = ".pos"
BIMANUAL_ARMS = (("left_arm", "left_"), ("right_arm", "right_"))  # attribute, key prefix
RGB_CHANNELS = 3
PERCENT_RANGE = (-100.0, 100.0)  # MotorNormMode.RANGE_M100_100
GRIPPER_PERCENT_RANGE = (0.0, 100.0)  # MotorNormMode.RANGE_0_100
FULL_TURN_DEGREES = 360.0
# LeRobot's end-effector teleoperators (gamepad, keyboard_ee): deltas per axis and a gripper
# command 0 close / 1 stay / 2 open (lerobot.teleoperators.utils' GripperAction).
EE_DELTA_KEYS = ("delta_x", "delta_y", "delta_z")
EE_GRIPPER_KEY = "gripper"
GRIPPER_CLOSE, GRIPPER_OPEN = 0, 2


class LeRobotRobot(Robot):
    def __init__(
        self,
        robot: Any,
        robot_type: str,
        cameras: NameMapping,
        joints: NameMapping,
        joint_limits: Mapping[str, tuple[float, float]] | None = None,
        max_step: Mapping[str, float] | None = None,
        home: Mapping[str, float] | None = None,
    ) -> None:
        """`robot`: a lerobot.robots.Robot. Overrides (joint_limits, max_step, home) use the robot's
        own key names; the mappings are checked against its names here (ValueError naming both lists)."""
        self.robot = robot
        self.name = robot_type
        features = robot.observation_features
        self._images = [k for k, v in features.items() if _is_rgb(v)]  # depth maps and other shapes are left out
        self._scalars = [k for k, v in features.items() if v is float]
        self._actions = [k for k, v in robot.action_features.items() if v is float]
        cameras.check(self._images)
        joints.check(self._scalars + [k for k in self._actions if k not in self._scalars])
        self._camera_map, self._joint_map = cameras, joints
        for name, values in (("joint_limits", joint_limits), ("max_step", max_step), ("home", home)):
            unknown = [key for key in values or {} if key not in self._actions]
            if unknown:
                raise ValueError(f"{name} names {unknown}, which are not actions of {robot_type}: its actions are {self._actions}")
        self._limit_overrides = dict(joint_limits or {})
        self._max_step = {**relative_target_steps(robot), **(max_step or {})}
        self._home = dict(home) if home else None

    # --- features (the model's names) ---------------------------------------------------------
    @property
    def observation_features(self) -> dict[str, type | tuple[int, ...]]:
        features = self.robot.observation_features
        scalars = {self._joint_map.model_name(k): float for k in self._scalars}
        images = {self._camera_map.model_name(k): tuple(features[k]) for k in self._images}
        return {**scalars, **images}

    @property
    def action_features(self) -> dict[str, type]:
        return {self._joint_map.model_name(k): float for k in self._actions}

    @property
    def joint_limits(self) -> dict[str, tuple[float, float]]:
        """Read from the robot each time: LeRobot may calibrate it only on connect."""
        limits = {**motor_limits(self.robot), **self._limit_overrides}
        return {self._joint_map.model_name(k): value for k, value in limits.items()}

    @property
    def max_step(self) -> dict[str, float]:
        return {self._joint_map.model_name(k): step for k, step in self._max_step.items()}

    @property
    def home_pose(self) -> dict[str, float] | None:
        return None if self._home is None else self._joint_map.to_model(self._home)

    # --- lifecycle ----------------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        return self.robot.is_connected

    def connect(self, calibrate: bool = True) -> None:
        close_half_open_links(self.robot)
        self.robot.connect(calibrate=calibrate)

    def disconnect(self) -> None:
        self.robot.disconnect()

    # --- the control loop ---------------------------------------------------------------------
    def get_observation(self) -> dict[str, Any]:
        raw = self.robot.get_observation()
        observation = {self._joint_map.model_name(k): raw[k] for k in self._scalars if k in raw}
        observation.update({self._camera_map.model_name(k): raw[k] for k in self._images if k in raw})
        return observation

    def send_action(self, action: dict[str, float]) -> dict[str, float]:
        sent = self.robot.send_action(self._joint_map.to_device(action))
        return self._joint_map.to_model(sent)

    def frame_ages_ms(self) -> dict[str, float | None]:
        now = time.perf_counter()
        devices = camera_devices(self.robot)
        ages: dict[str, float | None] = {}
        for key in self._images:
            stamp = getattr(devices.get(key), "latest_timestamp", None)
            ages[self._camera_map.model_name(key)] = None if stamp is None else (now - stamp) * 1e3
        return ages


class _LeRobotTeleopAdapter(Teleoperator):
    """What both teleoperator adapters pass straight through to the LeRobot device."""

    def __init__(self, teleop: Any) -> None:
        self.teleop = teleop
        self.name = getattr(teleop, "name", type(teleop).__name__)

    @property
    def is_connected(self) -> bool:
        return self.teleop.is_connected

    def connect(self, calibrate: bool = True) -> None:
        connect_device(self.teleop, calibrate)

    def disconnect(self) -> None:
        self.teleop.disconnect()


class LeRobotTeleoperator(_LeRobotTeleopAdapter):
    """A LeRobot joint teleoperator (a leader arm): its action keys renamed like the robot's."""

    def __init__(self, teleop: Any, joints: NameMapping) -> None:
        super().__init__(teleop)
        self._joint_map = joints

    @property
    def action_features(self) -> dict[str, type]:
        return {self._joint_map.model_name(k): v for k, v in self.teleop.action_features.items()}

    def get_action(self) -> dict[str, float]:
        return self._joint_map.to_model(self.teleop.get_action())


class LeRobotCartesianTeleoperator(_LeRobotTeleopAdapter):
    """A LeRobot end-effector teleoperator (gamepad, keyboard_ee): its deltas drive the end effector
    through the session's keyboard / gamepad path (`CartesianTeleoperator`); it gives no joints."""

    @property
    def action_features(self) -> dict[str, type]:
        return {}

    def get_action(self) -> dict[str, float]:
        return {}

    def get_motion(self) -> TeleopMotion:
        action = self.teleop.get_action()
        axes = tuple(max(-1.0, min(1.0, float(action.get(key, 0.0)))) for key in EE_DELTA_KEYS)
        gripper = action.get(EE_GRIPPER_KEY)
        closed = True if gripper == GRIPPER_CLOSE else False if gripper == GRIPPER_OPEN else None
        return TeleopMotion(axes=axes, gripper_closed=closed)


def is_end_effector_teleop(action_features: Any) -> bool:
    """LeRobot's end-effector teleoperators describe their action as {"names": {"delta_x": 0, ...}}."""
    names = action_features.get("names") if isinstance(action_features, dict) else None
    return isinstance(names, dict) and all(key in names for key in EE_DELTA_KEYS)


def connect_device(device: Any, calibrate: bool) -> None:
    """LeRobot devices without calibration (gamepad, keyboard) take no `calibrate` argument."""
    if "calibrate" in inspect.signature(device.connect).parameters:
        device.connect(calibrate=calibrate)
    else:
        device.connect()


# --- what LeRobot's robots know about their own safety -------------------------------------------


def robot_arms(robot: Any) -> Iterator[tuple[str, Any]]:
    """(key prefix, arm) for a single-arm robot (the robot itself) and each arm of a bimanual one."""
    yield "", robot
    for attribute, prefix in BIMANUAL_ARMS:
        arm = getattr(robot, attribute, None)
        if arm is not None:
            yield prefix, arm


def motor_limits(robot: Any) -> dict[str, tuple[float, float]]:
    """Joint limits in the units the robot reports, from each motor's normalisation mode: -100..100
    and 0..100 by definition; degrees from the calibrated range of motion (uncalibrated: unknown)."""
    from lerobot.motors import MotorNormMode

    limits: dict[str, tuple[float, float]] = {}
    for prefix, arm in robot_arms(robot):
        bus = getattr(arm, "bus", None)
        if bus is None:
            continue
        calibration = getattr(bus, "calibration", None) or {}
        for name, motor in bus.motors.items():
            key = f"{prefix}{name}{POSITION_SUFFIX}"
            if motor.norm_mode is MotorNormMode.RANGE_M100_100:
                limits[key] = PERCENT_RANGE
            elif motor.norm_mode is MotorNormMode.RANGE_0_100:
                limits[key] = GRIPPER_PERCENT_RANGE
            elif motor.norm_mode is MotorNormMode.DEGREES and name in calibration:
                steps_per_turn = bus.model_resolution_table[motor.model] - 1
                half = (calibration[name].range_max - calibration[name].range_min) / 2 * FULL_TURN_DEGREES / steps_per_turn
                limits[key] = (-half, half)
    return limits


def relative_target_steps(robot: Any) -> dict[str, float]:
    """Per-tick step per joint from each arm's `max_relative_target` (one number for every motor, or
    one per motor name)."""
    steps: dict[str, float] = {}
    for prefix, arm in robot_arms(robot):
        target = getattr(getattr(arm, "config", None), "max_relative_target", None)
        bus = getattr(arm, "bus", None)
        if target is None or bus is None:
            continue
        per_motor = target if isinstance(target, Mapping) else dict.fromkeys(bus.motors, target)
        steps.update({f"{prefix}{name}{POSITION_SUFFIX}": float(step) for name, step in per_motor.items()})
    return steps


def close_half_open_links(robot: Any) -> None:
    """Close the ports and cameras a failed robot left open, so its connect can start over.

    A LeRobot robot that lost its USB link cannot disconnect (its bus disables torque first, which
    fails, and the port stays open) and cannot connect (an open port is refused). Its buses are
    closed here without touching the motors (torque stays as it is), and its cameras released."""
    for _, arm in robot_arms(robot):
        bus = getattr(arm, "bus", None)
        links = [(bus, {"disable_torque": False})] if bus is not None else []
        links += [(camera, {}) for camera in (getattr(arm, "cameras", None) or {}).values()]
        for link, options in links:
            if getattr(link, "is_connected", False):
                try:
                    link.disconnect(**options)
                except Exception:  # noqa: BLE001, S110 - a dead link may fail to close; connect will say so
                    pass


def camera_devices(robot: Any) -> dict[str, Any]:
    """Observation camera key -> its camera object (bimanual arms' cameras carry the arm's prefix;
    cameras of the robot itself keep their names)."""
    devices: dict[str, Any] = {}
    for prefix, arm in robot_arms(robot):
        for name, camera in (getattr(arm, "cameras", None) or {}).items():
            devices.setdefault(f"{prefix}{name}", camera)
    return devices


def _is_rgb(feature: Any) -> bool:
    return isinstance(feature, tuple) and len(feature) == 3 and feature[-1] == RGB_CHANNELS
