"""The /rerun page without a browser: what it shows when Rerun is off or on, and its Save button
through Gradio's own HTTP API (a written file, or why not)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from runtime.rerun.logger import RerunConfig, RerunLogger
from runtime.rerun.snapshot_writer import NO_GEOMETRY_NOTICE
from runtime.control.session import Session, SessionConfig
from tests.browser_support import free_port
from tests.fakes import ConstantPolicy, FakeRobot
from ui.access import Access, add_user, install_access
from ui.rerun_page import mount_rerun_page

PASSWORD = "correct horse battery"


def page_values(client: TestClient) -> dict[str, list]:
    """component type -> the values of that type on the page, in order."""
    values: dict[str, list] = {}
    for component in client.get("/rerun/config").json()["components"]:
        values.setdefault(component["type"], []).append(component.get("props", {}).get("value"))
    return values


def press_save(client: TestClient) -> str:
    event = client.post("/rerun/gradio_api/call/on_save", json={"data": []}).json()["event_id"]
    answer = client.get(f"/rerun/gradio_api/call/on_save/{event}").text
    assert "event: complete" in answer, answer
    return answer


@pytest.fixture
def logger_page(tmp_path):
    made = []

    def make(save_dir: Path, access: Access | None = None):
        session = Session(FakeRobot(), ConstantPolicy(), SessionConfig(fps=30, realtime_priority=0))
        logger = RerunLogger(session, RerunConfig(grpc_port=free_port(), save_dir=save_dir, spool_dir=tmp_path))
        session.start()
        logger.start()
        made.append((logger, session))
        app = FastAPI()
        if access is not None:
            install_access(app, access)
        mount_rerun_page(app, logger, "", access)
        return logger, app

    yield make
    for logger, session in made:
        logger.close()
        session.close()


def test_off_the_page_says_why_and_the_bare_path_redirects():
    app = FastAPI()
    mount_rerun_page(app, None, "started with --no-rerun")
    with TestClient(app) as client:
        redirect = client.get("/rerun", follow_redirects=False)
        assert redirect.status_code == 307 and redirect.headers["location"] == "/rerun/"
        values = page_values(client)
    assert "The Rerun view is off: started with --no-rerun" in values["markdown"]
    assert "rerun" not in values


def test_on_the_page_embeds_the_live_stream_and_saves_the_session(logger_page, tmp_path):
    logger, app = logger_page(tmp_path / "rrd")
    with TestClient(app) as client:
        values = page_values(client)
        assert values["rerun"] == [[logger.url]]
        notes = "\n".join(v for v in values["markdown"] if v)
        assert f"rerun {logger.url}" in notes and NO_GEOMETRY_NOTICE in notes  # FakeRobot has no geometry
        answer = press_save(client)
    saved = Path(re.search(r"Saved `([^`]+)`", answer).group(1))
    assert saved.parent == tmp_path / "rrd" and saved.stat().st_size > 0


def test_a_failed_save_says_why(logger_page, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    _, app = logger_page(blocker / "rrd")
    with TestClient(app) as client:
        answer = press_save(client)
    assert "Not saved: cannot create" in answer and "a_file" in answer


def test_a_viewer_cannot_save_and_the_refusal_is_logged(logger_page, tmp_path):
    users, audit = tmp_path / "users.json", tmp_path / "audit.jsonl"
    add_user(users, "ana", PASSWORD, "operator", with_token=False)
    add_user(users, "vic", PASSWORD, "viewer", with_token=False)
    _, app = logger_page(tmp_path / "rrd", Access(users, audit, required=True))
    with TestClient(app) as client:
        client.post("/login", data={"name": "vic", "password": PASSWORD})
        assert "Not saved: You are logged in as a viewer" in press_save(client)
        assert not (tmp_path / "rrd").exists()
        client.post("/login", data={"name": "ana", "password": PASSWORD})
        assert "Saved `" in press_save(client)
    rows = [json.loads(line) for line in audit.read_text().splitlines()]
    assert any(r["user"] == "vic" and r["action"] == "refused (viewer)" and "Rerun" in r["detail"] for r in rows)
    assert any(r["user"] == "ana" and r["action"] == "command" and "Rerun" in r["detail"] for r in rows)
