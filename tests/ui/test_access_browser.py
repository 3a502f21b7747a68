"""Logins in the browser: the page asks for one, a viewer watches but cannot drive (not even with
the keyboard), an operator drives, and the audit log says who did what."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.browser_support import chromium_page, console_process, wait_for_instruction
from ui.access import add_user

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery"
SCREENSHOT = Path(os.environ.get("ACCESS_SCREENSHOT", "/tmp/access_viewer.png"))


def log_in(page, url, name):
    page.goto(url)
    page.wait_for_selector("#login-name", timeout=30_000)  # sent to the login page first
    page.fill("#login-name", name)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    wait_for_instruction(page)


def test_viewer_watches_operator_drives(tmp_path):
    users, audit = tmp_path / "users.json", tmp_path / "audit.jsonl"
    add_user(users, "ana", PASSWORD, "operator", with_token=False)
    add_user(users, "vic", PASSWORD, "viewer", with_token=False)
    args = ("--require-login", "--users", str(users), "--audit-log", str(audit), "--policy", "expert",
            "--no-record", "--no-rerun")
    with console_process(*args, log_path=tmp_path / "console.log") as (url, _):
        with chromium_page() as page:
            log_in(page, url, "vic")
            page.wait_for_function("() => window.feedStats && window.feedStats.head && window.feedStats.head.frames > 3",
                                   timeout=30_000)  # a viewer sees the cameras
            assert "logged in as vic (viewer" in page.inner_text("#user-name")
            page.click("#btn-run")
            page.get_by_text("viewers watch only").first.wait_for(timeout=10_000)
            page.click("h2")
            page.keyboard.down("KeyW")  # would take over for an operator
            page.wait_for_timeout(1000)
            page.keyboard.up("KeyW")
            assert "IDLE" in page.inner_text("#status-mode")
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        with chromium_page() as page:
            log_in(page, url, "ana")
            page.click("#btn-run")
            page.wait_for_selector("#status-mode:has-text('RUNNING')", timeout=10_000)

    rows = [json.loads(line) for line in audit.read_text().splitlines()]
    seen = {(row["user"], row["action"]) for row in rows}
    assert {("vic", "login"), ("ana", "login"), ("vic", "refused (viewer)"), ("ana", "command")} <= seen
    assert any(row["user"] == "ana" and "RunPolicy" in str(row["detail"]) for row in rows)
