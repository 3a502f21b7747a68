"""Nothing lost on SIGKILL during an edit: a child process deletes and undoes episodes in a loop
and is killed at chosen moments, among them while its new dataset is half-written. After each
kill the dataset is whole (LeRobot's loader reads all of it), only it is listed (never a
half-written copy), and the next start removes or finishes what the killed edit left."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from runtime.curation import safe_edit
from runtime.curation.catalog import episode_table
from runtime.curation.service import CurationConfig, CurationService
from runtime.dataset_roots import dataset_folders
from tests.runtime.curation.test_service import loadable, small

REPO = Path(__file__).resolve().parents[3]
CHILD = Path(__file__).with_name("curation_edit_child.py")
SEED = 20240612
KILL_AFTER_S = (0.0, 1.5, 4.0)  # after the first edit's staging folder appears: mid-build, then later
READY_TIMEOUT_S = 240.0  # a fresh interpreter imports LeRobot first (slow on 2 busy cores)
POLL_S = 0.01


def start_child(dataset: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, str(CHILD), str(dataset), str(log)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(POLL_S)


def test_sigkill_during_edits_loses_nothing(tmp_path):
    roots = tmp_path / "recordings"
    dataset = small(roots / "demo")
    rng = random.Random(SEED)
    for kill, delay in enumerate(KILL_AFTER_S):
        log = tmp_path / f"child{kill}.log"
        child = start_child(dataset, log)
        try:
            wait_for(lambda: log.exists() and "ready" in log.read_text(), READY_TIMEOUT_S, "the child to import LeRobot")
            wait_for(lambda: any(roots.glob(f".*{safe_edit.STAGING_MARK}*")), 60, "an edit to start")
            time.sleep(delay + rng.uniform(0, 0.5))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        # Whatever the child was doing: one whole dataset is listed, in one of its two states.
        assert list(dataset_folders((roots,))) == [dataset]
        episodes = loadable(dataset)
        assert episodes in (2, 3)
        assert len(episode_table(dataset).episodes) == episodes
    service = CurationService(CurationConfig((roots,)))
    assert not list(roots.glob(f".*{safe_edit.STAGING_MARK}*")) and not list(roots.glob(".*.commit.json"))
    assert loadable(dataset) == len(service.table(dataset).episodes)
