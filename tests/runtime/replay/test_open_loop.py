"""Open-loop replay: the figures of a replayed episode equal a direct computation from the dataset
(read back through LeRobotDataset itself) and the policy's own outputs; G1 data through a camera
mapping; every mismatch named."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from model.checkpoint import save_checkpoint
from model.policy import InternVLAPolicy
from robot_io.policy import Policy, PolicyOutput
from runtime.replay.open_loop import (
    PolicyLayout, ReplayConfig, ReplayError, ReplayJob, frame_stride, match_cameras, match_names,
    parse_camera_mapping,
)
from tests.model.helpers import CAMERAS as MODEL_CAMERAS
from tests.model.helpers import STATE_KEYS as MODEL_STATE_KEYS
from tests.model.helpers import small_model
from tests.replay_support import G1_V21, TASK, EchoPolicy, RecordingPolicy, read_with_lerobot, record_dataset

JOINTS = ("joint_1.pos", "joint_2.pos", "gripper.pos")
LAYOUT = PolicyLayout(("head", "wrist"), JOINTS, JOINTS, 15.0)
FRAMES = 24
WAIT_S = 300  # generous: 2 shared cores, trainings beside


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return record_dataset(tmp_path_factory.mktemp("replay") / "demo", frames=FRAMES)


def replay(policy: Policy, config: ReplayConfig, layout: PolicyLayout = LAYOUT, cache: Path | None = None) -> ReplayJob:
    job = ReplayJob(lambda: policy, layout, config, cache or config.dataset.parent / "cache").start()
    assert job.join(WAIT_S), "the replay did not finish"
    return job


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def test_replay_metrics_match_a_direct_computation(dataset):
    policy = RecordingPolicy(EchoPolicy(JOINTS, chunk=5, horizon=3))
    infer_every = 2
    job = replay(policy, ReplayConfig(dataset, episode=1, infer_every=infer_every))
    status = job.status()
    assert status.phase == "done", status.message
    frames, state, action, task = read_with_lerobot(dataset, 1)
    steps = len(state)
    assert status.step == status.total_steps == steps == FRAMES and status.task == task == TASK

    # The policy saw every recorded frame and state, in order, observed before each inference.
    observed = [obs for kind, obs in policy.calls if kind == "observe"]
    assert len(observed) == steps
    for t, obs in enumerate(observed):
        assert np.allclose([obs[j] for j in JOINTS], state[t])
        for camera in LAYOUT.camera_keys:
            assert np.array_equal(obs[camera], frames[camera][t])
    inferred_at = [i for i, (kind, _) in enumerate(policy.calls) if kind == "infer"]
    assert len(inferred_at) == steps // infer_every and all(policy.calls[i - 1][1] is policy.calls[i][1] for i in inferred_at)
    assert set(policy.instructions) == {TASK}

    # Actions: step k of the chunk made at s against the recorded action of s + k.
    chunk_errors, executed = [], np.full_like(action, np.nan)
    for n, output in enumerate(policy.outputs):
        s = n * infer_every
        real = output.actions[: steps - s]
        chunk_errors.append(((real - action[s : s + len(real)]) ** 2).ravel())
        executed[s : s + infer_every] = real[:infer_every]
    metrics = status.metrics
    assert metrics["action_mse"] == pytest.approx(np.concatenate(chunk_errors).mean(), rel=1e-6)
    assert metrics["action_mse_executed"] == pytest.approx(((executed - action) ** 2).mean(), rel=1e-6)
    per_dim = ((executed - action) ** 2).mean(axis=0)
    assert list(metrics["action_mse_executed_per_dim"].values()) == pytest.approx(per_dim.tolist(), rel=1e-6)

    # Foresight: the picture made at s against recorded frame s + 3, beside frame s copied.
    horizon = 3
    for camera in LAYOUT.camera_keys:
        made = [n * infer_every for n in range(len(policy.outputs)) if n * infer_every + horizon < steps]
        model = [psnr(policy.outputs[s // infer_every].foresight[camera], frames[camera][s + horizon]) for s in made]
        still = [psnr(frames[camera][s], frames[camera][s + horizon]) for s in made]
        figures = metrics["foresight"][camera]
        assert figures["judged"] == len(made)
        assert figures["psnr_db"] == pytest.approx(np.mean(model), abs=1e-6)
        assert figures["baseline_psnr_db"] == pytest.approx(np.mean(still), abs=1e-6)
        assert figures["psnr_db"] != pytest.approx(figures["baseline_psnr_db"])  # the two are really different numbers

    # The export holds the same figures and the per-step series, and is plain JSON.
    exported = json.loads(json.dumps(job.result()))
    assert exported["metrics"] == json.loads(json.dumps(metrics))
    assert np.allclose(exported["series"]["recorded"], action)
    assert exported["series"]["inference_steps"] == list(range(0, steps, infer_every))
    reckoning = job.reckoning("head")
    assert reckoning.obs_tick + horizon == reckoning.target_tick < steps and np.array_equal(reckoning.actual, frames["head"][reckoning.target_tick])


def test_replay_with_a_small_internvla_checkpoint(tmp_path):
    """The real model path: frame history, letterboxing and decoded foresight of an InternVLA-A1."""
    root = record_dataset(tmp_path / "sim_like", episodes=1, frames=20, cameras=tuple(MODEL_CAMERAS),
                          shape=(32, 32, 3), joints=tuple(MODEL_STATE_KEYS))
    entry = {"mean": [0.0] * len(MODEL_STATE_KEYS), "std": [0.1] * len(MODEL_STATE_KEYS)}
    save_checkpoint(tmp_path / "ckpt", small_model(), {"conveyor_sim": {"observation.state": entry, "action": entry}})
    keys = dict(state_keys=MODEL_STATE_KEYS, action_keys=MODEL_STATE_KEYS, camera_keys=MODEL_CAMERAS)
    policy = RecordingPolicy(InternVLAPolicy.from_checkpoint(tmp_path / "ckpt", **keys))
    layout = PolicyLayout(tuple(MODEL_CAMERAS), tuple(MODEL_STATE_KEYS), tuple(MODEL_STATE_KEYS), 15.0)
    job = replay(policy, ReplayConfig(root, infer_every=4), layout)
    status = job.status()
    assert status.phase == "done", status.message
    assert status.horizon == 15 and status.inferences == 5
    frames, _, action, _ = read_with_lerobot(root, 0)
    for camera in MODEL_CAMERAS:
        made = [0, 4]  # inferences whose t+15 lies inside the 20 frames
        model = [psnr(policy.outputs[s // 4].foresight[camera], frames[camera][s + 15]) for s in made]
        assert status.metrics["foresight"][camera]["psnr_db"] == pytest.approx(np.mean(model), abs=1e-6)
    first = policy.outputs[0].actions  # (chunk 6, 7)
    assert status.metrics["action_mse"] is not None and np.isfinite(status.metrics["action_mse"])
    assert job.series()["predicted"][0] == pytest.approx(first[0].tolist())


def test_g1_dataset_replays_through_a_camera_mapping(tmp_path):
    """Real third-party data: v2.1 converted on the fly, 30 fps played every 2nd frame for a 15 Hz
    policy, its one camera mapped to the head slot (the other slots get no frame)."""
    from robot_io.datasets.reader import read_summary

    names = read_summary(G1_V21).state_names
    layout = PolicyLayout(("head", "wrist", "side"), names, names, 15.0)
    policy = RecordingPolicy(EchoPolicy(names, chunk=10, horizon=15))
    cameras = parse_camera_mapping("head=observation.images.cam_high")
    job = replay(policy, ReplayConfig(G1_V21, episode=2, cameras=cameras, max_steps=40), layout, tmp_path / "cache")
    status = job.status()
    assert status.phase == "done", status.message
    assert status.cameras == {"head": "cam_high", "wrist": None, "side": None}
    assert status.dataset_fps == 30 and status.stride == 2 and status.total_steps == 40
    assert status.read_from.startswith(str(tmp_path / "cache"))
    observed = [obs for kind, obs in policy.calls if kind == "observe"]
    assert observed[0]["head"].shape == (480, 640, 3) and "wrist" not in observed[0]
    assert list(status.metrics["foresight"]) == ["head"] and status.metrics["foresight"]["head"]["judged"] == 40 - 15
    frames, state, _, _ = read_with_lerobot(Path(status.read_from), 2, limit=7)
    assert np.array_equal(observed[3]["head"], frames["cam_high"][6])  # step 3 = frame 6
    assert np.allclose([observed[3][n] for n in names], state[6])


def test_camera_mapping_text_and_mismatches_name_both_sides():
    assert parse_camera_mapping(" head=cam_high , wrist=cam_left_wrist ") == {"head": "cam_high", "wrist": "cam_left_wrist"}
    assert parse_camera_mapping("") == {}
    for bad in ("head", "head=", "=cam", "head=a,head=b"):
        with pytest.raises(ReplayError, match="camera mapping"):
            parse_camera_mapping(bad)
    with pytest.raises(ReplayError) as err:
        match_cameras({}, ["head", "wrist"], ["cam_high"])
    assert all(name in str(err.value) for name in ("head", "wrist", "cam_high", "head=cam_high"))
    with pytest.raises(ReplayError, match=r"policy cameras \['top'\] and dataset cameras \['cam_low'\]"):
        match_cameras({"top": "cam_low"}, ["head"], ["cam_high"])


def test_state_and_action_mismatch_names_the_differences(dataset):
    with pytest.raises(ReplayError) as err:
        match_names("observation.state", ["joint_1.pos", "elbow.pos"], ["joint_1.pos", "joint_2.pos"])
    assert "needs ['joint_2.pos']" in str(err.value) and "['elbow.pos']" in str(err.value)
    assert list(match_names("action", ["b", "a"], ["a", "b"])) == [1, 0]  # any order, matched by name
    with pytest.raises(ReplayError, match="no names"):
        match_names("action", None, ["a"])
    other = PolicyLayout(("head", "wrist"), ("joint_1.pos", "shoulder.pos"), JOINTS, 15.0)
    job = replay(EchoPolicy(other.state_keys), ReplayConfig(dataset), other)
    assert job.status().phase == "failed" and "shoulder.pos" in job.status().message


def test_other_fps_is_refused_with_both_rates(tmp_path):
    assert frame_stride(30, 15.0) == 2 and frame_stride(15, 15.0) == 1
    slow = record_dataset(tmp_path / "ten_fps", fps=10, episodes=1, frames=4)
    job = replay(EchoPolicy(JOINTS), ReplayConfig(slow))
    status = job.status()
    assert status.phase == "failed" and "10 fps" in status.message and "15 fps" in status.message


def test_a_policy_without_foresight_still_scores_actions(dataset):
    job = replay(EchoPolicy(JOINTS, foresight=False), ReplayConfig(dataset, max_steps=6))
    status = job.status()
    assert status.phase == "done" and "no foresight" in status.message
    assert status.metrics["action_mse"] is not None
    assert all(f["judged"] == 0 and f["psnr_db"] is None for f in status.metrics["foresight"].values())


class BlockingPolicy(EchoPolicy):
    """Holds its third inference until released, so a test can cancel a replay mid-way."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.reached, self.release, self.calls = threading.Event(), threading.Event(), 0

    def infer(self, observation, instruction):
        self.calls += 1
        if self.calls == 3:
            self.reached.set()
            self.release.wait()
        return super().infer(observation, instruction)


def test_cancel_stops_at_the_next_step_and_keeps_the_figures(dataset):
    policy = BlockingPolicy(JOINTS)
    job = ReplayJob(lambda: policy, LAYOUT, ReplayConfig(dataset), dataset.parent / "cache").start()
    assert policy.reached.wait(WAIT_S)
    job.cancel()
    policy.release.set()
    assert job.join(WAIT_S)
    status = job.status()
    assert status.phase == "cancelled" and status.step == 3 and status.total_steps == FRAMES
    assert status.metrics["action_mse"] is not None and policy.resets >= 2  # reset before and after


def test_a_failing_policy_is_named_with_its_step(dataset):
    class Failing(EchoPolicy):
        def infer(self, observation, instruction):
            raise RuntimeError("out of memory")

    status = replay(Failing(JOINTS), ReplayConfig(dataset)).status()
    assert status.phase == "failed" and "step 0" in status.message and "out of memory" in status.message


def test_config_is_validated_with_clear_messages(tmp_path):
    for kwargs, words in [({"episode": -1}, "episode"), ({"infer_every": 0}, "infer_every"),
                          ({"max_steps": 0}, "max_steps"), ({"instruction": "x" * 201}, "at most 200")]:
        with pytest.raises(ReplayError, match=words):
            ReplayConfig(tmp_path, **kwargs)


def test_infer_every_longer_than_the_chunk_is_refused(dataset):
    status = replay(EchoPolicy(JOINTS, chunk=3), ReplayConfig(dataset, infer_every=4)).status()
    assert status.phase == "failed" and "chunk holds only 3" in status.message


class NoisyOutput(EchoPolicy):
    def infer(self, observation, instruction):
        output = super().infer(observation, instruction)
        return PolicyOutput(actions=output.actions, foresight={**output.foresight, "head": np.zeros((4, 4), np.uint8)})


def test_malformed_foresight_is_dropped_with_the_reason(dataset):
    status = replay(NoisyOutput(JOINTS), ReplayConfig(dataset, max_steps=8)).status()
    assert status.phase == "done" and "foresight of 'head' ignored" in status.message
    assert status.metrics["foresight"]["head"]["judged"] == 0 and status.metrics["foresight"]["wrist"]["judged"] == 5
