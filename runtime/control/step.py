"""Pure pieces of one control tick: who commands the robot this tick, and mode transitions.

Kept free of threads and devices so they can be tested exhaustively.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from robot_io.datasets.schema import SOURCE_HOLD, SOURCE_OPERATOR, SOURCE_POLICY
from runtime.control.commands import (
    Command, DiscardRecording, EStop, Mode, Pause, PolicyFailed, Release, ResetScene, ReturnHome, RunPolicy,
    StartRecording, StopRecording, TakeOver, TeleopKeys,
)


def choose_command(
    mode: Mode,
    queued: np.ndarray | None,
    operator: dict[str, float] | None,
    action_keys: list[str],
    home: Mapping[str, float] | None = None,
) -> tuple[dict[str, float] | None, str]:
    """The proposed command and its source; None means hold the previous command. Returning home
    counts as the operator's command: the operator asked for it."""
    if mode is Mode.HOMING and home is not None:
        return dict(home), SOURCE_OPERATOR
    if mode is Mode.RUNNING and queued is not None:
        return dict(zip(action_keys, (float(v) for v in queued))), SOURCE_POLICY
    if mode is Mode.TAKEOVER and operator is not None:
        return operator, SOURCE_OPERATOR
    return None, SOURCE_HOLD


@dataclass(frozen=True)
class Transition:
    mode: Mode
    message: str  # for the event log; "" when nothing worth saying happened
    refused: bool = False


def next_mode(mode: Mode, command: Command, has_instruction: bool) -> Transition:
    """Where a mode command takes the session. Non-mode commands keep the mode."""
    if isinstance(command, EStop):
        return Transition(Mode.ESTOP, "E-stop: holding. Reset the scene to continue.")
    if isinstance(command, ResetScene):
        return Transition(Mode.IDLE, "Scene reset.")
    if mode is Mode.ESTOP and isinstance(command, (RunPolicy, TakeOver, Release, Pause, ReturnHome)):
        return Transition(mode, "E-stop is engaged: reset the scene first.", refused=True)
    if isinstance(command, ReturnHome):
        return Transition(Mode.HOMING, "Returning home (within the step clamp).")
    if isinstance(command, RunPolicy):
        return Transition(Mode.RUNNING, f"Running: {command.instruction}")
    if isinstance(command, Pause):
        if mode is Mode.RUNNING:
            return Transition(Mode.PAUSED, "Paused: holding.")
        if mode is Mode.HOMING:
            return Transition(Mode.IDLE, "Homing stopped: holding.")
        return Transition(mode, "Nothing to pause.", refused=True)
    if isinstance(command, TakeOver):
        return Transition(Mode.TAKEOVER, "Operator has control.")
    if isinstance(command, Release):
        if mode is not Mode.TAKEOVER:
            return Transition(mode, "Not taken over: nothing to release.", refused=True)
        if has_instruction:
            return Transition(Mode.RUNNING, "Released: the policy continues from a fresh inference.")
        return Transition(Mode.IDLE, "Released: holding (no instruction to run).")
    if isinstance(command, PolicyFailed):
        if mode is Mode.RUNNING:
            return Transition(Mode.PAUSED, f"Policy failed, holding: {command.message}")
        return Transition(mode, "")
    if isinstance(command, (TeleopKeys, StartRecording, StopRecording, DiscardRecording)):
        return Transition(mode, "")
    raise TypeError(f"unknown command {command!r}")
