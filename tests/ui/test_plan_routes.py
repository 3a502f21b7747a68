"""Plan and dry-run routes over a real session with our fake robot and policies."""

from __future__ import annotations


import cv2
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from robot_io.chunks.blending import BlendConfig
from robot_io.chunks.schedule import ChunkConfig
from runtime.control.commands import DryRun, Mode, RunPolicy
from runtime.control.session import Session, SessionConfig
from tests.fakes import FailingPolicy, FakeRobot, ForesightPolicy
from tests.session_support import wait_for_json, wait_until
from ui.plan_routes import add_plan_routes


@pytest.fixture
def client_for():
    sessions = []

    def make(policy, **config):
        session = Session(FakeRobot(), policy, SessionConfig(fps=30, **config))
        session.start()
        sessions.append(session)
        wait_until(lambda s: s.tick > 2, session)
        app = FastAPI()
        add_plan_routes(app, session)
        return TestClient(app), session

    yield make
    for session in sessions:
        session.close()


def test_plan_shows_the_running_chunk_and_the_commands_sent(client_for):
    # No blending: every command sent after a chunk takes over is that chunk's planned step.
    client, session = client_for(ForesightPolicy(target=0.5, steps=50), chunks=ChunkConfig(blend=BlendConfig(mode="none")))
    idle = client.get("/api/plan").json()
    assert idle["chunk"] is None and idle["keys"] == session.action_keys
    session.submit(RunPolicy("go"))
    plan = wait_for_json(client, "/api/plan", lambda p: p["chunk"] is not None and len(p["sent"]["ticks"]) >= 3)
    chunk = plan["chunk"]
    # the policy's step for its observation's tick was sent already: the plan holds the other 49
    assert len(chunk["actions"]) == 49 and len(chunk["actions"][0]) == len(session.action_keys)
    first = (plan["previous"] or chunk)["obs_tick"] + 1
    assert plan["sent"]["ticks"][0] >= first and plan["sent"]["ticks"][-1] == plan["tick"]
    sent_now = plan["sent"]["commands"][-1]
    assert np.allclose(sent_now, chunk["actions"][plan["tick"] - chunk["obs_tick"] - 1], atol=1e-5)
    assert plan["sent"]["sources"][-1] == "policy"


def test_dry_run_pictures_run_and_discard(client_for):
    client, session = client_for(ForesightPolicy(target=0.5, steps=50))
    session.submit(DryRun("pick up the red block"))
    state = wait_for_json(client, "/api/dry_run", lambda s: s["previews"] and s["pending"] is None)
    (preview,) = state["previews"]
    assert preview["instruction"] == "pick up the red block" and len(preview["actions"]) == 50
    assert preview["foresight_cameras"] == ["head", "wrist"] and state["cameras"] == ["head", "wrist"]
    for kind in ("frame", "foresight"):
        response = client.get(f"/dry_run/{preview['id']}/head/{kind}.jpg")
        assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
        assert cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR) is not None
    assert client.get(f"/dry_run/{preview['id']}/side/frame.jpg").status_code == 404
    assert client.get("/dry_run/999/head/frame.jpg").status_code == 404
    assert client.get(f"/dry_run/{preview['id']}/head/actions.jpg").status_code == 404

    # A long-poll past the current version answers when the next dry run lands.
    session.submit(DryRun("pick up the green block"))
    later = client.get(f"/api/dry_run?after={state['version']}").json()
    assert later["version"] > state["version"]

    assert client.post(f"/api/dry_run/{preview['id']}/run").json()["instruction"] == "pick up the red block"
    running = wait_until(lambda s: s.mode is Mode.RUNNING, session)
    assert running.instruction == "pick up the red block"
    wait_for_json(client, "/api/dry_run", lambda s: s["previews"] == [])  # a moving robot clears them


def test_a_failed_dry_run_cannot_be_run_and_discard_clears(client_for):
    client, session = client_for(FailingPolicy())
    session.submit(DryRun("red"))
    state = wait_for_json(client, "/api/dry_run", lambda s: s["previews"])
    preview = state["previews"][0]
    assert preview["actions"] is None and "no colour named" in preview["error"]
    response = client.post(f"/api/dry_run/{preview['id']}/run")
    assert response.status_code == 409 and "nothing to run" in response.json()["detail"]
    assert client.post("/api/dry_run/discard").json() == {"ok": True}
    wait_for_json(client, "/api/dry_run", lambda s: s["previews"] == [])
    assert session.snapshot().mode is Mode.IDLE
