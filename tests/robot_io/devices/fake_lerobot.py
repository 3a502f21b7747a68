"""Fake LeRobot devices: an arm with a motor bus in LeRobot's terms (Motor, MotorNormMode,
MotorCalibration) and real LeRobot cameras, a leader arm and a gamepad, subclassing LeRobot's own
Robot and Teleoperator bases. Tests reach the device behind our adapter to move it or unplug it."""

from __future__ import annotations

from functools import cached_property

from lerobot.cameras import make_cameras_from_configs
from lerobot.motors import Motor, MotorCalibration, MotorNormMode
from lerobot.robots import Robot
from lerobot.teleoperators import Teleoperator
from lerobot.utils.errors import DeviceAlreadyConnectedError

from tests.robot_io.devices.config_fake_lerobot import FakeArmConfig, FakeGamepadConfig, FakeLeaderConfig

MODEL = "sts3215"
STEPS_PER_TURN = 4096
ELBOW_RANGE = (1024, 3072)  # raw steps: half a turn of motion, so +-90 degrees
MOTORS = ("shoulder", "elbow", "gripper")


class FakeBus:
    """What a LeRobot MotorsBus exposes: motors, calibration, resolutions, and its serial port as
    LeRobot handles it: connect refuses an open port, and disconnect(disable_torque=True) talks to
    the motors first, so on a dead handle it raises and leaves the port open."""

    model_resolution_table = {MODEL: STEPS_PER_TURN}

    def __init__(self, port: str, use_degrees: bool) -> None:
        body = MotorNormMode.DEGREES if use_degrees else MotorNormMode.RANGE_M100_100
        self.port = port
        self.motors = {
            "shoulder": Motor(1, MODEL, MotorNormMode.RANGE_M100_100),
            "elbow": Motor(2, MODEL, body),
            "gripper": Motor(3, MODEL, MotorNormMode.RANGE_0_100),
        }
        self.calibration = {"elbow": MotorCalibration(id=2, drive_mode=0, homing_offset=0,
                                                      range_min=ELBOW_RANGE[0], range_max=ELBOW_RANGE[1])}
        self.is_connected = False  # the port is open
        self.present = True  # the adapter is plugged in
        self.dead_handle = False  # unplugged while open: this handle never works again until closed

    def connect(self) -> None:
        if self.is_connected:
            raise DeviceAlreadyConnectedError(f"{self.port} is already open")
        if not self.present:
            raise ConnectionError(f"could not open port {self.port}")
        self.is_connected = True

    def check(self, what: str) -> None:
        if not self.present or self.dead_handle:
            raise ConnectionError(f"{what} on {self.port} failed: no status packet")

    def disconnect(self, disable_torque: bool = True) -> None:
        if disable_torque:
            self.check("disabling torque")
        self.is_connected = self.dead_handle = False


class FakeArm(Robot):
    config_class = FakeArmConfig
    name = "fake_arm"

    def __init__(self, config: FakeArmConfig) -> None:
        super().__init__(config)
        self.config = config
        self.bus = FakeBus(config.port, config.use_degrees)
        self._calibration = self.bus.calibration
        if not config.calibrated:
            self.bus.calibration = {}
        self.cameras = make_cameras_from_configs(config.cameras)
        self.positions = {f"{m}.pos": 0.0 for m in MOTORS}
        self.sent: list[dict[str, float]] = []
        self.connects = 0

    @cached_property
    def observation_features(self) -> dict:
        cameras = {name: (cam.height, cam.width, 3) for name, cam in self.cameras.items()}
        return {**{f"{m}.pos": float for m in MOTORS}, **cameras}

    @cached_property
    def action_features(self) -> dict:
        return {f"{m}.pos": float for m in MOTORS}

    @property
    def is_connected(self) -> bool:
        return self.bus.is_connected and all(camera.is_connected for camera in self.cameras.values())

    @property
    def is_calibrated(self) -> bool:
        return True

    def unplug(self) -> None:
        """A pulled USB cable: every call fails, and the open handle is dead for good."""
        self.bus.present = False
        self.bus.dead_handle = self.bus.is_connected

    def plug(self) -> None:
        self.bus.present = True

    def connect(self, calibrate: bool = True) -> None:
        self.bus.connect()
        if calibrate and not self.bus.calibration:
            self.bus.calibration = self._calibration  # what LeRobot's interactive calibration would record
        for camera in self.cameras.values():
            camera.connect()
        self.connects += 1

    def calibrate(self) -> None:
        pass

    def configure(self) -> None:
        pass

    def get_observation(self) -> dict:
        self.bus.check("reading positions")
        frames = {name: cam.read_latest(self.config.max_frame_age_ms) for name, cam in self.cameras.items()}
        return {**self.positions, **frames}

    def send_action(self, action: dict) -> dict:
        self.bus.check("writing goals")
        self.positions = {k: float(action[k]) for k in self.positions}
        self.sent.append(dict(self.positions))
        return dict(self.positions)

    def disconnect(self) -> None:
        self.bus.disconnect(disable_torque=True)  # LeRobot's arms disable torque on disconnect
        for camera in self.cameras.values():
            camera.disconnect()


class _FakeTeleop(Teleoperator):
    """LeRobot's Teleoperator abstract methods, for devices that need no calibration."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self._connected = False

    @property
    def feedback_features(self) -> dict:
        return {}

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def is_calibrated(self) -> bool:
        return True

    def calibrate(self) -> None:
        pass

    def configure(self) -> None:
        pass

    def send_feedback(self, feedback: dict) -> None:
        pass

    def disconnect(self) -> None:
        self._connected = False


class FakeLeader(_FakeTeleop):
    config_class = FakeLeaderConfig
    name = "fake_leader"

    def __init__(self, config: FakeLeaderConfig) -> None:
        super().__init__(config)
        self.positions = {f"{m}.pos": 0.0 for m in MOTORS}

    @property
    def action_features(self) -> dict:
        return {f"{m}.pos": float for m in MOTORS}

    def connect(self, calibrate: bool = True) -> None:
        self._connected = True

    def get_action(self) -> dict:
        return dict(self.positions)


class FakeGamepad(_FakeTeleop):
    """As LeRobot's gamepad: end-effector deltas and a gripper command (0 close, 1 stay, 2 open);
    its connect() takes no calibrate argument."""

    config_class = FakeGamepadConfig
    name = "fake_gamepad"

    def __init__(self, config: FakeGamepadConfig) -> None:
        super().__init__(config)
        self.config = config
        self.action = {"delta_x": 0.0, "delta_y": 0.0, "delta_z": 0.0, "gripper": 1}

    @property
    def action_features(self) -> dict:
        if self.config.raw_keys:
            return {"dtype": "float32", "shape": (1,), "names": {"motors": ["key"]}}
        return {"dtype": "float32", "shape": (4,), "names": {"delta_x": 0, "delta_y": 1, "delta_z": 2, "gripper": 3}}

    def connect(self) -> None:
        self._connected = True

    def get_action(self) -> dict:
        return dict(self.action)
