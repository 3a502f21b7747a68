"""The open-loop replay panel in headless Chromium, on the real console with the shipped model: open
the panel, pick a recorded dataset, start; progress, the figures, the foresight pictures and the
charts appear, and the page shows the figures the server computed."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from tests.browser_support import chromium_page, console_process
from tests.model.helpers import CAMERAS, STATE_KEYS
from tests.replay_support import record_dataset

pytestmark = pytest.mark.browser
SCREENSHOT = Path(os.environ.get("REPLAY_SCREENSHOT", "/tmp/replay_panel.png"))
STEPS = 20  # 15-step horizon: the first 5 predictions are judged


def get_json(url: str) -> dict:
    return json.loads(urllib.request.urlopen(url, timeout=5).read())


def test_replay_panel_runs_a_recorded_episode(tmp_path):
    roots = tmp_path / "datasets"
    record_dataset(roots / "sim_like", episodes=2, frames=24, cameras=tuple(CAMERAS), shape=(64, 64, 3), joints=tuple(STATE_KEYS))
    args = ("--no-record", "--replay-root", str(roots), "--replay-cache", str(tmp_path / "cache"))
    with console_process(*args, log_path=tmp_path / "console.log") as (url, _):
        with chromium_page(height=1800) as page:
            page.goto(url)
            page.wait_for_selector("#status-mode", timeout=30_000)
            assert page.locator("#replay").count() == 0  # nothing of the panel until it is opened
            page.click("text=Open-loop replay")
            page.wait_for_function("() => document.querySelectorAll('#replay-dataset option').length === 1", timeout=30_000)
            assert page.input_value("#replay-dataset") == str(roots.resolve() / "sim_like")
            assert page.locator("#replay-episode option").count() == 2
            assert "v3.0 · 15 fps · 2 episodes" in page.inner_text("#replay-info")

            page.select_option("#replay-episode", "1")
            page.fill("#replay-max", str(STEPS))
            page.click("#replay-start")
            page.wait_for_function("() => window.replayStats.phase === 'running'", timeout=60_000)
            page.wait_for_function("() => window.replayStats.phase === 'done'", timeout=300_000)
            page.wait_for_function("() => window.replayStats.plots >= 1 && window.replayStats.pictures >= 3", timeout=30_000)

            status = get_json(f"{url}/api/replay/status")
            assert status["step"] == status["total_steps"] == STEPS and status["episode"] == 1
            assert f"step {STEPS} / {STEPS}" in page.inner_text("#replay-message")
            assert page.evaluate("document.getElementById('replay-progress').value") == STEPS
            table = page.inner_text("#replay-metrics")
            assert f"{status['metrics']['action_mse']:.5f}" in table
            for camera in CAMERAS:
                figures = status["metrics"]["foresight"][camera]
                assert figures["judged"] == STEPS - 15
                assert f"{figures['psnr_db']:.2f} dB" in table and f"{figures['baseline_psnr_db']:.2f} dB" in table
                page.wait_for_function(f"() => document.getElementById('replay-reck-{camera}').naturalWidth > 0", timeout=10_000)
            assert page.locator("#replay-actions-plot .main-svg").count() >= 1
            assert page.locator("#replay-psnr-plot .main-svg").count() >= 1
            page.locator("#replay").screenshot(path=str(SCREENSHOT))
