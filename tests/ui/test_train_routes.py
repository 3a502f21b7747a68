"""The Train panel's routes: options, bad requests answered 400 with the reason, a second training
409 naming the running one, stop, and no hot swap before a fine-tune has finished."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from model.shipped import SHIPPED_CHECKPOINT
from robot_io.sim.collect import main as collect
from runtime.training.jobs import TrainingConfig, TrainingJobs
from tests.session_support import wait_for_json
from ui.train_routes import IDLE_MESSAGE, add_train_routes


@pytest.fixture
def client(tmp_path):
    datasets = tmp_path / "datasets"
    assert collect(["--episodes", "1", "--out", str(datasets / "demo"), "--image-size", "64"]) == 0
    jobs = TrainingJobs(TrainingConfig(dataset_roots=(datasets,), checkpoint_roots=(tmp_path / "runs",),
                                       out_root=tmp_path / "runs", default_base=SHIPPED_CHECKPOINT))
    app = FastAPI()
    add_train_routes(app, jobs, loader=None)
    with TestClient(app) as client:
        client.datasets = datasets
        yield client
    jobs.close()


def test_options_bad_requests_a_second_training_and_stop(client):
    assert client.get("/api/train/status").json() == {"phase": "idle", "message": IDLE_MESSAGE, "points": 0, "new_points": []}
    options = client.get("/api/train/options").json()
    demo = str(client.datasets.resolve() / "demo")
    assert [d["path"] for d in options["datasets"]] == [demo] and options["datasets"][0]["episodes"] == 1
    assert options["bases"] == [options["default_base"]] == [str(SHIPPED_CHECKPOINT.resolve())]
    assert options["kinds"] == ["finetune", "lerobot"] and "act" in options["lerobot_policies"] and not options["can_load"]

    body = {"kind": "finetune", "dataset": demo, "steps": 500, "batch_size": 2, "base": options["default_base"]}
    for change, message in [({"dataset": str(client.datasets / "nope")}, "no dataset folder at"),
                            ({"dataset": "/etc"}, "outside the dataset roots"),
                            ({"kind": "magic"}, "unknown trainer 'magic'"),
                            ({"steps": 0}, "steps and batch size must be >= 1")]:
        answer = client.post("/api/train/start", json=body | change)
        assert answer.status_code == 400 and message in answer.json()["detail"], answer.json()
    assert client.get("/api/train/status").json()["phase"] == "idle"  # nothing started

    assert client.post("/api/train/start", json=body).status_code == 200
    second = client.post("/api/train/start", json=body | {"kind": "lerobot", "steps": 2})
    assert second.status_code == 409
    assert "a training is running: fine-tune of our model on demo, 500 steps" in second.json()["detail"]
    refused = client.post("/api/train/load")
    assert refused.status_code == 409 and "no finished fine-tune to load" in refused.json()["detail"]
    assert client.post("/api/train/stop").status_code == 200
    stopped = wait_for_json(client, "/api/train/status", lambda s: s["phase"] == "stopped", timeout_s=30)
    assert stopped["error"] == "" and stopped["label"] == "fine-tune of our model on demo, 500 steps"
