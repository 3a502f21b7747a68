"""The command line of the device choice: app.py's --devices, --camera-map, --joint-map and
LeRobot's own --robot.* / --teleop.* flags, turned into a DeviceRequest."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from robot_io.devices.lerobot_devices import DEVICE_FLAG_PREFIXES, DeviceRequest


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "devices", "LeRobot robots, cameras and teleoperators (default: the simulation). Besides these, every "
        "--robot.FIELD=VALUE / --teleop.FIELD=VALUE of LeRobot's configs, as in lerobot-record (e.g. --robot.type=so101_follower).")
    group.add_argument("--devices", type=Path, default=None, metavar="FILE",
                       help="JSON or YAML: robot / teleop in LeRobot's config fields, camera_map, joint_map, "
                            "joint_limits, max_step, home (robot_io/devices/lerobot_devices.py)")
    group.add_argument("--camera-map", default=None, metavar="MAP",
                       help="model camera = robot camera pairs, e.g. head=front,wrist=gripper (over the file's)")
    group.add_argument("--joint-map", default=None, metavar="MAP",
                       help="model key = robot key pairs, e.g. joint_1.pos=shoulder_pan.pos (over the file's)")


def device_request(parser: argparse.ArgumentParser, args: argparse.Namespace, leftovers: Sequence[str]) -> DeviceRequest:
    """The DeviceRequest of add_device_arguments' flags and LeRobot's --robot.* / --teleop.* among
    `parse_known_args`' leftovers."""
    return DeviceRequest(args.devices, tuple(device_flags(parser, leftovers)), args.camera_map, args.joint_map)


def device_flags(parser: argparse.ArgumentParser, leftovers: Sequence[str]) -> list[str]:
    """The --robot.* / --teleop.* flags (and their values) among `parse_known_args`' leftovers; any
    other unknown argument is an error, as parse_args would have made it."""
    flags: list[str] = []
    for arg in leftovers:
        is_flag = arg.startswith("--") and arg.split("=", 1)[0].split(".", 1)[0] in DEVICE_FLAG_PREFIXES
        if is_flag or (flags and not arg.startswith("-") and "=" not in flags[-1]):
            flags.append(arg)
        else:
            parser.error(f"unrecognized arguments: {arg}")
    return flags
