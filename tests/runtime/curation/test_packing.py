"""The packed layout curation edits rely on (runtime/curation/packing.py): a 30-episode recording,
one file set per episode, is packed into one data and one episode-metadata parquet file with every
row and value unchanged, LeRobot's loader reads it frame for frame as the original, and a delete
through CurationService publishes a dataset that stays packed (videos still one file per episode)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from robot_io.datasets.recorder import EpisodeRecorder
from robot_io.datasets.schema import EPISODES_DIR
from runtime.curation.packing import needs_packing, packed_copy
from runtime.curation.service import CurationConfig, CurationService
from tests.replay_support import picture
from tests.runtime.curation.test_service import loadable, small

EPISODES = 30
FILE_REFERENCES = ("data/chunk_index", "data/file_index", "meta/episodes/chunk_index", "meta/episodes/file_index")


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    return small(tmp_path_factory.mktemp("packing") / "many", episodes=EPISODES, frames=3, outcomes=(), tasks=())


def parquet_files(root: Path, folder: str) -> list[Path]:
    return sorted((root / folder).glob("*/*.parquet"))


def rows(root: Path, folder: str, drop: tuple[str, ...] = ()) -> list[dict]:
    table = pq.ParquetDataset(parquet_files(root, folder)).read()
    key = "index" if folder == "data" else "episode_index"
    return table.drop_columns(list(drop)).sort_by(key).to_pylist()


def test_a_recording_is_packed_into_one_file_each_with_every_row_unchanged(recording, tmp_path):
    assert len(parquet_files(recording, "data")) == EPISODES  # the recorder's layout: one file per episode
    assert needs_packing(recording)

    packed = tmp_path / "packed"
    packed_copy(recording, packed)

    assert len(parquet_files(packed, "data")) == 1
    assert len(parquet_files(packed, EPISODES_DIR)) == 1
    assert not needs_packing(packed)
    assert rows(packed, "data") == rows(recording, "data")
    assert rows(packed, EPISODES_DIR, FILE_REFERENCES) == rows(recording, EPISODES_DIR, FILE_REFERENCES)
    assert sorted(p.relative_to(packed) for p in packed.rglob("*.mp4")) == \
        sorted(p.relative_to(recording) for p in recording.rglob("*.mp4"))
    assert (packed / "meta" / "recorder_journal.json").read_bytes() == (recording / "meta" / "recorder_journal.json").read_bytes()

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    original = LeRobotDataset("local/many", root=recording)
    copy = LeRobotDataset("local/packed", root=packed)
    assert len(copy) == len(original) == EPISODES * 3
    for i in (0, 44, len(copy) - 1):
        mine, theirs = copy[i], original[i]
        assert mine.keys() == theirs.keys()
        for key in mine:
            if hasattr(mine[key], "shape"):
                assert (mine[key] == theirs[key]).all(), key
            else:
                assert mine[key] == theirs[key], key


def record_more(root: Path, episodes: int) -> None:
    """Append episodes to `root` as the console does when it records into an edited dataset."""
    joints = ("joint_1.pos", "joint_2.pos", "gripper.pos")  # tests/replay_support.record_dataset's robot
    recorder = EpisodeRecorder(root, 15, {**{j: float for j in joints}, "head": (32, 32, 3)},
                               {j: float for j in joints}, resume=True)
    for episode in range(episodes):
        recorder.start_episode("pick red")
        for t in range(3):
            state = {j: 0.01 * t for j in joints}
            recorder.add_frame({**state, "head": picture((32, 32, 3), t, 0, episode)}, state,
                               intervention=False, source="policy")
        recorder.save_episode("success")
    recorder.finalize()


def test_deleting_from_a_recording_publishes_a_packed_dataset(recording, tmp_path):
    roots = tmp_path / "recordings"
    roots.mkdir()
    dataset = roots / "many"
    shutil.copytree(recording, dataset)
    service = CurationService(CurationConfig((roots,)))

    service.delete(dataset, [7])

    assert loadable(dataset) == EPISODES - 1
    assert len(parquet_files(dataset, "data")) == 1
    assert len(parquet_files(dataset, EPISODES_DIR)) == 1
    assert len(list(dataset.rglob("*.mp4"))) == EPISODES - 1  # one camera: a file per kept episode
    assert not list(roots.glob(".*.packed"))  # the packed copy the edit read from is gone
    assert [s.index for s in service.table(dataset).episodes] == list(range(EPISODES - 1))

    record_more(dataset, 2)  # the recorder appends to a packed dataset in files of its own ...
    assert loadable(dataset) == EPISODES + 1
    assert needs_packing(dataset)
    service.delete(dataset, [0])  # ... which the next edit packs again
    assert loadable(dataset) == EPISODES
    assert len(parquet_files(dataset, "data")) == 1
    assert [s.outcome for s in service.table(dataset).episodes][-2:] == ["success", "success"]
