"""Requests the UI submits to a session, and the control modes they move between.

The UI never touches the robot: it puts one of these on the session's queue and the control
thread applies it at the start of the next tick.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Mode(str, enum.Enum):
    IDLE = "idle"  # holding, no instruction running
    RUNNING = "running"  # the policy's chunks drive the robot
    PAUSED = "paused"  # holding; Run resumes with the same instruction
    TAKEOVER = "takeover"  # the operator drives
    ESTOP = "estop"  # holding, latched until the scene is reset
    HOMING = "homing"  # moving to the robot's home pose within the step clamp, then idle


@dataclass(frozen=True)
class RunPolicy:
    instruction: str


@dataclass(frozen=True)
class Pause:
    pass


@dataclass(frozen=True)
class TakeOver:
    """The operator takes control. `client` names who (a browser tab, a device); while one
    client holds control, another's takeover is refused."""

    client: str = ""


@dataclass(frozen=True)
class Release:
    """Hand control back to the policy (a fresh inference; the stale chunk is discarded).
    Only the client holding control may release it."""

    client: str = ""


@dataclass(frozen=True)
class EStop:
    pass


@dataclass(frozen=True)
class ReturnHome:
    """Move to the robot's home pose, no faster than the step clamp allows; any other mode command
    (run, take over, pause, e-stop) interrupts it."""


@dataclass(frozen=True)
class Reconnect:
    """Connect again to the devices that stopped answering (the robot, the teleop device)."""


@dataclass(frozen=True)
class ResetScene:
    seed: int | None = None  # None: a new random seed


@dataclass(frozen=True)
class TeleopKeys:
    """The browser's operator input right now: keys held (runtime/control/teleop_keys.py has the keymap)
    and gamepad axes (dx, dy, dz, droll, dpitch, dyaw), each in [-1, 1], empty without a gamepad."""

    keys: frozenset[str]
    toggle_gripper: bool = False
    axes: tuple[float, ...] = ()
    client: str = ""


@dataclass(frozen=True)
class StartRecording:
    pass


@dataclass(frozen=True)
class StopRecording:
    """Save the episode in progress with `outcome` ("success" / "failure"); None: the scene's
    own success detector decides ("unknown" for robots without one)."""

    outcome: str | None = None


@dataclass(frozen=True)
class RerecordEpisode:
    """Drop the episode in progress, put the scene back to its start (same seed) and record anew."""


@dataclass(frozen=True)
class SetRecordingMode:
    mode: str  # one of RECORDING_MODES


@dataclass(frozen=True)
class DiscardRecording:
    pass


@dataclass(frozen=True)
class DryRun:
    """Show what the policy would do for `instruction` (plan and foresight) while the robot holds."""

    instruction: str


@dataclass(frozen=True)
class DiscardDryRuns:
    pass


@dataclass(frozen=True)
class SwapPolicy:
    """Drive with `policy` from now on (a checkpoint loaded off the control thread). The robot
    holds while it takes over; Run resumes the instruction with it."""

    policy: Any
    label: str  # what the page shows as the model, e.g. the checkpoint folder
    # its surprise calibration (robot_io/surprise_calibration.py), None: uncalibrated
    calibration: Any = None


@dataclass(frozen=True)
class PolicyFailed:
    """Sent by the inference thread: the policy raised or returned an unusable chunk."""

    message: str


# "attempts": the operator starts and stops episodes; policy and corrections land in one episode.
# "corrections": each takeover is its own episode, from Take over to handing back.
RECORDING_MODES = ("attempts", "corrections")

Command = (
    RunPolicy | Pause | TakeOver | Release | EStop | ResetScene | TeleopKeys
    | StartRecording | StopRecording | DiscardRecording | RerecordEpisode | SetRecordingMode | PolicyFailed
    | DryRun | DiscardDryRuns | SwapPolicy | ReturnHome | Reconnect
)


# The longest instruction the console takes: the session's default and the replay's limit.
MAX_INSTRUCTION_CHARS = 200


def validate_instruction(text: str, max_chars: int) -> str:
    """The instruction to send, stripped; ValueError with a message for the operator otherwise."""
    cleaned = " ".join(str(text).split())
    if not cleaned:
        raise ValueError("The instruction is empty: type what the robot should do.")
    if len(cleaned) > max_chars:
        raise ValueError(f"The instruction is {len(cleaned)} characters long; the limit is {max_chars}.")
    return cleaned
