"""The immutable picture of a session that the control thread publishes every tick.

The UI only ever reads these; frames are shared read-only arrays, never copied per viewer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import numpy as np

from robot_io.chunks.blending import SeamStats
from robot_io.chunks.schedule import Chunk
from runtime.control.commands import Mode
from runtime.control.loop_timing import LoopStats
from runtime.control.recording import RecordingStatus
from runtime.control.surprise import Surprise, SurpriseGauge


@dataclass(frozen=True)
class Snapshot:
    tick: int
    wall_time: float  # time.time() when the observation was taken
    mode: Mode
    instruction: str  # the instruction the policy runs (or last ran)
    scene: str  # what the world is (sim: seed, belt speed, target)
    scene_instruction: str  # the instruction the scene was built for, "" when none
    success: bool | None  # the scene's own success detector; None when there is none
    frames: Mapping[str, np.ndarray]  # camera -> uint8 (H, W, 3), read-only
    state: Mapping[str, float]
    action: Mapping[str, float]  # the command sent this tick, after safety
    action_source: str  # "policy", "operator" or "hold"
    loop: LoopStats
    recording: RecordingStatus | None
    chunk_id: int | None
    chunk_step: int | None
    chunk: Chunk | None  # the chunk the plan runs (its commands after the observation's tick, read-only), None when holding
    previous_chunk: Chunk | None  # the one it replaced, for "planned before" views
    queue_depth: int  # steps of the current chunk left after this tick
    inference_ms: float | None
    seams: SeamStats  # jumps at recent chunk switches, raw and after blending
    teleop_available: bool
    controller: str | None  # who holds control while taken over (a browser tab's id, the device)
    last_surprise: Surprise | None  # the latest auto-hold (runtime/control/surprise.py), None when none yet
    last_error: str
    hint: str
    events: tuple[str, ...] = field(default=())  # recent events, newest last
    # The latest inference's own stage timings (a remote policy: "model", "network", ...), read-only.
    inference_timings_ms: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    device_fault: str = ""  # which device stopped answering and why ("" when all answer): Reconnect is offered
    stale_cameras: tuple[str, ...] = ()  # cameras with no fresh frame: the robot holds
    # Ticks from the latest chunk's observation to its take-over (None before any), against the
    # steps a chunk runs before the next is asked for: a delay near the horizon leaves no slack.
    inference_delay_ticks: int | None = None
    execute_horizon: int = 0
    surprise_gauge: SurpriseGauge | None = None  # the latest judged prediction's calibrated score (with a calibration)


def freeze_frames(observation: dict, camera_keys: list[str]) -> Mapping[str, np.ndarray]:
    frames = {}
    for key in camera_keys:
        view = np.asarray(observation[key]).view()  # a view, so the owner's buffer stays writable
        view.flags.writeable = False
        frames[key] = view
    return MappingProxyType(frames)
