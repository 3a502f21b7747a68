"""Loading another checkpoint into a running console: the hot swap after a fine-tune.

The operator names a checkpoint folder (one of those found under the configured roots); it is
loaded on a thread of its own (a second or so of torch work that must not touch the control
loop) and handed to the session as a `SwapPolicy`: the robot holds while the new policy takes
over. Only folders under the roots are read, so the page cannot be used to open arbitrary files.
A checkpoint trained for another robot layout is refused with the differences named, and the
running policy stays. LeRobot checkpoints (lerobot-train's pretrained_model folders) are listed too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from robot_io.lerobot_policy import is_lerobot_checkpoint
from robot_io.policy import Policy
from robot_io.devices.robot import Robot
from robot_io.surprise_calibration import calibration_for
from runtime.control.commands import SwapPolicy
from runtime.control.session import Session

CHECKPOINT_FILES = ("config.json", "model.safetensors", "stats.json")
MAX_SEARCH_DEPTH = 5  # runs/<name>/checkpoints/step_N is depth 3 below runs/
MAX_LISTED = 200


@dataclass(frozen=True)
class LoaderStatus:
    loading: str  # the folder being loaded, "" when idle
    message: str  # the last outcome
    error: str


def is_checkpoint(folder: Path) -> bool:
    """Ours (model.checkpoint), or a LeRobot policy's that lerobot-train wrote."""
    return all((folder / name).is_file() for name in CHECKPOINT_FILES) or is_lerobot_checkpoint(folder)


class CheckpointLoader:
    def __init__(self, session: Session, robot: Robot, roots: list[Path], load: Callable[[Path, Robot], Policy]) -> None:
        """load(folder, robot): the policy for that checkpoint on this robot (model.policy.policy_for_robot)."""
        if not roots:
            raise ValueError("CheckpointLoader needs at least one root folder")
        self.roots = [Path(root).expanduser().resolve() for root in roots]
        self._session, self._robot, self._load = session, robot, load
        self._lock = threading.Lock()
        self._status = LoaderStatus("", "", "")
        self._thread: threading.Thread | None = None

    def checkpoints(self) -> list[Path]:
        """Checkpoint folders under the roots, newest first."""
        found = []
        for root in self.roots:
            if root.is_dir():
                candidates = [root, *(p for depth in range(1, MAX_SEARCH_DEPTH + 1) for p in root.glob("/".join(["*"] * depth)))]
                found += [p for p in candidates if p.is_dir() and is_checkpoint(p)]
        found = sorted(set(found), key=lambda p: p.stat().st_mtime, reverse=True)
        return found[:MAX_LISTED]

    def request(self, folder: str | Path) -> None:
        """Start loading `folder`; ValueError (nothing started) when it is not a checkpoint under a root."""
        path = self._checked(folder)
        with self._lock:
            if self._status.loading:
                raise ValueError(f"still loading {self._status.loading}; wait for it to finish")
            self._status = LoaderStatus(str(path), f"Loading {path}...", "")
        self._thread = threading.Thread(target=self._run, args=(path,), name="checkpoint-loader", daemon=True)
        self._thread.start()

    def status(self) -> LoaderStatus:
        with self._lock:
            return self._status

    def wait(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _checked(self, folder: str | Path) -> Path:
        text = str(folder).strip()
        if not text:
            raise ValueError("name a checkpoint folder")
        path = Path(text).expanduser().resolve()
        if not any(path == root or root in path.parents for root in self.roots):
            raise ValueError(f"{path} is outside the checkpoint folders this console may read: "
                             f"{', '.join(map(str, self.roots))}")
        if not is_checkpoint(path):
            missing = [name for name in CHECKPOINT_FILES if not (path / name).is_file()]
            raise ValueError(f"{path} is not a checkpoint folder (missing {', '.join(missing)})")
        return path

    def _run(self, path: Path) -> None:
        try:
            policy = self._load(path, self._robot)
            calibration = calibration_for(path)  # the new model's own, if it has one
        except Exception as err:  # noqa: BLE001 - a bad checkpoint costs the swap, the running policy stays
            with self._lock:
                self._status = LoaderStatus("", "", f"Could not load {path}: {err}")
            return
        self._session.submit(SwapPolicy(policy, str(path), calibration))
        with self._lock:
            self._status = LoaderStatus("", f"Loaded {path}: the robot holds; press Run to continue with it.", "")
