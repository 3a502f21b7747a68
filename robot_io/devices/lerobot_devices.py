"""Real devices through LeRobot: a robot (with its cameras) and a teleoperator chosen by a config file
or command-line flags in LeRobot's own config field names, built with LeRobot's own factories.

    app.py --devices lab.yaml
    app.py --robot.type=so101_follower --robot.port=/dev/ttyACM0 --robot.max_relative_target=5 \
           --robot.cameras="{front: {type: opencv, index_or_path: 0, width: 640, height: 480, fps: 30}}" \
           --teleop.type=so101_leader --teleop.port=/dev/ttyACM1 --camera-map head=front

A devices file (JSON or YAML) holds `robot` and `teleop` as LeRobot's RobotConfig /
TeleoperatorConfig (any registered `type`: every robot, camera and teleoperator LeRobot ships, our
"playback" camera, and installed lerobot_* plugins), plus our own keys (DevicesConfig below). The
`--robot.*` / `--teleop.*` flags override the file, as in LeRobot's scripts.

Without any of these the console runs the simulation. Devices are connected when built, so
LeRobot's calibration prompts (in the terminal) and a wrong port come before the console serves.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from robot_io.devices.lerobot_adapters import (
    LeRobotCartesianTeleoperator, LeRobotRobot, LeRobotTeleoperator, connect_device, is_end_effector_teleop,
)
from robot_io.devices.name_mapping import NameMapping
from robot_io.devices.robot import CartesianControl, Robot
from robot_io.devices.teleop import Teleoperator

if TYPE_CHECKING:  # imported for real in load_devices_config: LeRobot costs seconds the simulation need not pay
    from lerobot.robots import RobotConfig
    from lerobot.teleoperators import TeleoperatorConfig

DEVICE_FLAG_PREFIXES = ("--robot", "--teleop")  # LeRobot's own flags, parsed by draccus
LEROBOT_DEVICE_PACKAGES = ("lerobot.robots", "lerobot.cameras", "lerobot.teleoperators")
OUR_DEVICE_MODULES = ("robot_io.devices.config_playback_camera",)


class DeviceError(ValueError):
    """The devices cannot be built or connected; the message names the device and why."""


@dataclass
class DevicesConfig:
    robot: RobotConfig | None = None  # None: the simulation
    teleop: TeleoperatorConfig | None = None
    camera_map: dict[str, str] = field(default_factory=dict)  # model camera -> robot camera ("head": "front")
    joint_map: dict[str, str] = field(default_factory=dict)  # model key -> robot key ("joint_1.pos": "shoulder_pan.pos")
    joint_limits: dict[str, list[float]] = field(default_factory=dict)  # robot key -> [low, high], over the robot's own
    max_step: dict[str, float] = field(default_factory=dict)  # robot key -> largest change per tick, over max_relative_target
    home: dict[str, float] = field(default_factory=dict)  # robot key -> position; empty: the pose at the first tick
    calibrate: bool = True  # let LeRobot calibrate an uncalibrated device at connect (it asks in the terminal)

    def __post_init__(self) -> None:
        if self.robot is None and (self.joint_limits or self.max_step or self.home):
            raise DeviceError("joint_limits, max_step and home describe a LeRobot robot: give `robot` too")
        for key, limits in self.joint_limits.items():
            if len(limits) != 2 or not limits[0] < limits[1]:
                raise DeviceError(f"joint_limits[{key!r}] must be [low, high] with low < high, got {limits}")
        for key, step in self.max_step.items():
            if not step > 0:
                raise DeviceError(f"max_step[{key!r}] must be > 0, got {step}")


@dataclass(frozen=True)
class Devices:
    robot: Robot
    teleoperator: Teleoperator | None
    notes: tuple[str, ...] = ()  # what the operator should know (safety limits left unknown, ...)


@dataclass(frozen=True)
class DeviceRequest:
    """Which LeRobot devices a command asks for (robot_io/devices/device_flags.py reads it off the
    command line); all empty: the simulation."""

    devices_file: Path | None = None  # JSON or YAML: robot / teleop in LeRobot's config fields, maps, limits
    flags: tuple[str, ...] = ()  # LeRobot's own --robot.FIELD=VALUE / --teleop.FIELD=VALUE, over the file's
    camera_map: str | None = None  # "model camera=robot camera" pairs, over the file's camera_map
    joint_map: str | None = None  # "model key=robot key" pairs, over the file's joint_map

    def wants_lerobot(self) -> bool:
        return bool(self.devices_file or self.flags or self.camera_map or self.joint_map)


def build_devices(request: DeviceRequest, default_robot: Robot) -> Devices:
    """The LeRobot devices `request` asks for, connected; `default_robot` (the simulation) when
    it asks for no robot. DeviceError names whatever is wrong."""
    if not request.wants_lerobot():
        return Devices(default_robot, None)
    config = load_devices_config(request.devices_file, request.flags)
    cameras = (NameMapping.parse(request.camera_map, "camera") if request.camera_map is not None
               else NameMapping("camera", config.camera_map))
    joints = (NameMapping.parse(request.joint_map, "joint") if request.joint_map is not None
              else NameMapping("joint", config.joint_map))
    notes: list[str] = []
    if config.robot is None:
        if cameras.model_to_device:
            raise DeviceError("a camera mapping renames a LeRobot robot's cameras: give the robot too (--robot.type or --devices)")
        if joints.model_to_device and config.teleop is None:
            raise DeviceError("a joint mapping renames a LeRobot robot's or teleoperator's joints: give one (--robot.type, --teleop.type or --devices)")
        robot = default_robot
    else:
        robot = _build_robot(config, cameras, joints, notes)
    try:
        teleoperator = _build_teleoperator(config, joints, robot) if config.teleop is not None else None
    except DeviceError:
        if robot is not default_robot:
            robot.disconnect()  # connected above; the start stops here
        raise
    return Devices(robot, teleoperator, tuple(notes))


def load_devices_config(path: Path | None, flags: Sequence[str]) -> DevicesConfig:
    """The devices file (if any) with the flags over it, decoded by draccus into LeRobot's config classes."""
    import draccus
    from lerobot.robots import RobotConfig
    from lerobot.teleoperators import TeleoperatorConfig

    failed = load_lerobot_registry()
    if path is not None and not Path(path).is_file():
        raise DeviceError(f"no devices file at {path}")
    # DevicesConfig's annotations name these; draccus resolves them in this module's namespace.
    globals().update(RobotConfig=RobotConfig, TeleoperatorConfig=TeleoperatorConfig)
    try:
        return draccus.parse(DevicesConfig, config_path=path, args=list(flags), exit_on_error=False)
    except DeviceError:
        raise
    except Exception as err:  # noqa: BLE001 - draccus reports bad fields, types and choices many ways
        source = f"the devices file {path}" if path is not None else "the device flags"
        unavailable = f" (LeRobot device packages that did not import: {failed})" if failed else ""
        raise DeviceError(f"{source}: {err}{unavailable}".strip()) from err


def load_lerobot_registry() -> dict[str, str]:
    """Import every device package LeRobot ships (each registers its config types), ours, and the
    installed lerobot_* plugins; returns the packages that failed to import and why."""
    from lerobot.utils.import_utils import register_third_party_plugins

    failed: dict[str, str] = {}
    for package_name in LEROBOT_DEVICE_PACKAGES:
        package = importlib.import_module(package_name)
        for module in pkgutil.iter_modules(package.__path__):
            if module.ispkg:
                try:
                    importlib.import_module(f"{package_name}.{module.name}")
                except ImportError as err:
                    failed[f"{package_name}.{module.name}"] = str(err)
    for module_name in OUR_DEVICE_MODULES:
        importlib.import_module(module_name)
    register_third_party_plugins()
    return failed


def _build_robot(config: DevicesConfig, cameras: NameMapping, joints: NameMapping, notes: list[str]) -> LeRobotRobot:
    from lerobot.robots.utils import make_robot_from_config

    kind = config.robot.type
    try:
        device = make_robot_from_config(config.robot)
    except ImportError as err:  # an optional hardware package (feetech, dynamixel, pyrealsense2, ...)
        raise DeviceError(f"robot {kind!r} needs a package that is not installed: {err}") from err
    except Exception as err:  # noqa: BLE001 - LeRobot's constructors raise many kinds
        raise DeviceError(f"cannot build robot {kind!r}: {type(err).__name__}: {err}") from err
    # LeRobot's own robot name (what its datasets record as robot_type), e.g. "so_follower".
    robot = LeRobotRobot(device, getattr(device, "name", kind), cameras, joints, joint_limits={k: (v[0], v[1]) for k, v in config.joint_limits.items()},
                         max_step=config.max_step, home=config.home or None)
    try:
        robot.connect(calibrate=config.calibrate)
    except Exception as err:  # noqa: BLE001 - a port, a camera, a calibration: all stop the start
        raise DeviceError(f"cannot connect robot {kind!r}: {type(err).__name__}: {err}") from err
    # After connect: calibration (which the limits in degrees come from) may have run only now.
    no_step = [key for key in robot.action_features if key not in robot.max_step]
    if no_step:
        raise DeviceError(
            f"robot {kind!r} has no maximum step per tick for {no_step}: set `max_relative_target` in its config "
            "(LeRobot's own safety field) or `max_step` in the devices file; without it one command could move the arm anywhere"
        )
    unbounded = [key for key in robot.action_features if key not in robot.joint_limits]
    if unbounded:
        notes.append(f"No joint limits known for {unbounded}: only the step clamp bounds them (set joint_limits in the devices file).")
    return robot


def _build_teleoperator(config: DevicesConfig, joints: NameMapping, robot: Robot) -> Teleoperator:
    from lerobot.teleoperators.utils import make_teleoperator_from_config

    kind = config.teleop.type
    try:
        device = make_teleoperator_from_config(config.teleop)
    except ImportError as err:
        raise DeviceError(f"teleoperator {kind!r} needs a package that is not installed: {err}") from err
    except Exception as err:  # noqa: BLE001
        raise DeviceError(f"cannot build teleoperator {kind!r}: {type(err).__name__}: {err}") from err
    try:
        features = device.action_features
    except Exception as err:  # noqa: BLE001 - some LeRobot teleoperators cannot say before they connect
        raise DeviceError(f"teleoperator {kind!r} does not describe its actions ({type(err).__name__}: {err})") from err
    if is_end_effector_teleop(features):
        if not isinstance(robot, CartesianControl):
            raise DeviceError(f"teleoperator {kind!r} moves an end effector, but robot {robot.name!r} has no "
                              "end-effector control: use a leader arm")
        teleoperator: Teleoperator = LeRobotCartesianTeleoperator(device)
    elif not features or not all(value is float for value in features.values()):
        raise DeviceError(f"teleoperator {kind!r} gives neither joint positions nor end-effector deltas (its action "
                          f"features are {features}): use a leader arm, a gamepad or keyboard_ee, or the page's own keys")
    else:
        joints.check(list(features), f"teleoperator {kind!r}")
        teleoperator = LeRobotTeleoperator(device, joints)
        unknown = [key for key in teleoperator.action_features if key not in robot.action_features]
        if unknown:
            raise DeviceError(f"teleoperator {kind!r} gives {unknown}, which robot {robot.name!r} does not take: "
                              f"its actions are {list(robot.action_features)} (map them with joint_map)")
    try:
        connect_device(device, config.calibrate)
    except Exception as err:  # noqa: BLE001
        raise DeviceError(f"cannot connect teleoperator {kind!r}: {type(err).__name__}: {err}") from err
    return teleoperator
