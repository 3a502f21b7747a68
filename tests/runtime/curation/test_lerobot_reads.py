"""cheap_metadata_reads changes how fast LeRobot's delete_episodes reads, never what it writes:
the same deletion with and without it gives identical data, episode metadata and stats, and
LeRobot's own reader and metadata are back in place afterwards."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq

from runtime.curation.lerobot_reads import cheap_metadata_reads
from tests.runtime.curation.test_service import small


def open_dataset(root: Path):
    os.environ["HF_HUB_OFFLINE"] = "1"
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset("local/" + root.name, root=root)


def contents(root: Path) -> dict:
    tables = {str(p.relative_to(root)): pq.read_table(p).to_pylist() for p in sorted(root.rglob("*.parquet"))}
    return {**tables, "stats": json.loads((root / "meta" / "stats.json").read_text()),
            "info": json.loads((root / "meta" / "info.json").read_text()),
            "videos": sorted(str(p.relative_to(root)) for p in root.rglob("*.mp4"))}


def test_delete_episodes_writes_the_same_dataset_with_cheap_reads(tmp_path):
    from lerobot.datasets import dataset_tools

    source = small(tmp_path / "source", episodes=4, outcomes=(), tasks=())
    plain, cheap = tmp_path / "plain", tmp_path / "cheap"
    dataset_tools.delete_episodes(open_dataset(source), [1], output_dir=plain, repo_id="local/out")

    dataset = open_dataset(source)
    loader, episodes = dataset_tools._load_episode_with_stats, dataset.meta.episodes
    with cheap_metadata_reads(dataset):
        assert isinstance(dataset.meta.episodes, list)
        dataset_tools.delete_episodes(dataset, [1], output_dir=cheap, repo_id="local/out")

    assert dataset_tools._load_episode_with_stats is loader
    assert dataset.meta.episodes is episodes
    assert contents(cheap) == contents(plain)
    assert len(open_dataset(cheap)) == 3 * 6
