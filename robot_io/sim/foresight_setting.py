"""The conveyor's foresight setting: where predicting what happens next should decide the outcome.

Two options, both off by default (the standard scene), taken as flags from this one dataclass by
every command that runs the sim (app.py, robot_io.sim.collect, robot_io.sim.evaluate_expert,
model.evaluate, runtime.collect_corrections):

- a cover: an opaque tunnel over part of the belt before the grasp zone. It is real geometry in
  the scene (rendered, touched by nothing), so the head and side cameras cannot see a block
  under it: where the block comes out must be predicted.
- a speed change: once per episode, at a seeded time, the belt eases to a seeded new speed, so a
  block does not come out where its speed when it went in says.

The change is drawn from the scene seed on a random stream of its own, so the rest of seed S's
scene is the standard scene of seed S, and every command running seed S meets the same episode.
A dataset records the setting it was collected in (meta/conveyor_setting.json); model.train
copies it into the checkpoint's train_config.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robot_io.config_flags import FlagGroup, add_config_flags, config_from_flags
from robot_io.sim import scene

SETTING_STREAM = 23  # mixed with the scene seed: the setting's own random stream
SPEED_RAMP_S = 0.5  # s the belt takes to reach its new speed: a jump would make the blocks slide
# The arm grasps blocks up to x = 0.40 m (ScriptedExpertConfig.reach_x_range); a cover ending
# further on leaves too little open belt in reach to grasp on.
MAX_COVER_END_X = 0.10
SETTING_FILE = Path("meta/conveyor_setting.json")  # in a dataset folder


@dataclass(frozen=True)
class SpeedChange:
    """One episode's belt speed schedule: `from_speed` until `at_s`, then a ramp to `to_speed`."""

    at_s: float  # s after the episode starts
    from_speed: float  # m/s
    to_speed: float  # m/s

    def speed(self, time_s: float) -> float:
        ramp = min(max((time_s - self.at_s) / SPEED_RAMP_S, 0.0), 1.0)
        return self.from_speed + (self.to_speed - self.from_speed) * ramp


@dataclass(frozen=True)
class ForesightSetting:
    # x (m along the belt) where an opaque cover over the belt begins; none: no cover
    cover_start: float | None = None
    cover_length: float = 0.25  # m of belt the cover hides
    # the belt changes speed once per episode, to a speed drawn between these (m/s); none: never
    speed_change_min: float | None = None
    speed_change_max: float | None = None
    # when the change begins, drawn between these (s after the episode starts)
    speed_change_after_min_s: float = 1.0
    speed_change_after_max_s: float = 4.0

    def __post_init__(self) -> None:
        def fail(message: str) -> None:
            raise ValueError(f"ForesightSetting: {message}")

        belt = scene.BELT_X_END - scene.BELT_X_START
        if not 0 < self.cover_length <= belt:
            fail(f"cover_length must be > 0 and at most the belt's length {belt:.2f} m, got {self.cover_length}")
        if self.cover_start is not None:
            start, end = self.cover_start, self.cover_start + self.cover_length
            if not scene.BELT_X_START <= start or not end <= scene.BELT_X_END:
                fail(f"the cover ({start:.3f} to {end:.3f} m) must lie on the belt, x from {scene.BELT_X_START} "
                     f"to {scene.BELT_X_END} m")
            if end > MAX_COVER_END_X:
                fail(f"the cover must end by x = {MAX_COVER_END_X} m so the arm has open belt in reach to grasp on; "
                     f"it ends at {end:.3f} m")
        speeds = (self.speed_change_min, self.speed_change_max)
        if (speeds[0] is None) != (speeds[1] is None):
            fail(f"give both speed_change_min and speed_change_max, or neither; got {speeds}")
        if speeds[0] is not None and not 0 < speeds[0] <= speeds[1] <= scene.MAX_BELT_SPEED:
            fail(f"the new belt speed range must satisfy 0 < min <= max <= {scene.MAX_BELT_SPEED} m/s, got {speeds}")
        if not 0 <= self.speed_change_after_min_s <= self.speed_change_after_max_s:
            fail("the speed change time range must satisfy 0 <= min <= max s, got "
                 f"{(self.speed_change_after_min_s, self.speed_change_after_max_s)}")

    @property
    def cover_x(self) -> tuple[float, float] | None:
        """(start, end) x of the cover, or None without one."""
        return None if self.cover_start is None else (self.cover_start, self.cover_start + self.cover_length)

    @property
    def changes_speed(self) -> bool:
        return self.speed_change_min is not None

    @property
    def is_standard(self) -> bool:
        return self.cover_start is None and not self.changes_speed

    def speed_change(self, seed: int, belt_speed: float) -> SpeedChange | None:
        """Episode `seed`'s speed schedule from `belt_speed`, or None when the speed never changes."""
        if not self.changes_speed:
            return None
        rng = np.random.default_rng((SETTING_STREAM, seed))
        at_s = float(rng.uniform(self.speed_change_after_min_s, self.speed_change_after_max_s))
        to_speed = float(rng.uniform(self.speed_change_min, self.speed_change_max))
        return SpeedChange(at_s, belt_speed, to_speed)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# --- flags, and what a dataset was recorded in ------------------------------------------------------
SETTING_FLAGS = FlagGroup(ForesightSetting, ("cover_start", "cover_length", "speed_change_min", "speed_change_max",
                                             "speed_change_after_min_s", "speed_change_after_max_s"))


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """--cover-start, --cover-length, --speed-change-min/-max, --speed-change-after-min-s/-max-s."""
    group = parser.add_argument_group("foresight setting (robot_io/sim/foresight_setting.py; off by default)")
    add_config_flags(group, SETTING_FLAGS)


def setting_from_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ForesightSetting:
    """The setting of add_setting_flags' flags; one it refuses stops the command with the limits named."""
    return config_from_flags(parser, args, SETTING_FLAGS)


def describe_setting(setting: ForesightSetting) -> str:
    """One line for logs and reports."""
    if setting.is_standard:
        return "standard conveyor (no cover, constant belt speed)"
    parts = []
    if setting.cover_x is not None:
        parts.append(f"cover over x {setting.cover_x[0]:.2f} to {setting.cover_x[1]:.2f} m")
    if setting.changes_speed:
        parts.append(f"belt speed changes to {setting.speed_change_min:.2f}-{setting.speed_change_max:.2f} m/s "
                     f"after {setting.speed_change_after_min_s:g}-{setting.speed_change_after_max_s:g} s")
    return ", ".join(parts)


def write_setting(dataset_root: Path, setting: ForesightSetting) -> None:
    """Record in a dataset the setting its episodes were collected in."""
    path = Path(dataset_root) / SETTING_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(setting.to_dict(), indent=2))


def read_setting(dataset_root: Path) -> ForesightSetting | None:
    """The setting a dataset was collected in; None for one that does not say (recorded before the
    setting existed, or not by the sim): the standard conveyor, or another robot."""
    path = Path(dataset_root) / SETTING_FILE
    if not path.is_file():
        return None
    try:
        return ForesightSetting(**json.loads(path.read_text()))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path} is not a foresight setting: {err}") from err


def check_recorded_setting(dataset_root: Path, setting: ForesightSetting) -> None:
    """ValueError when the dataset was collected in another setting than `setting` (one that does
    not say was collected on the standard conveyor): appending would mix two tasks."""
    recorded = read_setting(dataset_root) or ForesightSetting()
    if recorded != setting:
        raise ValueError(f"{dataset_root} was collected in another setting ({describe_setting(recorded)}); "
                         f"this run asks for {describe_setting(setting)}: use another folder")
