"""Curation on a many-episode dataset (prints figures; not a test): how long listing the episodes
and deleting one take through CurationService (LeRobot's delete_episodes doing the work).

The dataset is recorded with our own EpisodeRecorder (2 cameras at 32x32, short episodes), so it
has the console's layout: one data, metadata and video file set per episode. The first delete
packs its parquet files (runtime/curation/packing.py); a second delete shows a packed dataset's
cost. --compare also times LeRobot's delete_episodes called plainly on the recorder's layout (no
packing, no cheap metadata reads: how deletes were done before), in the same run, for a fair
comparison on a busy machine (minutes). Building 500 episodes takes minutes on 2 cores; --keep
reuses a folder built by an earlier run.

    .venv/bin/python -m bench.bench_curation --episodes 500 --keep /tmp/curation_bench --compare
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from robot_io.datasets.recorder import EpisodeRecorder
from robot_io.datasets.schema import local_repo_id
from runtime.curation import catalog
from runtime.curation.service import CurationConfig, CurationService

JOINTS = [f"joint_{i}.pos" for i in range(1, 7)]
CAMERAS = ("head", "wrist")
SIDE = 32  # the smallest the video encoder accepts
FPS = 15
TASKS = ("pick up the red block", "pick up the blue block")


def build(root: Path, episodes: int, frames: int) -> None:
    features = {**{j: float for j in JOINTS}, **{c: (SIDE, SIDE, 3) for c in CAMERAS}}
    recorder = EpisodeRecorder(root, FPS, features, {j: float for j in JOINTS})
    picture = np.zeros((SIDE, SIDE, 3), np.uint8)
    started = time.perf_counter()
    for episode in range(episodes):
        recorder.start_episode(TASKS[episode % 2])
        for t in range(frames):
            picture[:] = (7 * episode + 5 * t) % 256
            state = {j: 0.01 * t * (i + 1) for i, j in enumerate(JOINTS)}
            operator = t >= frames - 4
            recorder.add_frame({**state, **{c: picture for c in CAMERAS}}, state, intervention=operator,
                               source="operator" if operator else "policy")
        recorder.save_episode("success" if episode % 3 else "failure")
        if (episode + 1) % 50 == 0:
            print(f"  built {episode + 1} episodes in {time.perf_counter() - started:.0f} s", flush=True)
    recorder.finalize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--frames", type=int, default=20, help="frames per episode")
    parser.add_argument("--keep", type=Path, default=None, help="build the dataset here once and reuse it")
    parser.add_argument("--compare", action="store_true", help="also time the plain delete_episodes (minutes)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # LeRobot's per-file progress

    source = args.keep or Path(tempfile.mkdtemp()) / "source"
    if not (source / "meta" / "info.json").is_file():
        print(f"building {args.episodes} episodes x {args.frames} frames into {source}", flush=True)
        build(source, args.episodes, args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        roots = Path(tmp) / "recordings"
        dataset = roots / "bench"
        shutil.copytree(source, dataset)
        service = CurationService(CurationConfig((roots,)))

        started = time.perf_counter()
        table = service.table(dataset)
        cold = time.perf_counter() - started
        started = time.perf_counter()
        service.table(dataset)
        warm = time.perf_counter() - started
        print(f"list {len(table.episodes)} episodes: {cold * 1e3:.1f} ms from the recorder's journal, "
              f"{warm * 1e3:.2f} ms cached", flush=True)

        catalog._cache.clear()
        (dataset / "meta" / "recorder_journal.json").rename(Path(tmp) / "journal.json")
        started = time.perf_counter()
        service.table(dataset)
        print(f"list without the journal (meta/episodes + data files): {time.perf_counter() - started:.2f} s", flush=True)
        (Path(tmp) / "journal.json").rename(dataset / "meta" / "recorder_journal.json")

        started = time.perf_counter()
        service.thumbnail(dataset, len(table.episodes) // 2)
        print(f"first thumbnail: {(time.perf_counter() - started) * 1e3:.0f} ms", flush=True)

        if args.compare:
            seconds = plain_delete(dataset, len(table.episodes) // 2, Path(tmp) / "plain")
            print(f"before: LeRobot's delete_episodes alone, on the recorder's layout: {seconds:.1f} s", flush=True)

        for which in ("first delete (packs the recording)", "second delete (packed)"):
            started = time.perf_counter()
            message = service.delete(dataset, [len(service.table(dataset).episodes) // 2])
            print(f"{which}, through CurationService (LeRobot's delete_episodes, swap, backup): "
                  f"{time.perf_counter() - started:.1f} s\n  {message}", flush=True)


def plain_delete(dataset: Path, episode: int, out: Path) -> float:
    """delete_episodes on a copy of `dataset` (LeRobot caches what it loaded by path: a fresh path
    keeps the service's delete from finding anything of this one's in that cache)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from lerobot.datasets.dataset_tools import delete_episodes
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    source = out.with_name(out.name + "-source")
    shutil.copytree(dataset, source)
    started = time.perf_counter()
    delete_episodes(LeRobotDataset(local_repo_id(source), root=source), [episode], output_dir=out, repo_id=local_repo_id(out))
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
