"""What a session is told at start: rates, chunking, limits, teleop, recording, scheduling.

One dataclass, validated on construction; app.py builds it from its flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from robot_io.chunks.schedule import ChunkConfig
from runtime.control.commands import MAX_INSTRUCTION_CHARS, RECORDING_MODES
from runtime.control.safety import WorkspaceBox
from runtime.control.surprise import SurpriseConfig

REALTIME_PRIORITY_MAX = 99
# The stale-camera lockout: 250 ms is ~4 ticks at 15 Hz and ~7 frames of a 30 fps camera, and it
# is under LeRobot's own 500 ms read_latest limit, so the console names the camera before a LeRobot
# robot's read fails.
DEFAULT_STALE_FRAME_MS = 250.0


@dataclass
class SessionConfig:
    fps: float = 15.0  # control rate (Hz)
    # When the next chunk is asked for and how it takes over (robot_io/chunks/schedule.py): the
    # same ChunkConfig model.evaluate and runtime.collect_corrections run the sim with.
    chunks: ChunkConfig = field(default_factory=ChunkConfig)
    max_instruction_chars: int = MAX_INSTRUCTION_CHARS
    max_step_per_tick: float = 0.2  # rad (or gripper units) a command may change per tick
    max_step_overrides: dict[str, float] = field(default_factory=dict)
    teleop_linear_step: float = 0.01  # m per tick while a key is held (0.15 m/s at 15 Hz)
    teleop_angular_step: float = 0.05  # rad per tick
    key_timeout_s: float = 0.3  # keys not refreshed by the browser this long count as released
    teleop_dead_zone: float = 0.15  # gamepad axes within this of 0 count as 0 (sticks never rest at 0)
    device_dead_zone: float = 0.02  # a teleop device (leader arm) moving this much in a tick is in use
    # Moving an input past its dead zone takes over at once, in that tick (no button needed).
    takeover_on_input: bool = True
    # One client holds control at a time; one silent this long (tab closed) loses its claim.
    control_lease_s: float = 5.0
    record_root: Path | None = None  # None: recording disabled
    # attempts: episodes you start and stop; corrections: each takeover is an episode (switchable on the page)
    recording_mode: str = "attempts"
    save_on_exit: bool = True  # Ctrl-C / SIGTERM: save (True) or discard the episode in progress
    scene_seed: int | None = 0  # first scene's seed; none for random
    # The control thread (and the render threads it starts) asks for SCHED_FIFO at this priority,
    # falling back to niceness -10, then to normal priority, saying which in the event log: on a
    # small machine shared with a browser it keeps the period error low (bench.bench_console).
    # It sleeps every period, so it cannot hog a core. 0 = leave scheduling alone. Needs
    # CAP_SYS_NICE (root or `setcap`); ordinary users get the fallbacks.
    realtime_priority: int = 10
    surprise: SurpriseConfig = field(default_factory=SurpriseConfig)  # auto-hold (runtime/control/surprise.py), off by default
    # A camera (of a robot whose cameras run on their own clock) with no fresh frame this long holds
    # the robot and pauses the policy.
    stale_frame_ms: float = DEFAULT_STALE_FRAME_MS
    workspace: WorkspaceBox | None = None  # end-effector box (world metres), for robots with forward kinematics

    def __post_init__(self) -> None:
        if not 1 <= self.fps <= 1000:
            raise ValueError(f"fps must be between 1 and 1000, got {self.fps}")
        if self.max_instruction_chars < 1:
            raise ValueError("max_instruction_chars must be >= 1")
        if self.max_step_per_tick <= 0:
            raise ValueError(f"max_step_per_tick must be > 0, got {self.max_step_per_tick}")
        if not 0 <= self.realtime_priority <= REALTIME_PRIORITY_MAX:
            raise ValueError(f"realtime_priority must be between 0 and {REALTIME_PRIORITY_MAX}, got {self.realtime_priority}")
        if self.key_timeout_s <= 0:
            raise ValueError("key_timeout_s must be > 0")
        if not 0 <= self.teleop_dead_zone < 1:
            raise ValueError(f"teleop_dead_zone must be in [0, 1), got {self.teleop_dead_zone}")
        if self.device_dead_zone < 0:
            raise ValueError(f"device_dead_zone must be >= 0, got {self.device_dead_zone}")
        if self.control_lease_s <= 0:
            raise ValueError(f"control_lease_s must be > 0, got {self.control_lease_s}")
        if not isinstance(self.surprise, SurpriseConfig):
            raise TypeError(f"surprise must be a SurpriseConfig, got {type(self.surprise).__name__}")
        if not isinstance(self.chunks, ChunkConfig):
            raise TypeError(f"chunks must be a ChunkConfig, got {type(self.chunks).__name__}")
        if not self.stale_frame_ms > 0:
            raise ValueError(f"stale_frame_ms must be > 0, got {self.stale_frame_ms}")
        if self.workspace is not None and not isinstance(self.workspace, WorkspaceBox):
            raise TypeError(f"workspace must be a WorkspaceBox or None, got {type(self.workspace).__name__}")
        if self.record_root is not None:
            self.record_root = Path(self.record_root)
        if self.recording_mode not in RECORDING_MODES:
            raise ValueError(f"recording_mode must be one of {RECORDING_MODES}, got {self.recording_mode!r}")
