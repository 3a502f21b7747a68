"""What one control tick did, handed to the session's subscribers after the snapshot is out.

Subscribers (the recording, the Rerun logger) run on the control thread, after the robot got its
command and the page its snapshot: each must be cheap (queue the frame, wake its own thread) and
a subscriber that raises costs its own view, never the robot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from robot_io.chunks.schedule import Chunk
from runtime.control.snapshot import Snapshot


@dataclass(frozen=True)
class TickRecord:
    snapshot: Snapshot  # what the page sees of this tick
    observation: dict[str, Any]  # the robot's observation, as read
    intervention: bool  # the operator had control (DAgger's convention: their holds count too)
    chunk: Chunk | None  # the policy chunk that produced the command; None when the policy did not drive
    foresight_psnr_db: float | None  # mean over cameras of the foresight judged at this tick, None when none
    surprise_score: float | None  # that foresight's calibrated score (SurpriseGauge.p_value); None: none judged, or no calibration
    segment: str  # robot_io.datasets.schema.INTERVENTION_SEGMENTS: "none" unless the operator has control


class TickSubscriber(Protocol):
    def on_tick(self, record: TickRecord) -> None: ...
