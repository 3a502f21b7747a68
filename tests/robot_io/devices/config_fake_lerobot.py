"""Configs of our fake LeRobot devices (tests/robot_io/devices/fake_lerobot.py), registered with LeRobot's
registries as real devices are, so they are built through the same factories. The file is named
config_*.py beside the devices because that is where LeRobot's factory looks for their classes."""

from dataclasses import dataclass, field

from lerobot.cameras import CameraConfig
from lerobot.robots import RobotConfig
from lerobot.teleoperators import TeleoperatorConfig


@RobotConfig.register_subclass("fake_arm")
@dataclass
class FakeArmConfig(RobotConfig):
    port: str  # required, as a real arm's serial port
    max_relative_target: float | dict[str, float] | None = None
    cameras: dict[str, CameraConfig] = field(default_factory=dict)
    use_degrees: bool = True
    max_frame_age_ms: int = 500  # what get_observation passes to the cameras' read_latest (LeRobot's default)
    calibrated: bool = True  # False: no calibration until connect(calibrate=True) makes one, as LeRobot's arms


@TeleoperatorConfig.register_subclass("fake_leader")
@dataclass
class FakeLeaderConfig(TeleoperatorConfig):
    port: str


@TeleoperatorConfig.register_subclass("fake_gamepad")
@dataclass
class FakeGamepadConfig(TeleoperatorConfig):
    use_gripper: bool = True
    raw_keys: bool = False  # describe its action as LeRobot's plain keyboard does (key presses, no joints or deltas)
