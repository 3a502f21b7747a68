"""The plain HTTP routes beside the Gradio app, against a session on our fake robot."""

import time

import cv2
import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from runtime.commands import Mode, TakeOver
from runtime.session import Session, SessionConfig
from tests.fakes import ConstantPolicy, FakeRobot
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
