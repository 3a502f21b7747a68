"""Nothing lost: SIGKILL a recording process at random moments; every episode it reported saved
must stay loadable with lerobot's LeRobotDataset, and the next run must resume the same dataset.
Plus a full disk: the episode in progress is dropped with a clear error, earlier ones intact.

Children are forked from a multiprocessing fork server that imported LeRobot once: a fresh
interpreter needs ~18 s on 2 busy cores just to import it, which 20+ restarts cannot afford.
"""

from __future__ import annotations

import errno
import multiprocessing as mp
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from robot_io.datasets.schema import RecorderError
from robot_io.datasets.recorder import EpisodeRecorder

sys.path.insert(0, str(Path(__file__).parent))  # the fork server imports the child module by name
import recorder_crash_child as child  # noqa: E402

KILLS = 22
SEED = 20240611
EARLY_KILL_SHARE = 0.25  # kills during start-up: while the dataset is created or repaired
EARLY_KILL_MAX_S = 0.6
RUN_BEFORE_KILL_MAX_S = 1.5  # after those saves: about one more episode of 10-30 frames, saves included
MAX_SAVES_BEFORE_KILL = 2  # episodes a run saves before the random kill window starts
OPEN_TIMEOUT_S = 120.0  # the first child waits for the fork server to import LeRobot
JOIN_TIMEOUT_S = 10.0
POLL_S = 0.02
GREY_TOLERANCE = 4  # grey levels after H.264 at CRF 23


def load(root: Path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset("local/" + root.name, root=root)


def read_log(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def wait_for_open(log: Path, proc) -> None:
    deadline = time.monotonic() + OPEN_TIMEOUT_S
    while not any(line.startswith("open") for line in read_log(log)):
        assert proc.is_alive(), f"the recording child died on its own (exit code {proc.exitcode})"
        assert time.monotonic() < deadline, "the recording child did not open the dataset in time"
        time.sleep(POLL_S)


def wait_for_saves(log: Path, proc, count: int) -> None:
    deadline = time.monotonic() + OPEN_TIMEOUT_S
    while sum(line.startswith("saved") for line in read_log(log)) < count:
        assert proc.is_alive(), f"the recording child died on its own (exit code {proc.exitcode})"
        assert time.monotonic() < deadline, f"the recording child did not save {count} episodes in time"
        time.sleep(POLL_S)


def where_it_landed(lines: list[str]) -> str:
    if not lines:
        return "start-up (before open)"
    last = lines[-1].split()[0]
    return {"open": "right after open", "start": "mid-episode", "saving": "mid-save",
            "saved": "right after a save"}[last]


def check_dataset(root: Path, saved: dict[int, int]) -> None:
    """Reopen as the next run would (repairing what the kill left), then load with LeRobot."""
    EpisodeRecorder(root, child.FPS, child.OBS_FEATURES, child.ACT_FEATURES, resume=True).finalize()
    ds = load(root)
    # A kill between the end of save_episode and the child's "saved" line keeps one more episode.
    assert ds.num_episodes in (len(saved), len(saved) + 1), (ds.num_episodes, sorted(saved))
    if ds.num_episodes == len(saved) + 1:
        saved[len(saved)] = int(ds.meta.episodes[len(saved)]["length"])
    states = np.array(ds.hf_dataset["observation.state"])
    for index, frames in saved.items():
        episode = ds.meta.episodes[index]
        assert episode["length"] == frames, f"episode {index}"
        first, last = episode["dataset_from_index"], episode["dataset_to_index"] - 1
        np.testing.assert_array_equal(states[first], [index, 0])
        np.testing.assert_array_equal(states[last], [index, frames - 1])
    if saved:  # decode the very first and the newest frame (video files of both ends)
        newest = len(saved) - 1
        for index, (episode, t) in ((0, (0, 0)), (len(ds) - 1, (newest, saved[newest] - 1))):
            for cam in child.CAMERAS:
                level = float(ds[index][f"observation.images.{cam}"].mean()) * 255
                assert abs(level - child.grey(episode, t)) <= GREY_TOLERANCE, (cam, episode, t, level)


def test_sigkill_at_random_moments_loses_no_saved_episode(tmp_path):
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["robot_io.datasets.recorder", "lerobot.datasets.lerobot_dataset", "recorder_crash_child"])
    rng = random.Random(SEED)
    root = tmp_path / "ds"
    saved: dict[int, int] = {}  # episode index -> frames, as the children reported
    landed: Counter[str] = Counter()
    for kill in range(KILLS):
        log = tmp_path / f"run{kill}.log"
        proc = ctx.Process(target=child.record_forever, args=(str(root), str(log), SEED + kill), daemon=True)
        proc.start()
        try:
            if kill > 0 and rng.random() < EARLY_KILL_SHARE:
                time.sleep(rng.uniform(0, EARLY_KILL_MAX_S))
            else:
                wait_for_open(log, proc)
                # Let it save a few episodes first, however slow the machine is, then kill at a
                # random moment of what follows (mid-episode, mid-save or right after one).
                wait_for_saves(log, proc, rng.randint(0, MAX_SAVES_BEFORE_KILL))
                time.sleep(rng.uniform(0, RUN_BEFORE_KILL_MAX_S))
        finally:
            proc.kill()
            proc.join(JOIN_TIMEOUT_S)
        assert proc.exitcode == -signal.SIGKILL, f"run {kill} ended with {proc.exitcode}, not by our SIGKILL"

        lines = read_log(log)
        landed[where_it_landed(lines)] += 1
        if lines and lines[0].startswith("open"):  # resumed the same dataset, every episode there
            assert int(lines[0].split()[1]) == len(saved), f"run {kill}: {lines[0]}, expected {len(saved)}"
        for line in lines:
            if line.startswith("saved"):
                _, index, frames = line.split()
                assert int(index) == len(saved) or saved.get(int(index)) == int(frames), line
                saved[int(index)] = int(frames)
        check_dataset(root, saved)
    print(f"\n{KILLS} SIGKILLs, {len(saved)} episodes saved, 0 lost; kills landed: {dict(landed)}")
    assert len(saved) >= KILLS // 2, "too few episodes were saved for the kills to mean much"
    assert landed["mid-episode"] and landed["mid-save"], dict(landed)


def test_disk_full_drops_the_episode_in_progress_only(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    root = tmp_path / "ds"
    recorder = EpisodeRecorder(root, child.FPS, child.OBS_FEATURES, child.ACT_FEATURES)

    def record(episode: int, frames: int) -> int:
        recorder.start_episode("pick")
        for t in range(frames):
            image = np.full(child.SHAPE, child.grey(episode, t), np.uint8)
            recorder.add_frame({"episode": episode, "t": t, "a": image, "b": image}, {"u": 0.5}, False, "policy")
        return recorder.save_episode()

    assert record(0, 5) == 0 and record(1, 6) == 1

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", no_space)
    with pytest.raises(RecorderError, match="disk is full") as err:
        record(2, 7)
    assert "2 episodes saved before it are intact" in str(err.value)
    assert recorder.num_episodes == 2 and not recorder.is_recording
    ds = load(root)
    assert ds.num_episodes == 2 and len(ds) == 11  # loadable right away, without the failed episode

    monkeypatch.undo()  # space freed: recording goes on in the same dataset
    assert record(2, 4) == 2
    recorder.finalize()
    ds = load(root)
    assert ds.num_episodes == 3 and [int(ds.meta.episodes[i]["length"]) for i in range(3)] == [5, 6, 4]
    assert abs(float(ds[len(ds) - 1]["observation.images.a"].mean()) * 255 - child.grey(2, 3)) <= GREY_TOLERANCE
