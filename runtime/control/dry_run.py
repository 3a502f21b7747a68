"""Dry runs: what the policy would do for an instruction, while the robot holds still.

The operator asks for a dry run of an instruction; the policy runner computes one inference on the
latest observation (never pushed to the chunk queue, so nothing moves) and hands it here as a
`Preview`: the planned chunk, the foresight pictures and the camera frames it was computed from.
Up to `MAX_PREVIEWS` previews are kept side by side, so a second instruction can be compared with
the first ("what would it do if told green instead of red?"); the next one replaces the newest.
Run turns a preview's instruction into a real run, from a fresh inference; Discard clears them.

Written by the runner thread, read by routes: all under one lock.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from robot_io.devices.robot import SceneGeometry
from robot_io.policy import PolicyOutput
from runtime.control.plan_overlay import plan_overlays

MAX_PREVIEWS = 2  # the first and the one compared with it


@dataclass(frozen=True)
class Preview:
    preview_id: int
    instruction: str
    obs_tick: int  # the tick whose observation the plan was computed from
    actions: np.ndarray | None  # (steps, action_dim) absolute commands, read-only; None on error
    foresight: Mapping[str, np.ndarray]  # camera -> uint8 (h, w, 3) predicted frame t+H (may be empty)
    frames: Mapping[str, np.ndarray]  # camera -> uint8 (H, W, 3) frame t, read-only
    latency_ms: float
    error: str = ""  # why the policy gave no plan, "" when it did
    # camera -> frame t with the planned end-effector path drawn (runtime/control/plan_overlay.py);
    # empty for robots that cannot project a plan (no SceneGeometry) and for failed previews
    plan_frames: Mapping[str, np.ndarray] = field(default_factory=dict)



def build_preview(preview_id: int, instruction: str, tick: int, frames: Mapping[str, np.ndarray],
                  joints: Mapping[str, float], output: PolicyOutput | None, latency_ms: float, error: str,
                  robot: object, action_keys: list[str]) -> tuple[Preview, str]:
    """The preview of one dry-run inference (`output` None when the policy failed: `error` says
    why), with its plan drawn over the cameras when the robot can project it; and a note when
    drawing failed ("" otherwise): a drawing problem costs the overlay, never the preview."""
    actions = None
    plan_frames: dict[str, np.ndarray] = {}
    note = ""
    if output is not None:
        actions = np.array(output.actions, dtype=np.float32)  # (steps, action_dim)
        actions.flags.writeable = False
        if isinstance(robot, SceneGeometry):
            try:
                plan_frames = plan_overlays(robot, action_keys, actions, dict(joints), frames)
            except Exception as err:  # noqa: BLE001
                note = f"Could not draw the dry run's plan over the cameras: {type(err).__name__}: {err}"
    preview = Preview(
        preview_id=preview_id,
        instruction=instruction,
        obs_tick=tick,
        actions=actions,
        foresight=dict(output.foresight or {}) if output is not None else {},
        frames=frames,
        latency_ms=latency_ms,
        error=error,
        plan_frames=plan_frames,
    )
    return preview, note


class DryRunBoard:
    def __init__(self, max_previews: int = MAX_PREVIEWS) -> None:
        if max_previews < 1:
            raise ValueError(f"max_previews must be >= 1, got {max_previews}")
        self._max = max_previews
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._previews: list[Preview] = []
        self._next_id = 1
        self._version = 0
        self._pending: str | None = None  # instruction being computed, for "thinking..." in the page

    def next_id(self) -> int:
        with self._lock:
            preview_id, self._next_id = self._next_id, self._next_id + 1
            return preview_id

    def set_pending(self, instruction: str | None) -> None:
        with self._lock:
            self._pending = instruction
            self._bump()

    def add(self, preview: Preview) -> None:
        """Keep `preview`; when the board is full it replaces the newest (the first stays as reference)."""
        with self._lock:
            if len(self._previews) >= self._max:
                self._previews.pop()
            self._previews.append(preview)
            self._pending = None
            self._bump()

    def clear(self) -> None:
        with self._lock:
            if self._previews or self._pending is not None:
                self._previews.clear()
                self._pending = None
                self._bump()

    def get(self, preview_id: int) -> Preview | None:
        with self._lock:
            return next((p for p in self._previews if p.preview_id == preview_id), None)

    def state(self) -> tuple[int, str | None, tuple[Preview, ...]]:
        """(version, instruction being computed or None, previews oldest first)."""
        with self._lock:
            return self._version, self._pending, tuple(self._previews)

    def wait_for_version(self, after: int, timeout_s: float) -> int:
        with self._changed:
            self._changed.wait_for(lambda: self._version > after, timeout_s)
            return self._version

    def _bump(self) -> None:
        """Caller holds the lock."""
        self._version += 1
        self._changed.notify_all()
