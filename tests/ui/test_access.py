"""Access control: logins, roles, tokens, the growing delay after failures, and the audit log."""

from __future__ import annotations

import io
import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ui import access as access_module
from ui.access import COOKIE, LOCAL_USER, Access, AccessError, add_user, install_access, main

PASSWORD = "correct horse battery"


@pytest.fixture
def users(tmp_path):
    path = tmp_path / "users.json"
    token = add_user(path, "ana", PASSWORD, "operator", with_token=True)
    add_user(path, "vic", PASSWORD, "viewer", with_token=False)
    return path, token


@pytest.fixture
def fast_failures(monkeypatch):
    monkeypatch.setattr(access_module, "FAILURE_DELAY_S", 0.001)


def app_with(access: Access) -> TestClient:
    app = FastAPI()
    install_access(app, access)

    @app.get("/api/status")
    def status() -> dict:
        return {"ok": True}

    @app.post("/api/teleop")
    def teleop() -> dict:
        return {"moved": True}

    @app.post("/api/estop")
    def estop() -> dict:
        return {"stopped": True}

    return TestClient(app, follow_redirects=False)


def log_in(client: TestClient, name: str, password: str = PASSWORD):
    return client.post("/login", data={"name": name, "password": password})


def test_loopback_needs_no_login_and_other_addresses_need_a_users_file(tmp_path):
    open_access = Access(None)
    client = app_with(open_access)
    assert client.post("/api/teleop").json() == {"moved": True}
    assert open_access.user_of(None) is LOCAL_USER and open_access.may_operate(None)
    with pytest.raises(AccessError, match="needs logins"):
        Access(None, required=True)
    (tmp_path / "bad.json").write_text("{ not json")
    with pytest.raises(AccessError, match="cannot read the users file"):
        Access(tmp_path / "bad.json", required=True)


def test_login_then_roles(users, tmp_path, fast_failures):
    path, _ = users
    audit = tmp_path / "audit.jsonl"
    client = app_with(Access(path, audit, required=True))
    assert client.get("/api/status").status_code == 401
    assert client.get("/api/status", headers={"accept": "text/html"}).headers["location"] == "/login"
    assert "Log in" in client.get("/login").text

    refused = log_in(client, "ana", "wrong password")
    assert refused.headers["location"] == "/login?failed=1" and COOKIE not in refused.cookies
    assert log_in(client, "nobody").headers["location"] == "/login?failed=1"
    answer = log_in(client, "ana")
    assert answer.headers["location"] == "/" and COOKIE in answer.cookies
    client.cookies.set(COOKIE, answer.cookies[COOKIE])
    assert client.get("/api/status").json() == {"ok": True}
    assert client.post("/api/teleop").json() == {"moved": True}

    restarted = app_with(Access(path, audit, required=True))  # a restart makes a new key: logged out
    restarted.cookies.set(COOKIE, answer.cookies[COOKIE])
    assert restarted.get("/api/status").status_code == 401

    access = Access(path, audit, required=True)
    viewer = app_with(access)
    viewer.cookies.set(COOKIE, log_in(viewer, "vic").cookies[COOKIE])
    assert viewer.get("/api/status").json() == {"ok": True}
    forbidden = viewer.post("/api/teleop")
    assert forbidden.status_code == 403 and "viewers watch only" in forbidden.json()["detail"]
    assert viewer.post("/api/estop").json() == {"stopped": True}  # anyone may stop the robot
    assert not access.may_operate("vic") and access.may_operate("ana") and not access.may_operate(None)

    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    actions = [(row["user"], row["action"]) for row in lines]
    assert ("ana", "login refused") in actions and ("ana", "login") in actions and ("vic", "login") in actions
    assert ("vic", "refused (viewer)") in actions and ("ana", "api") in actions
    assert all(row["address"] and row["time"] for row in lines)


def test_tokens_and_tampered_cookies(users, fast_failures):
    path, token = users
    access = Access(path, required=True)
    client = app_with(access)
    assert client.get("/api/status", headers={"authorization": f"Bearer {token}"}).json() == {"ok": True}
    assert client.get("/api/status", headers={"authorization": "Bearer guessed"}).status_code == 401
    good = access.cookie_for(access.check_password("vic", PASSWORD))
    name, expires, signature = good.rsplit("|", 2)
    client.cookies.set(COOKIE, f"ana|{expires}|{signature}")  # claims another user
    assert client.get("/api/status").status_code == 401
    client.cookies.set(COOKIE, good)
    assert client.get("/api/status").status_code == 200


def test_the_delay_after_failures_grows_and_resets(users, monkeypatch):
    path, _ = users
    access = Access(path, required=True)
    delays = [access.failure_delay("10.0.0.9") for _ in range(10)]
    assert delays[:3] == [0.5, 1.0, 2.0] and delays[-1] == access_module.MAX_FAILURE_DELAY_S
    assert access.failure_delay("10.0.0.7") == 0.5  # per address
    access.succeeded("10.0.0.9")
    assert access.failure_delay("10.0.0.9") == 0.5


def test_users_file_command_and_its_checks(tmp_path, monkeypatch, capsys):
    path = tmp_path / "users.json"
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["add-user", str(path), "ana", "--token", "--password-stdin"]) == 0
    assert "API token (shown once)" in capsys.readouterr().out
    stored = json.loads(path.read_text())["users"][0]
    assert PASSWORD not in path.read_text() and stored["role"] == "operator" and oct(path.stat().st_mode)[-3:] == "600"
    with pytest.raises(AccessError, match="at least 8"):
        add_user(path, "bob", "short", "operator", with_token=False)
    with pytest.raises(AccessError, match="role must be"):
        add_user(path, "bob", PASSWORD, "admin", with_token=False)
