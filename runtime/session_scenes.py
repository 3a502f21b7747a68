"""Seeded sim scenes run by a real console session with nobody at the page.

One scene: ResetScene(seed), RunPolicy(the scene's instruction), StartRecording when the whole
attempt is recorded, then wait until the target has settled in the bin (the session's `success`
for SETTLE_TICKS ticks, as robot_io.sim.rollout ends an episode) or the sim's episode time limit in
ticks, then StopRecording. runtime.collect_corrections (an automatic operator plugged in as the
teleop device) and bench.evaluate_console (the policy alone) run their scenes here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from robot_io.sim.rollout import SETTLE_TICKS
from runtime.control.commands import Mode, ResetScene, RunPolicy, StartRecording, StopRecording
from runtime.control.session import Session
from runtime.control.snapshot import Snapshot

WAIT_S = 0.5  # the longest a wait for the next snapshot blocks before checking its deadline
SCENE_START_TIMEOUT_S = 30.0
# A scene's ticks may take this many times their period in wall time before the loop counts as stalled.
STALL_FACTOR = 3.0


def wait_for(session: Session, predicate: Callable[[Snapshot], bool], timeout_s: float) -> Snapshot | None:
    """The first new snapshot that meets `predicate` (each one it is shown as it is published), or
    None after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    tick = -1
    while (left := deadline - time.monotonic()) > 0:
        snapshot = session.wait_for_tick(tick, min(left, WAIT_S))
        if snapshot is None or snapshot.tick <= tick:
            continue
        tick = snapshot.tick
        if predicate(snapshot):
            return snapshot
    return None


def wait_for_loop(session: Session) -> Snapshot:
    """The first snapshot of a started session; RuntimeError when its loop never ticks."""
    first = wait_for(session, lambda s: True, SCENE_START_TIMEOUT_S)
    if first is None:
        raise RuntimeError(f"the control loop did not start: {session.loop_error or 'no tick'}")
    return first


@dataclass(frozen=True)
class SceneRun:
    seed: int
    start: Snapshot  # the scene's first tick
    end: Snapshot  # settled in the bin, or at the time limit

    @property
    def success(self) -> bool:
        return bool(self.end.success)

    @property
    def ticks(self) -> int:
        """Sim steps from the reset to the end (each tick steps the sim once)."""
        return self.end.tick - self.start.tick + 1


def run_scene(session: Session, seed: int, max_ticks: int, record: bool) -> SceneRun:
    """One seeded scene driven by the session's policy (and its teleop device, if any takes over).
    record: the whole scene is one episode of the session's dataset ("attempts" mode)."""
    before = session.snapshot().tick
    session.submit(ResetScene(seed))
    start = wait_for(session, lambda s: s.tick > before and s.scene.startswith(f"seed {seed},") and s.mode is Mode.IDLE,
                     SCENE_START_TIMEOUT_S)
    if start is None:
        raise RuntimeError(f"the scene with seed {seed} did not start: {session.loop_error or 'no new scene'}")
    session.submit(RunPolicy(start.scene_instruction))
    if record:
        session.submit(StartRecording())
    settled_since: list[int] = []

    def done(snapshot: Snapshot) -> bool:
        if snapshot.tick - start.tick + 1 >= max_ticks:
            return True
        if not snapshot.success:
            settled_since.clear()
            return False
        settled_since.append(snapshot.tick)
        return settled_since[-1] - settled_since[0] >= SETTLE_TICKS

    end = wait_for(session, done, STALL_FACTOR * max_ticks / session.config.fps + SCENE_START_TIMEOUT_S)
    if record:
        session.submit(StopRecording())
    if end is None:
        raise RuntimeError(f"the scene with seed {seed} stalled: {session.loop_error or 'the loop fell far behind'}")
    return SceneRun(seed, start, end)


def save_last_correction(session: Session, next_seed: int) -> None:
    """A scene reset saves a correction still being recorded ("corrections" mode); wait until it has."""
    session.submit(ResetScene(next_seed))
    wait_for(session, lambda s: s.mode is Mode.IDLE and not (s.recording and s.recording.active), SCENE_START_TIMEOUT_S)
