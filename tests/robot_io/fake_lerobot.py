"""Fake LeRobot devices: an arm with a motor bus in LeRobot's terms (Motor, MotorNormMode,
MotorCalibration) and real LeRobot cameras, a leader arm and a gamepad, subclassing LeRobot's own
Robot and Teleoperator bases. Tests reach the device behind our adapter to move it or unplug it."""

from __future__ import annotations

from functools import cached_property

from lerobot.cameras import make_cameras_from_configs
from lerobot.motors import Motor, MotorCalibration, MotorNormMode
from lerobot.robots import Robot
from lerobot.teleoperators import Teleoperator

from tests.robot_io.config_fake_lerobot import FakeArmConfig, FakeGamepadConfig, FakeLeaderConfig

MODEL = "sts3215"
STEPS_PER_TURN = 4096
ELBOW_RANGE = (1024, 3072)  # raw steps: half a turn of motion, so +-90 degrees
MOTORS = ("shoulder", "elbow", "gripper")


class FakeBus:
    """What a LeRobot MotorsBus exposes for safety: motors, calibration, resolutions."""

    model_resolution_table = {MODEL: STEPS_PER_TURN}

    def __init__(self, use_degrees: bool) -> None:
        body = MotorNormMode.DEGREES if use_degrees else MotorNormMode.RANGE_M100_100
        self.motors = {
            "shoulder": Motor(1, MODEL, MotorNormMode.RANGE_M100_100),
            "elbow": Motor(2, MODEL, body),
            "gripper": Motor(3, MODEL, MotorNormMode.RANGE_0_100),
        }
        self.calibration = {"elbow": MotorCalibration(id=2, drive_mode=0, homing_offset=0,
                                                      range_min=ELBOW_RANGE[0], range_max=ELBOW_RANGE[1])}


class FakeArm(Robot):
    config_class = FakeArmConfig
    name = "fake_arm"

    def __init__(self, config: FakeArmConfig) -> None:
        super().__init__(config)
        self.config = config
        self.bus = FakeBus(config.use_degrees)
        self.cameras = make_cameras_from_configs(config.cameras)
        self.positions = {f"{m}.pos": 0.0 for m in MOTORS}
        self.sent: list[dict[str, float]] = []
        self.unplugged = False  # set by a test: every call raises, as a pulled USB cable makes them
        self.connects = 0
        self._connected = False

    @cached_property
    def observation_features(self) -> dict:
        cameras = {name: (cam.height, cam.width, 3) for name, cam in self.cameras.items()}
        return {**{f"{m}.pos": float for m in MOTORS}, **cameras}

    @cached_property
    def action_features(self) -> dict:
        return {f"{m}.pos": float for m in MOTORS}

    @property
    def is_connected(self) -> bool:
        return self._connected

    @property
    def is_calibrated(self) -> bool:
        return True

    def connect(self, calibrate: bool = True) -> None:
        if self.unplugged:
            raise ConnectionError(f"could not open port {self.config.port}")
        for camera in self.cameras.values():
            if not camera.is_connected:
                camera.connect()
        self.connects += 1
        self._connected = True

    def calibrate(self) -> None:
        pass

    def configure(self) -> None:
        pass

    def get_observation(self) -> dict:
        if self.unplugged:
            raise ConnectionError(f"no status packet from {self.config.port}")
        frames = {name: cam.read_latest(self.config.max_frame_age_ms) for name, cam in self.cameras.items()}
        return {**self.positions, **frames}

    def send_action(self, action: dict) -> dict:
        if self.unplugged:
            raise ConnectionError(f"write to {self.config.port} failed")
        self.positions = {k: float(action[k]) for k in self.positions}
        self.sent.append(dict(self.positions))
        return dict(self.positions)

    def disconnect(self) -> None:
        for camera in self.cameras.values():
            if camera.is_connected:
                camera.disconnect()
        self._connected = False


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
        self.action = {"delta_x": 0.0, "delta_y": 0.0, "delta_z": 0.0, "gripper": 1}

    @property
    def action_features(self) -> dict:
        return {"dtype": "float32", "shape": (4,), "names": {"delta_x": 0, "delta_y": 1, "delta_z": 2, "gripper": 3}}

    def connect(self) -> None:
        self._connected = True

    def get_action(self) -> dict:
        return dict(self.action)
