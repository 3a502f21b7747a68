"""EpisodeRecorder: round trips through lerobot's own LeRobotDataset loader, resume, discard,
checkpoints, and every bad input named in the error.

Small on purpose (2 shared CPU cores): 3 cameras at 64x64, 20-frame episodes, few decodes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from robot_io.datasets import journal, schema
from robot_io.datasets import recorder as rec
from robot_io.datasets.schema import ACTION_SOURCES, RecorderError
from robot_io.datasets.recorder import EpisodeRecorder
from tests.robot_io.datasets.older_schema import CONTEXT_KEYS, older_schema

FPS = 15
CAMERAS = ("head", "left_wrist", "right_wrist")
SHAPE = (64, 64, 3)
JOINTS = ["joint_1.pos", "joint_2.pos", "gripper.pos"]
FRAMES = 20
TASKS = ("pick up the red block", "pick up the blue block")

OBS_FEATURES = {**{k: float for k in JOINTS}, **{c: SHAPE for c in CAMERAS}}
ACT_FEATURES = {k: float for k in JOINTS}


# --- synthetic episodes ----------------------------------------------------------------------
def colour(episode: int, t: int, cam: int) -> np.ndarray:
    """Per-channel colour that changes with time, camera and episode (what the video must keep)."""
    return np.array([40 + 8 * t + 30 * cam, 200 - 6 * t, 30 + 80 * episode + 20 * cam], dtype=np.float64)


def image(episode: int, t: int, cam: int) -> np.ndarray:
    # A flat colour plus a small left-right ramp: a real picture to encode, known mean colour.
    ramp = np.linspace(-10, 10, SHAPE[1])[None, :, None]
    return np.clip(colour(episode, t, cam) + ramp, 0, 255).astype(np.uint8) * np.ones(SHAPE, np.uint8)


def state(episode: int, t: int) -> list[float]:
    return [episode + 0.01 * t, -0.5 + 0.02 * t, 0.1 * (t % 7)]


def source(t: int) -> str:
    # The policy acts, the operator takes over, then the operator holds still.
    return "policy" if t < 8 else "operator" if t < 16 else "hold"


def observation(episode: int, t: int) -> dict:
    obs = dict(zip(JOINTS, state(episode, t), strict=True))
    obs.update({cam: image(episode, t, i) for i, cam in enumerate(CAMERAS)})
    obs["sim_state"] = {"qpos": np.zeros(5)}  # not a feature: must be ignored
    return obs


def action(episode: int, t: int) -> dict[str, float]:
    return {k: v + 0.5 for k, v in zip(JOINTS, state(episode, t), strict=True)}


def segment(t: int) -> str | None:
    """The operator recovers (frames 8-10), then corrects; None: left to the recorder's default."""
    return "none" if t < 8 else "recovery" if t < 11 else None if t < 16 else "correction"


def tags(t: int) -> dict:
    """Chunk id and inference latency on policy frames, a judged foresight (and its score) every
    5th frame, the intervention segment."""
    policy = source(t) == "policy"
    return {"chunk_id": t // 4 if policy else -1, "inference_latency_ms": 50.0 + t if policy else float("nan"),
            "foresight_psnr_db": 20.0 + t if t % 5 == 0 else -1.0,
            "surprise_score": 0.25 * (t // 5) if t % 5 == 0 else float("nan") if t == 7 else -1.0, "segment": segment(t)}


OUTCOMES = ("success", "failure")  # of episodes 0 and 1


def record_episode(recorder: EpisodeRecorder, episode: int, task: str, frames: int = FRAMES) -> int:
    recorder.start_episode(task)
    for t in range(frames):
        recorder.add_frame(observation(episode, t), action(episode, t), intervention=t >= 8, source=source(t), **tags(t))
    return recorder.save_episode(OUTCOMES[episode % 2])


def load(root: Path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset("local/" + root.name, root=root)


def leftover_temporaries(root: Path) -> list[Path]:
    return sorted(root.glob("tmp*")) + sorted(root.glob("images"))


# --- the recorded dataset shared by the round-trip tests -------------------------------------
@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("recorder") / "demo_ds"
    recorder = EpisodeRecorder(root, FPS, OBS_FEATURES, ACT_FEATURES)
    assert not recorder.is_recording and recorder.num_episodes == 0
    for episode, task in enumerate(TASKS):
        assert record_episode(recorder, episode, task) == episode
    assert recorder.num_episodes == 2 and not recorder.is_recording and recorder.frames_in_episode == 0
    recorder.finalize()
    recorder.finalize()  # idempotent
    return root


def test_round_trip_counts_and_features(recorded):
    ds = load(recorded)
    assert ds.num_episodes == 2
    assert len(ds) == 2 * FRAMES
    features = ds.meta.features
    for cam in CAMERAS:
        assert features[f"observation.images.{cam}"]["dtype"] == "video"
        assert tuple(features[f"observation.images.{cam}"]["shape"]) == SHAPE
    assert features["observation.state"]["names"] == JOINTS
    assert features["action"]["names"] == JOINTS
    assert features["intervention"]["dtype"] == "bool" and tuple(features["intervention"]["shape"]) == (1,)
    assert features["actor"]["dtype"] == "int64"
    assert features["actor"]["names"] == list(ACTION_SOURCES) == ["policy", "operator", "hold"]
    assert features["surprise_score"]["dtype"] == "float32" and tuple(features["surprise_score"]["shape"]) == (1,)
    assert features["intervention_segment"]["dtype"] == "int64"
    assert features["intervention_segment"]["names"] == list(schema.INTERVENTION_SEGMENTS) == ["none", "recovery", "correction"]
    assert "sim_state" not in json.dumps(features)
    assert ds.meta.robot_type == "conveyor_sim"
    assert leftover_temporaries(recorded) == []


def test_round_trip_values_equal(recorded):
    hf = load(recorded).hf_dataset
    expected_state = np.array([state(e, t) for e in range(2) for t in range(FRAMES)], dtype=np.float32)
    expected_action = np.array([list(action(e, t).values()) for e in range(2) for t in range(FRAMES)], np.float32)
    np.testing.assert_array_equal(np.array(hf["observation.state"]), expected_state)
    np.testing.assert_array_equal(np.array(hf["action"]), expected_action)
    assert list(hf["intervention"]) == [t >= 8 for _ in range(2) for t in range(FRAMES)]
    assert [ACTION_SOURCES[c] for c in hf["actor"]] == [source(t) for _ in range(2) for t in range(FRAMES)]
    assert list(hf["episode_index"]) == [e for e in range(2) for _ in range(FRAMES)]
    expected = [tags(t) for _ in range(2) for t in range(FRAMES)]
    assert [int(c) for c in hf["chunk_id"]] == [e["chunk_id"] for e in expected]
    latency = [e["inference_latency_ms"] for e in expected]
    assert [float(v) for v in hf["inference_latency_ms"]] == [v if v == v else -1.0 for v in latency]  # NaN -> -1
    assert [float(v) for v in hf["foresight_psnr_db"]] == [e["foresight_psnr_db"] for e in expected]
    score = [e["surprise_score"] for e in expected]
    assert [float(v) for v in hf["surprise_score"]] == [v if v == v else -1.0 for v in score]  # NaN -> -1
    segments = [schema.INTERVENTION_SEGMENTS[c] for c in hf["intervention_segment"]]
    assert segments == [segment(t) or "correction" for _ in range(2) for t in range(FRAMES)]  # None: the operator's
    assert [schema.EPISODE_OUTCOMES[c] for c in hf["episode_outcome"]] == [OUTCOMES[e] for e in range(2) for _ in range(FRAMES)]
    assert list(hf["frame_index"]) == [t for _ in range(2) for t in range(FRAMES)]


def test_round_trip_tasks_and_video_content(recorded):
    ds = load(recorded)
    for index in (0, 13, FRAMES + 19):  # few decodes: each costs CPU
        episode, t = divmod(index, FRAMES)
        item = ds[index]
        assert item["task"] == TASKS[episode]
        for i, cam in enumerate(CAMERAS):
            frame = item[f"observation.images.{cam}"]
            assert tuple(frame.shape) == (3, SHAPE[0], SHAPE[1])  # LeRobot returns CHW floats in [0, 1]
            mean = frame.mean(dim=(1, 2)).numpy() * 255
            np.testing.assert_allclose(mean, colour(episode, t, i), atol=5, err_msg=f"{cam} frame {index}")


def test_resume_appends_with_continuing_indices(recorded, tmp_path):
    root = tmp_path / "demo_ds"
    shutil.copytree(recorded, root)
    recorder = EpisodeRecorder(root, FPS, OBS_FEATURES, ACT_FEATURES, resume=True)
    assert recorder.num_episodes == 2
    assert record_episode(recorder, 2, "place it in the bin", frames=5) == 2
    assert recorder.num_episodes == 3
    recorder.finalize()

    ds = load(root)
    assert ds.num_episodes == 3 and len(ds) == 2 * FRAMES + 5
    hf = ds.hf_dataset
    assert list(hf["episode_index"])[-5:] == [2] * 5
    assert list(hf["index"]) == list(range(2 * FRAMES + 5))
    np.testing.assert_array_equal(np.array(hf["observation.state"])[-1], np.float32(state(2, 4)))
    assert ds[2 * FRAMES + 4]["task"] == "place it in the bin"
    assert ds[0]["task"] == TASKS[0]  # earlier episodes untouched


def test_resume_without_dataset_creates_it(tmp_path):
    recorder = EpisodeRecorder(tmp_path / "fresh", FPS, OBS_FEATURES, ACT_FEATURES, resume=True)
    assert recorder.num_episodes == 0 and (tmp_path / "fresh" / "meta" / "info.json").is_file()
    recorder.finalize()
    # An existing but empty folder is fine too (the session may have made it).
    (tmp_path / "empty").mkdir()
    EpisodeRecorder(tmp_path / "empty", FPS, OBS_FEATURES, ACT_FEATURES).finalize()


def test_discard_leaves_no_trace(tmp_path):
    root = tmp_path / "ds"
    recorder = EpisodeRecorder(root, FPS, OBS_FEATURES, ACT_FEATURES)
    recorder.start_episode("a failed attempt")
    for t in range(6):
        recorder.add_frame(observation(0, t), action(0, t), False, "policy")
    assert recorder.is_recording and recorder.frames_in_episode == 6
    recorder.discard_episode()
    assert not recorder.is_recording and recorder.frames_in_episode == 0 and recorder.num_episodes == 0
    recorder.discard_episode()  # no-op when idle
    assert record_episode(recorder, 1, "the good attempt", frames=4) == 0
    recorder.finalize()

    ds = load(root)
    assert ds.num_episodes == 1 and len(ds) == 4
    assert list(ds.meta.tasks.index) == ["the good attempt"]
    episode = ds.meta.episodes[0]
    for cam in CAMERAS:
        duration = episode[f"videos/observation.images.{cam}/to_timestamp"] - episode[
            f"videos/observation.images.{cam}/from_timestamp"]
        assert duration == pytest.approx(4 / FPS, abs=0.5 / FPS)
    assert leftover_temporaries(root) == []


def test_saved_episodes_are_loadable_before_finalize(tmp_path):
    root = tmp_path / "ds"
    recorder = EpisodeRecorder(root, FPS, OBS_FEATURES, ACT_FEATURES)
    record_episode(recorder, 0, TASKS[0], frames=3)
    assert load(root).num_episodes == 1  # complete on disk while the recorder is still open
    assert record_episode(recorder, 1, TASKS[1], frames=3) == 1
    assert load(root).num_episodes == 2
    recorder.finalize()
    ds = load(root)
    assert ds.num_episodes == 2 and list(ds.hf_dataset["index"]) == list(range(6))


def test_resume_after_a_kill_mid_save_keeps_saved_episodes(tmp_path, monkeypatch):
    root, crashed = tmp_path / "ds", tmp_path / "crashed"
    recorder = EpisodeRecorder(root, FPS, OBS_FEATURES, ACT_FEATURES)
    record_episode(recorder, 0, TASKS[0], frames=3)  # saved: complete on disk
    # The disk as a kill inside the next save leaves it: LeRobot wrote the episode (files open,
    # info.json counting it), the recorder had not sealed nor journaled it yet.
    monkeypatch.setattr(EpisodeRecorder, "_seal_saved_episode", lambda self: None)
    monkeypatch.setattr(journal, "write_journal", lambda root, summaries: None)
    record_episode(recorder, 1, TASKS[1], frames=3)
    shutil.copytree(root, crashed)
    (crashed / "meta" / "stats.json").write_text('{"truncated": ')  # killed mid-write
    monkeypatch.undo()
    recorder.finalize()
    assert json.loads((crashed / "meta" / "info.json").read_text())["total_episodes"] == 2

    resumed = EpisodeRecorder(crashed, FPS, OBS_FEATURES, ACT_FEATURES, resume=True)
    assert resumed.num_episodes == 1  # episode 1 was in progress when "killed"
    assert record_episode(resumed, 2, "after the crash", frames=4) == 1
    resumed.finalize()

    ds = load(crashed)
    assert ds.num_episodes == 2 and len(ds) == 7
    assert list(ds.hf_dataset["index"]) == list(range(7))
    assert ds[0]["task"] == TASKS[0] and ds[6]["task"] == "after the crash"
    aside = list(tmp_path.glob("crashed.unfinalized-*"))
    assert len(aside) == 1 and list(aside[0].rglob("*.parquet")) and list(aside[0].rglob("*.mp4"))


def test_without_streaming_encoding(tmp_path):
    root = tmp_path / "ds"
    recorder = EpisodeRecorder(root, FPS, OBS_FEATURES, ACT_FEATURES, streaming_encoding=False)
    assert record_episode(recorder, 0, TASKS[0], frames=3) == 0
    recorder.finalize()
    ds = load(root)
    assert ds.num_episodes == 1 and len(ds) == 3
    mean = ds[2]["observation.images.left_wrist"].mean(dim=(1, 2)).numpy() * 255
    np.testing.assert_allclose(mean, colour(0, 2, 1), atol=5)
    assert sorted(p.name for p in root.iterdir()) == ["data", "meta", "videos"]


def test_features_follow_lerobot_conventions():
    # Same layout lerobot's own recording builds from a robot's features.
    from lerobot.utils.feature_utils import hw_to_dataset_features

    ours = schema.dataset_features(OBS_FEATURES, ACT_FEATURES)
    theirs = {**hw_to_dataset_features(OBS_FEATURES, "observation"), **hw_to_dataset_features(ACT_FEATURES, "action")}
    for key, feature in theirs.items():
        assert ours[key] == feature, key


# --- bad input -------------------------------------------------------------------------------
@pytest.fixture
def recorder(tmp_path):
    recorder = EpisodeRecorder(tmp_path / "ds", FPS, OBS_FEATURES, ACT_FEATURES)
    yield recorder
    recorder.finalize()


def test_root_under_a_regular_file_is_refused(tmp_path):
    # We run as root, which bypasses permission bits: a path under a file cannot be created by anyone.
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(RecorderError, match="file.txt"):
        EpisodeRecorder(blocker / "ds", FPS, OBS_FEATURES, ACT_FEATURES)


def test_unwritable_parent_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(rec.os, "access", lambda path, mode: False)  # what a non-root user would see
    with pytest.raises(RecorderError, match="not writable") as err:
        EpisodeRecorder(tmp_path / "ds", FPS, OBS_FEATURES, ACT_FEATURES)
    assert str(tmp_path) in str(err.value)
    assert not (tmp_path / "ds").exists()


def test_existing_root_without_resume_is_refused(recorded):
    with pytest.raises(RecorderError, match="resume=True") as err:
        EpisodeRecorder(recorded, FPS, OBS_FEATURES, ACT_FEATURES)
    assert str(recorded) in str(err.value)


def test_resume_of_a_folder_that_is_not_a_dataset_is_refused(tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "notes.txt").write_text("hello")
    with pytest.raises(RecorderError, match="info.json"):
        EpisodeRecorder(tmp_path / "ds", FPS, OBS_FEATURES, ACT_FEATURES, resume=True)
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == ["notes.txt"]


def test_resume_with_different_features_is_refused_and_writes_nothing(recorded):
    info_before = (recorded / "meta" / "info.json").read_bytes()
    files_before = sorted(p for p in recorded.rglob("*"))
    other_obs = {**OBS_FEATURES, "elbow.pos": float, "head": (96, 96, 3)}
    other_obs.pop("right_wrist")
    with pytest.raises(RecorderError) as err:
        EpisodeRecorder(recorded, FPS, other_obs, ACT_FEATURES, resume=True)
    message = str(err.value)
    for named in ("observation.state", "elbow.pos", "observation.images.head", "observation.images.right_wrist"):
        assert named in message
    with pytest.raises(RecorderError, match="fps"):
        EpisodeRecorder(recorded, 30, OBS_FEATURES, ACT_FEATURES, resume=True)
    assert (recorded / "meta" / "info.json").read_bytes() == info_before
    assert sorted(p for p in recorded.rglob("*")) == files_before


def test_appending_to_a_dataset_recorded_before_the_context_columns_is_refused(tmp_path, monkeypatch):
    old = tmp_path / "old_ds"
    with older_schema(monkeypatch):
        recorder = EpisodeRecorder(old, FPS, OBS_FEATURES, ACT_FEATURES)
        recorder.start_episode("t")
        for t in range(2):
            recorder.add_frame(observation(0, t), action(0, t), False, "policy")
        recorder.save_episode()
        recorder.finalize()
    assert not set(CONTEXT_KEYS) & set(load(old).meta.features)
    files_before = sorted(p for p in old.rglob("*"))
    with pytest.raises(RecorderError) as err:
        EpisodeRecorder(old, FPS, OBS_FEATURES, ACT_FEATURES, resume=True)
    assert "'surprise_score' is missing from the dataset" in str(err.value)
    assert "'intervention_segment' is missing from the dataset" in str(err.value)
    assert sorted(p for p in old.rglob("*")) == files_before


@pytest.mark.parametrize("intervention, segment, message", [
    (True, "rescue", "not one of"), (False, "recovery", "intervention=False"), (True, "none", "intervention=True")])
def test_bad_intervention_segments_are_refused(recorder, intervention, segment, message):
    recorder.start_episode("t")
    with pytest.raises(RecorderError, match=message):
        recorder.add_frame(observation(0, 0), action(0, 0), intervention, "operator", segment=segment)
    assert recorder.frames_in_episode == 0


def test_add_frame_before_start_episode(recorder):
    with pytest.raises(RecorderError, match="start_episode"):
        recorder.add_frame(observation(0, 0), action(0, 0), False, "policy")


@pytest.mark.parametrize("task", ["", "   ", None])
def test_empty_task(recorder, task):
    with pytest.raises(RecorderError, match="task"):
        recorder.start_episode(task)
    assert not recorder.is_recording


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "abc"])
def test_non_finite_state_or_action_names_the_key(recorder, bad):
    recorder.start_episode("t")
    obs = observation(0, 0)
    obs["joint_2.pos"] = bad
    with pytest.raises(RecorderError, match="joint_2.pos"):
        recorder.add_frame(obs, action(0, 0), False, "policy")
    act = action(0, 0)
    act["gripper.pos"] = bad
    with pytest.raises(RecorderError, match="gripper.pos"):
        recorder.add_frame(observation(0, 0), act, False, "policy")
    assert recorder.frames_in_episode == 0  # rejected frames are not buffered


def test_missing_keys_are_named(recorder):
    recorder.start_episode("t")
    for key in ("joint_1.pos", "left_wrist"):
        obs = observation(0, 0)
        del obs[key]
        with pytest.raises(RecorderError, match=key):
            recorder.add_frame(obs, action(0, 0), False, "policy")
    act = action(0, 0)
    del act["joint_2.pos"]
    with pytest.raises(RecorderError, match="joint_2.pos"):
        recorder.add_frame(observation(0, 0), act, False, "policy")
    # The episode is still usable after bad frames.
    recorder.add_frame(observation(0, 0), action(0, 0), False, "policy")
    assert recorder.frames_in_episode == 1


@pytest.mark.parametrize(
    "bad_image",
    [np.zeros((32, 64, 3), np.uint8), np.zeros((3, 64, 64), np.uint8), np.zeros((64, 64), np.uint8),
     np.zeros(SHAPE, np.float32)],
)
def test_wrong_image_names_the_camera(recorder, bad_image):
    recorder.start_episode("t")
    obs = observation(0, 0)
    obs["head"] = bad_image
    with pytest.raises(RecorderError, match="head"):
        recorder.add_frame(obs, action(0, 0), False, "policy")


def test_unknown_action_source(recorder):
    recorder.start_episode("t")
    with pytest.raises(RecorderError, match="teleop"):
        recorder.add_frame(observation(0, 0), action(0, 0), True, "teleop")


def test_save_needs_frames(recorder):
    with pytest.raises(RecorderError, match="no episode"):
        recorder.save_episode()
    recorder.start_episode("t")
    with pytest.raises(RecorderError, match="0 frame"):
        recorder.save_episode()
    recorder.add_frame(observation(0, 0), action(0, 0), False, "policy")
    with pytest.raises(RecorderError, match="1 frame"):  # see MIN_EPISODE_FRAMES
        recorder.save_episode()
    assert recorder.is_recording and recorder.num_episodes == 0  # still open: add more or discard
    recorder.discard_episode()


def test_start_twice_and_use_after_finalize(recorder):
    recorder.start_episode("t")
    with pytest.raises(RecorderError, match="already"):
        recorder.start_episode("t")
    recorder.finalize()
    with pytest.raises(RecorderError, match="finalized"):
        recorder.start_episode("t")


def test_cameras_too_small_for_the_encoder_are_refused(tmp_path):
    # libsvtav1 crashes the process (SIGFPE) on frames 24 pixels wide: refused before recording.
    with pytest.raises(RecorderError, match="tiny"):
        EpisodeRecorder(tmp_path / "ds", FPS, {"j": float, "tiny": (64, 16, 3)}, {"j": float})
    assert not (tmp_path / "ds").exists()


def test_episode_summaries_survive_reopening_and_bad_outcomes_are_refused(recorded, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(recorded, copy)
    reopened = EpisodeRecorder(copy, FPS, OBS_FEATURES, ACT_FEATURES, resume=True)
    assert reopened.episodes == [
        schema.EpisodeSummary(0, TASKS[0], FRAMES, "success", FRAMES - 8),
        schema.EpisodeSummary(1, TASKS[1], FRAMES, "failure", FRAMES - 8),
    ]
    reopened.start_episode("pick")
    for t in range(3):
        reopened.add_frame(observation(2, t), action(2, t), intervention=False, source="policy")
    with pytest.raises(RecorderError, match="'great' is not one of"):
        reopened.save_episode("great")
    assert reopened.save_episode() == 2 and reopened.episodes[-1] == schema.EpisodeSummary(2, "pick", 3, "unknown", 0)
    reopened.finalize()


def test_summaries_of_a_dataset_journaled_without_them_come_from_its_metadata(recorded, tmp_path):
    copy = tmp_path / "old"
    shutil.copytree(recorded, copy)
    journal_path = copy / journal.JOURNAL_PATH
    saved = json.loads(journal_path.read_text())
    del saved["summaries"]
    journal_path.write_text(json.dumps(saved))
    reopened = EpisodeRecorder(copy, FPS, OBS_FEATURES, ACT_FEATURES, resume=True)
    assert [(e.index, e.task, e.frames, e.outcome, e.intervention_frames) for e in reopened.episodes] == [
        (0, TASKS[0], FRAMES, "unknown", -1), (1, TASKS[1], FRAMES, "unknown", -1)]
    reopened.finalize()
