"""The console page in headless Chromium, served in this process on our fake robot: the E-stop
button and Esc stop the robot while every Gradio event is stuck (a busy UI), and a robot that stops
answering is named in the status bar with Reconnect and Home offered."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import gradio as gr
import pytest
import uvicorn

from runtime.control.commands import Mode, ResetScene, RunPolicy
from runtime.control.session import Session, SessionConfig
from tests.browser_support import chromium_page, free_port
from tests.fakes import ConstantPolicy, FakeRobot
from tests.session_support import wait_until
from ui.console import build_app

pytestmark = pytest.mark.browser
PROMPT = "pick up the red block"
SLOW_STEP = 0.001  # the arm crawls, so the policy is still running when the e-stop comes
STUCK_CHECK_S = 1.5  # long enough for a Gradio event to have landed if the queue were free
PAGE_TIMEOUT_MS = 30_000
SCREENSHOT = Path(os.environ.get("SAFETY_SCREENSHOT", "/tmp/foresight_safety.png"))


class UnpluggableRobot(FakeRobot):
    """FakeRobot whose calls raise while `unplugged` (a pulled USB cable)."""

    unplugged = False

    def get_observation(self):
        if self.unplugged:
            raise ConnectionError("no status packet from /dev/ttyACM0")
        return super().get_observation()

    def connect(self, calibrate: bool = True) -> None:
        if self.unplugged:
            raise ConnectionError("could not open /dev/ttyACM0")
        super().connect(calibrate)


@contextmanager
def served(session: Session):
    """The real console app for `session` on a free port, in a uvicorn thread; yields its URL."""
    server = uvicorn.Server(uvicorn.Config(build_app(session), host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1e3
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def session_on(request):
    sessions = []

    def start(robot, **config):
        session = Session(robot, ConstantPolicy(target=0.5, steps=400), SessionConfig(**({"fps": 30} | config)))
        session.start()
        sessions.append(session)
        return session

    yield start
    for session in sessions:
        session.close()
        assert session.loop_error is None


def test_estop_button_and_esc_work_while_every_gradio_event_is_stuck(session_on, monkeypatch):
    session = session_on(FakeRobot(), max_step_per_tick=SLOW_STEP)
    stuck, release = threading.Event(), threading.Event()
    process_api = gr.Blocks.process_api

    async def busy_process_api(self, *args, **kwargs):
        if stuck.is_set():  # the queue's worker waits here, as behind a long-running event
            await asyncio.to_thread(release.wait)
        return await process_api(self, *args, **kwargs)

    monkeypatch.setattr(gr.Blocks, "process_api", busy_process_api)
    with served(session) as url, chromium_page() as page:
        try:
            page.goto(url)
            page.wait_for_selector("#status-mode", timeout=PAGE_TIMEOUT_MS)  # the page's timer reached us once
            session.submit(RunPolicy(PROMPT))
            wait_until(lambda s: s.mode is Mode.RUNNING, session)
            stuck.set()
            page.click("#btn-pause")  # a Gradio event: it waits in the stuck queue
            time.sleep(STUCK_CHECK_S)
            assert session.snapshot().mode is Mode.RUNNING  # the queue really is stuck
            page.click("#btn-estop")
            wait_until(lambda s: s.mode is Mode.ESTOP, session)

            session.submit(ResetScene(0))
            session.submit(RunPolicy(PROMPT))
            wait_until(lambda s: s.mode is Mode.RUNNING, session)
            page.click("h2")  # focus the page, outside text boxes
            page.keyboard.press("Escape")
            wait_until(lambda s: s.mode is Mode.ESTOP, session)
        finally:
            release.set()


def test_a_robot_that_stops_answering_is_named_and_reconnect_and_home_are_offered(session_on):
    robot = UnpluggableRobot()
    session = session_on(robot)
    with served(session) as url, chromium_page() as page:
        page.goto(url)
        page.wait_for_selector("#status-mode", timeout=PAGE_TIMEOUT_MS)
        robot.unplugged = True
        page.wait_for_selector("#status-device-fault:has-text('fake_robot')", timeout=PAGE_TIMEOUT_MS)
        assert "get_observation" in page.inner_text("#status-device-fault")
        page.locator("#btn-reconnect").scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOT), full_page=False)
        page.click("#btn-reconnect")  # still unplugged: refused, and said
        wait_until(lambda s: any("Reconnecting robot 'fake_robot' failed" in e for e in s.events), session)
        robot.unplugged = False
        page.click("#btn-reconnect")
        page.wait_for_selector("#status-device-fault", state="detached", timeout=PAGE_TIMEOUT_MS)
        page.click("#btn-home")
        wait_until(lambda s: any("Home reached" in e for e in s.events), session)
