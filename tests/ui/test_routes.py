"""The plain HTTP routes beside the Gradio app, against a session on our fake robot."""

import time

import cv2
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from runtime.control.commands import Mode, RunPolicy, TakeOver
from runtime.control.foresight_reckoning import NO_FORESIGHT_MESSAGE
from runtime.control.session import Session, SessionConfig
from tests.fakes import ConstantPolicy, FakeRobot, ForesightPolicy
from tests.session_support import wait_for_json, wait_until
from ui.routes import MAX_KEYS, add_console_routes


@pytest.fixture
def client_and_session():
    session = Session(FakeRobot(), ConstantPolicy(), SessionConfig(fps=30))
    session.start()
    session.wait_for_tick(2)
    app = FastAPI()
    add_console_routes(app, session)
    yield TestClient(app), session
    session.close()


def test_latest_frame_is_a_jpeg_of_the_camera(client_and_session):
    client, session = client_and_session
    response = client.get("/feeds/head.jpg")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    image = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (32, 48, 3)
    assert int(response.headers["X-Frame-Tick"]) >= 2


def test_unknown_camera_is_404_with_the_names(client_and_session):
    client, _ = client_and_session
    response = client.get("/feeds/left.jpg")
    assert response.status_code == 404 and "head" in response.text


def test_status_and_estop(client_and_session):
    client, session = client_and_session
    assert client.get("/api/status").json()["mode"] == "idle"
    assert client.post("/api/estop").status_code == 200
    deadline = time.monotonic() + 5
    while session.snapshot().mode is not Mode.ESTOP and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.get("/api/status").json()["mode"] == "estop"


def test_teleop_keys_reach_the_session_and_oversized_bodies_are_refused(client_and_session):
    client, session = client_and_session
    session.submit(TakeOver())
    assert client.post("/api/teleop", json={"keys": ["KeyW"]}).status_code == 200
    deadline = time.monotonic() + 5
    while session.snapshot().action_source != "operator" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert session.snapshot().action_source == "operator"
    too_many = client.post("/api/teleop", json={"keys": [f"Key{i}" for i in range(MAX_KEYS + 1)]})
    assert too_many.status_code == 400


def test_status_reports_chunk_seams(client_and_session):
    client, _ = client_and_session
    seams = client.get("/api/status").json()["seams"]
    assert seams == {"last": None, "history": []}  # idle: no chunk has switched yet


def running_client(policy):
    session = Session(FakeRobot(), policy, SessionConfig(fps=30))
    session.start()
    session.wait_for_tick(2)
    session.submit(RunPolicy("pick up the red block"))
    app = FastAPI()
    add_console_routes(app, session)
    return TestClient(app), session


def decode(response) -> np.ndarray:
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg", response.text
    return cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)


@pytest.fixture
def foresight_client():
    client, session = running_client(ForesightPolicy())
    yield client, session
    session.close()


def test_foresight_pictures_reckonings_and_history(foresight_client):
    client, _ = foresight_client
    state = wait_for_json(client, "/api/foresight", lambda s: s["available"] and s["reckonings"].get("head"))
    assert state["horizon"] == 15 and state["message"] == "" and set(state["cameras"]) == {"head", "wrist"}
    picture = client.get("/foresight/head.jpg")
    assert decode(picture).shape == (16, 24, 3) and int(picture.headers["X-Foresight-Version"]) >= 1
    reckoning = client.get("/foresight/head/reckoning.jpg")
    assert decode(reckoning).shape[1] > 3 * 24  # prediction | actual | heat map
    point = state["reckonings"]["head"]
    assert point["target_tick"] == point["obs_tick"] + 15 and point["psnr_db"] > point["baseline_psnr_db"]
    history = client.get("/api/foresight/history").json()
    assert history["horizon"] == 15 and history["inference_ticks"]
    head = history["cameras"]["head"]
    assert len(head["psnr_db"]) == len(head["baseline_psnr_db"]) == len(head["target_tick"]) >= 1
    assert "encoder" in history["latent_note"]  # the fake policy exposes no encoder
    assert client.get("/foresight/side.jpg").status_code == 404
    assert client.get("/foresight/side/reckoning.jpg").status_code == 404


def test_foresight_long_poll_answers_when_the_next_inference_lands(foresight_client):
    client, _ = foresight_client
    first = wait_for_json(client, "/api/foresight", lambda s: s["available"])
    started = time.monotonic()
    later = client.get(f"/api/foresight?after={first['version']}").json()
    assert later["version"] > first["version"]
    assert time.monotonic() - started < 5


def test_a_policy_without_foresight_is_said_so_and_the_rest_works():
    client, session = running_client(ConstantPolicy())
    try:
        state = wait_for_json(client, "/api/foresight", lambda s: s["available"] is not None)
        assert state["available"] is False and state["message"] == NO_FORESIGHT_MESSAGE
        missing = client.get("/foresight/head.jpg")
        assert missing.status_code == 404 and "no foresight" in missing.text
        assert client.get("/foresight/head/reckoning.jpg").status_code == 404
        assert client.get("/api/foresight/history").json()["cameras"]["head"]["psnr_db"] == []
        assert client.get("/feeds/head.jpg").status_code == 200
        status = wait_for_json(client, "/api/status", lambda s: s["inference_ms"] is not None)
        assert status["mode"] == "running" and status["inference_ms"] >= 0
    finally:
        session.close()


def test_plotly_js_is_served_for_the_chart(client_and_session):
    client, _ = client_and_session
    response = client.get("/assets/plotly.min.js")
    assert response.status_code == 200 and b"plotly" in response.content[:2000].lower()


def test_control_route_takes_and_releases_for_one_tab_and_teleop_validates_axes(client_and_session):
    client, session = client_and_session
    assert client.post("/api/control", json={"action": "take", "client": "tab-a"}).json() == {"ok": True}
    taken = wait_until(lambda s: s.mode is Mode.TAKEOVER, session)
    assert taken.controller == "tab-a"
    client.post("/api/control", json={"action": "release", "client": "tab-b"})
    wait_until(lambda s: "refused" in s.last_error, session)
    assert session.snapshot().mode is Mode.TAKEOVER
    client.post("/api/control", json={"action": "release", "client": "tab-a"})
    wait_until(lambda s: s.mode is Mode.IDLE, session)
    assert client.post("/api/control", json={"action": "grab"}).status_code == 400
    assert client.post("/api/teleop", json={"axes": [0.0] * 7}).status_code == 400
    assert client.post("/api/teleop", json={"axes": [0.5, 0, 0, 0, 0, 0], "client": "pad"}).json() == {"ok": True}


def test_foresight_long_poll_can_carry_the_pictures(foresight_client):
    import base64

    client, _ = foresight_client
    state = wait_for_json(client, "/api/foresight", lambda s: s["available"] and s["reckonings"].get("head"))
    full = client.get("/api/foresight?pictures=1").json()
    assert set(full["pictures"]) == set(full["cameras"]) == {"head", "wrist"}
    jpeg = base64.b64decode(full["pictures"]["head"].removeprefix("data:image/jpeg;base64,"))
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (16, 24, 3)
    assert "head" in full["reckoning_pictures"]
    assert "pictures" not in state  # only when asked


def test_home_and_reconnect_routes_reach_the_session(client_and_session):
    client, session = client_and_session
    assert client.post("/api/home").status_code == 200
    wait_until(lambda s: any("Home reached" in e for e in s.events), session)
    assert client.post("/api/reconnect").status_code == 200
    wait_until(lambda s: any("Nothing to reconnect" in e for e in s.events), session)
    body = client.get("/api/status").json()
    assert body["device_fault"] == "" and body["stale_cameras"] == []
