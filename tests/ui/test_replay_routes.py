"""The open-loop replay routes against a ReplayService with our echo policy and a recorded dataset."""

from __future__ import annotations

import json
import shutil
import threading
import time

import cv2
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from runtime.replay.open_loop import PolicyLayout
from runtime.replay.service import ReplayService, ReplayServiceConfig
from tests.replay_support import G1_V21, EchoPolicy, record_dataset
from ui.replay_routes import add_replay_routes

JOINTS = ("joint_1.pos", "joint_2.pos", "gripper.pos")
LAYOUT = PolicyLayout(("head", "wrist"), JOINTS, JOINTS, 15.0)
WAIT_S = 120


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    base = tmp_path_factory.mktemp("replay_roots")
    record_dataset(base / "ours" / "demo", episodes=2, frames=12)
    (base / "ours" / "broken" / "meta").mkdir(parents=True)
    (base / "ours" / "broken" / "meta" / "info.json").write_text("{not json")
    shutil.copytree(G1_V21, base / "theirs" / "g1_v21")
    return base


class GatedPolicy(EchoPolicy):
    """EchoPolicy whose inferences wait while `gate` is clear (`waiting` is set meanwhile)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gate, self.waiting = threading.Event(), threading.Event()
        self.gate.set()

    def infer(self, observation, instruction):
        if not self.gate.is_set():
            self.waiting.set()
            self.gate.wait()
        return super().infer(observation, instruction)


@pytest.fixture
def policy():
    return GatedPolicy(JOINTS, chunk=4, horizon=3)


@pytest.fixture
def client(roots, tmp_path, policy):
    service = ReplayService(ReplayServiceConfig((roots / "ours", roots / "theirs"), tmp_path / "cache", {"head": "head"}),
                            LAYOUT, lambda: policy)
    app = FastAPI()
    add_replay_routes(app, service)
    yield TestClient(app)
    service.close()


def wait_finished(client) -> dict:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        status = client.get("/api/replay/status").json()
        if status["phase"] in ("done", "cancelled", "failed"):
            return status
        time.sleep(0.05)
    raise AssertionError(f"the replay did not finish: {status}")


def test_datasets_are_listed_with_what_the_policy_reads(client, roots):
    answer = client.get("/api/replay/datasets").json()
    assert answer["policy"]["cameras"] == ["head", "wrist"] and answer["default_cameras"] == "head=head"
    by_label = {d["label"]: d for d in answer["datasets"]}
    assert set(by_label) == {"ours/demo", "ours/broken", "theirs/g1_v21"}
    assert by_label["ours/demo"]["episodes"] == 2 and by_label["ours/demo"]["cameras"] == ["head", "wrist"]
    assert by_label["theirs/g1_v21"]["version"] == "v2.1" and by_label["theirs/g1_v21"]["fps"] == 30
    assert "meta/info.json is unreadable" in by_label["ours/broken"]["problem"]


def test_a_replay_runs_and_its_figures_pictures_and_export_are_served(client, roots):
    assert client.get("/api/replay/status").json()["phase"] == "idle"
    assert client.get("/api/replay/result.json").status_code == 404
    response = client.post("/api/replay/start", json={"dataset": str(roots / "ours" / "demo"), "episode": 1})
    assert response.status_code == 200, response.text
    status = wait_finished(client)
    assert status["phase"] == "done", status["message"]
    assert status["step"] == status["total_steps"] == 12 and status["inferences"] == 12
    assert status["metrics"]["foresight"]["head"]["judged"] == 12 - 3
    series = client.get("/api/replay/series").json()
    assert len(series["recorded"]) == len(series["predicted"]) == 12 and series["action_keys"] == list(JOINTS)

    picture = client.get("/replay/head/reckoning.jpg")
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(picture.content, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[0] == 32 and image.shape[1] > 3 * 48  # prediction | recorded | difference
    assert client.get("/replay/top/reckoning.jpg").status_code == 404

    exported = client.get("/api/replay/result.json")
    assert "attachment" in exported.headers["content-disposition"] and "demo_episode1.json" in exported.headers["content-disposition"]
    result = json.loads(exported.content)
    assert result["metrics"] == status["metrics"] and result["episode"] == 1 and len(result["series"]["steps"]) == 12


def test_bad_requests_are_refused_with_the_reason(client, roots, tmp_path):
    outside = client.post("/api/replay/start", json={"dataset": str(tmp_path)})
    assert outside.status_code == 400 and "outside the dataset roots" in outside.json()["detail"]
    broken = client.post("/api/replay/start", json={"dataset": str(roots / "ours" / "broken")})
    assert broken.status_code == 400 and "unreadable" in broken.json()["detail"]
    mapping = client.post("/api/replay/start", json={"dataset": str(roots / "ours" / "demo"), "cameras": "head"})
    assert mapping.status_code == 400 and "policy_camera=dataset_camera" in mapping.json()["detail"]
    every = client.post("/api/replay/start", json={"dataset": str(roots / "ours" / "demo"), "infer_every": 0})
    assert every.status_code == 400 and "infer_every" in every.json()["detail"]


def test_a_dataset_that_does_not_fit_fails_with_the_differences(client, roots):
    """The G1 recording: 26 other joints, one camera named cam_high; converted first (v2.1)."""
    source = roots / "theirs" / "g1_v21"
    before = sorted((p.name, p.stat().st_mtime_ns) for p in source.rglob("*"))
    response = client.post("/api/replay/start", json={"dataset": str(source), "cameras": "head=cam_high"})
    assert response.status_code == 200
    status = wait_finished(client)
    assert status["phase"] == "failed"
    assert "observation.state" in status["message"] and "kLeftShoulderPitch" in status["message"] and "joint_1.pos" in status["message"]
    assert sorted((p.name, p.stat().st_mtime_ns) for p in source.rglob("*")) == before


def test_one_replay_at_a_time_and_stop(client, roots, policy):
    body = {"dataset": str(roots / "ours" / "demo"), "episode": 0}
    policy.gate.clear()
    assert client.post("/api/replay/start", json=body).status_code == 200
    assert policy.waiting.wait(WAIT_S)
    second = client.post("/api/replay/start", json=body)
    assert second.status_code == 409 and "stop it first" in second.json()["detail"]
    assert client.get("/api/replay/status").json()["phase"] == "running"
    assert client.post("/api/replay/stop").status_code == 200
    policy.gate.set()
    status = wait_finished(client)
    assert status["phase"] == "cancelled" and status["step"] == 1
    assert client.post("/api/replay/start", json=body).status_code == 200  # a finished replay makes room
    assert wait_finished(client)["phase"] == "done"
