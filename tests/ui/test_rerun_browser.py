"""The Rerun page in headless Chromium (software GL): the console links to it, the page's viewer
connects to the console's Rerun gRPC stream and draws, and the Save button writes an .rrd of the
session (read back with Rerun's own reader)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import rerun as rr

from tests.browser_support import SOFTWARE_GL_ARGS, chromium_page, console_process, free_port

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore:RRD file has no footer")]
SCREENSHOT = Path(os.environ.get("RERUN_SCREENSHOT", "/tmp/rerun_page.png"))
INSTRUCTION = "pick up the red block and put it in the bin"
# On 2 cores the viewer's software GL competes with the simulation: give it time, and images
# once a second so it keeps up.
VIEWER_TIMEOUT_MS = 180_000
IMAGE_EVERY_TICKS = "15"
POLL_MS = 1_000


def test_the_rerun_page_streams_the_plan_and_saves_the_session(tmp_path):
    rerun_port = free_port()
    rrd_dir = tmp_path / "rrd"
    args = ("--no-record", "--policy", "expert", "--seed", "3", "--rerun-port", str(rerun_port),
            "--rerun-dir", str(rrd_dir), "--rerun-image-every", IMAGE_EVERY_TICKS)
    with console_process(*args, log_path=tmp_path / "console.log") as (url, _):
        with chromium_page(width=1600, height=1100, extra_args=tuple(SOFTWARE_GL_ARGS)) as page:
            page.goto(url)
            page.wait_for_selector("#status-mode", timeout=30_000)
            assert page.get_attribute("a#rerun-link", "href") == "/rerun"
            page.locator("#instruction textarea").fill(INSTRUCTION)
            page.click("#btn-run")
            page.wait_for_selector("#status-mode:has-text('RUNNING')", timeout=10_000)

            streams = []  # the viewer's requests to the console's Rerun gRPC server
            page.on("response", lambda r: streams.append(r.status) if f"127.0.0.1:{rerun_port}" in r.url else None)
            page.goto(f"{url}/rerun")
            assert f"rerun+http://127.0.0.1:{rerun_port}/proxy" in page.inner_text("#rerun-notes")
            page.wait_for_function(
                "() => { const c = document.querySelector('#rerun-viewer canvas'); return c && c.width > 0 && c.height > 0; }",
                timeout=VIEWER_TIMEOUT_MS,
            )
            waited_ms = 0
            while not streams and waited_ms < VIEWER_TIMEOUT_MS:
                page.wait_for_timeout(POLL_MS)
                waited_ms += POLL_MS
            assert streams and all(status == 200 for status in streams), f"viewer's gRPC responses: {streams}"
            page.wait_for_timeout(15_000)  # a few chunks of the plan reach the viewer
            page.screenshot(path=str(SCREENSHOT), timeout=VIEWER_TIMEOUT_MS)

            page.click("#btn-rerun-save", timeout=VIEWER_TIMEOUT_MS)
            page.wait_for_selector("#rerun-save-result:has-text('Saved')", timeout=VIEWER_TIMEOUT_MS)
            saved = Path(re.search(r"Saved (\S+\.rrd)", page.inner_text("#rerun-save-result")).group(1))

    assert saved.parent == rrd_dir and saved.exists()
    entities = {chunk.entity_path for chunk in rr.chunk.RrdReader(saved).stream()}
    assert {"/world/plan/current", "/world/robot/links", "/cameras/head/image",
            "/timeseries/joints/joint_1.pos/planned"} <= entities
