"""Reading episodes of any local LeRobot dataset for replay: real Unitree G1 data in v3.0 and v2.1
(converted into a cache with LeRobot's converter, the source untouched), and every bad input named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from robot_io.datasets.conversion import PARTIAL_SUFFIX, converted_path
from robot_io.datasets.reader import DatasetReadError, open_replay_dataset, read_summary
from robot_io.datasets.recorder import EpisodeRecorder
from tests.replay_support import G1_V21, G1_V30, read_with_lerobot, record_dataset

G1_FRAMES_CHECKED = 5  # decoding 640x480 AV1 is slow: a few frames are enough


def tree_state(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under root: (size, mtime, content) — what "never modifies the source" must keep."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_g1_v30_opens_with_its_one_camera_and_nested_names(tmp_path):
    dataset = open_replay_dataset(G1_V30, tmp_path / "cache")
    summary = dataset.summary
    assert not dataset.converted and not (tmp_path / "cache").exists()
    assert (summary.version, summary.fps, summary.total_episodes, summary.cameras) == ("v3.0", 30, 5, ("cam_high",))
    assert len(summary.state_names) == len(summary.action_names) == 26 and summary.state_names[0] == "kLeftShoulderPitch"
    episode = dataset.episode(3)
    expected_frames, state, action, task = read_with_lerobot(G1_V30, 3, limit=G1_FRAMES_CHECKED)
    assert episode.task == task == "Pick up the yellow bottle on the table."
    assert episode.state.shape == episode.action.shape == (episode.length, 26)
    assert np.allclose(episode.state[:G1_FRAMES_CHECKED], state) and np.allclose(episode.action[:G1_FRAMES_CHECKED], action)
    frames = list(dataset.frames(episode, "cam_high", range(G1_FRAMES_CHECKED)))
    assert frames[0].shape == (480, 640, 3) and frames[0].dtype == np.uint8
    assert all(np.array_equal(a, b) for a, b in zip(frames, expected_frames["cam_high"], strict=True))


def test_g1_v21_is_converted_into_the_cache_and_the_source_is_untouched(tmp_path):
    before = tree_state(G1_V21)
    cache = tmp_path / "cache"
    dataset = open_replay_dataset(G1_V21, cache)
    assert tree_state(G1_V21) == before
    assert dataset.converted and dataset.source == G1_V21.resolve() and dataset.root == converted_path(G1_V21, cache)
    assert dataset.summary.version == "v3.0" and dataset.summary.cameras == ("cam_high",)
    assert not list(cache.glob(f"*{PARTIAL_SUFFIX}"))

    # The converted episode reads as the v3.0 copy does (same frames, state, task).
    v30 = open_replay_dataset(G1_V30, cache)
    converted, reference = dataset.episode(4), v30.episode(4)
    assert converted.length == reference.length and converted.task == reference.task
    assert np.array_equal(converted.state, reference.state)
    positions = [0, 1, converted.length - 1]
    for a, b in zip(dataset.frames(converted, "cam_high", positions), v30.frames(reference, "cam_high", positions), strict=True):
        assert np.array_equal(a, b)

    # A second open reuses the conversion.
    stamp = (dataset.root / "meta" / "info.json").stat().st_mtime_ns
    assert open_replay_dataset(G1_V21, cache).root == dataset.root
    assert (dataset.root / "meta" / "info.json").stat().st_mtime_ns == stamp


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    return record_dataset(tmp_path_factory.mktemp("episode") / "demo", episodes=2, frames=6)


def broken_copy(recorded: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(recorded, copy)
    return copy


def test_a_dataset_without_videos_is_named_so(tmp_path):
    root = tmp_path / "no_videos"
    recorder = EpisodeRecorder(root, 15, {"joint_1.pos": float}, {"joint_1.pos": float})
    recorder.start_episode("hold")
    for t in range(3):
        recorder.add_frame({"joint_1.pos": 0.1 * t}, {"joint_1.pos": 0.1 * t}, intervention=False, source="policy")
    recorder.save_episode()
    recorder.finalize()
    with pytest.raises(DatasetReadError, match="a dataset without videos") as err:
        open_replay_dataset(root, tmp_path / "cache")
    assert str(root) in str(err.value) and "no camera features" in str(err.value)


def test_cameras_stored_as_images_are_named(recorded, tmp_path):
    copy = broken_copy(recorded, tmp_path)
    info = json.loads((copy / "meta/info.json").read_text())
    for key in ("observation.images.head", "observation.images.wrist"):
        info["features"][key]["dtype"] = "image"
    (copy / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(DatasetReadError, match=r"without videos.*observation.images.head.*stored as images"):
        read_summary(copy)


def test_a_corrupt_info_json_is_named(recorded, tmp_path):
    copy = broken_copy(recorded, tmp_path)
    (copy / "meta/info.json").write_text('{"codebase_version": "v3.0", "fps": ')
    with pytest.raises(DatasetReadError, match=r"meta/info.json is unreadable: JSONDecodeError"):
        open_replay_dataset(copy, tmp_path / "cache")
    (copy / "meta/info.json").write_text('{"codebase_version": "v3.0"}')
    with pytest.raises(DatasetReadError, match=r"lacks \['fps', 'features', 'total_episodes'\]"):
        open_replay_dataset(copy, tmp_path / "cache")


def test_missing_files_are_named(recorded, tmp_path):
    copy = broken_copy(recorded, tmp_path)
    dataset = open_replay_dataset(copy, tmp_path / "cache")
    data_file = copy / dataset.meta.get_data_file_path(1)
    data_file.unlink()
    with pytest.raises(DatasetReadError, match=f"data file {data_file.relative_to(copy)} of episode 1 is missing"):
        dataset.episode(1)
    video = copy / dataset.meta.get_video_file_path(0, "observation.images.wrist")
    video.unlink()
    with pytest.raises(DatasetReadError, match=rf"video of camera 'wrist' for episode 0 \({video.relative_to(copy)}\) is missing"):
        dataset.episode(0)
    with pytest.raises(DatasetReadError, match=r"episode 7 is not in .* episodes 0..1"):
        dataset.episode(7)
    (copy / "meta/tasks.parquet").unlink()
    with pytest.raises(DatasetReadError, match="meta/tasks.parquet is missing"):
        open_replay_dataset(copy, tmp_path / "cache")
    shutil.rmtree(copy / "meta")
    with pytest.raises(DatasetReadError, match="holds no LeRobot dataset: meta/info.json is missing"):
        open_replay_dataset(copy, tmp_path / "cache")
    with pytest.raises(DatasetReadError, match="no dataset folder"):
        open_replay_dataset(tmp_path / "nowhere", tmp_path / "cache")


def test_an_unreadable_parquet_or_video_is_named(recorded, tmp_path):
    copy = broken_copy(recorded, tmp_path)
    dataset = open_replay_dataset(copy, tmp_path / "cache")
    data_file = copy / dataset.meta.get_data_file_path(0)
    data_file.write_bytes(b"not parquet")
    with pytest.raises(DatasetReadError, match=f"data file {data_file} is unreadable"):
        dataset.episode(0)
    episode = dataset.episode(1)
    video = copy / dataset.meta.get_video_file_path(1, "observation.images.head")
    video.write_bytes(b"not a video")
    with pytest.raises(DatasetReadError, match=f"cannot decode camera 'head' of episode 1 from {video}"):
        list(dataset.frames(episode, "head", range(3)))


def test_other_versions_and_mismatched_names_are_refused(recorded, tmp_path):
    copy = broken_copy(recorded, tmp_path)
    info_path = copy / "meta/info.json"
    info = json.loads(info_path.read_text())
    info_path.write_text(json.dumps({**info, "codebase_version": "v2.0"}))
    with pytest.raises(DatasetReadError, match="LeRobot v2.0 dataset: replay reads v3.0 and converts v2.1"):
        read_summary(copy)
    info["features"]["action"]["names"] = ["only_one"]
    info_path.write_text(json.dumps(info))
    with pytest.raises(DatasetReadError, match=r"names of 'action' do not match its shape \[3\]"):
        read_summary(copy)
    info = json.loads((recorded / "meta/info.json").read_text())
    info["features"]["observation.images.head"]["info"]["video.fps"] = 30
    info_path.write_text(json.dumps(info))
    with pytest.raises(DatasetReadError, match="runs at 30 fps, but the dataset says 15 fps"):
        read_summary(copy)
