"""The plan views in headless Chromium with the shipped model: two dry runs side by side while the
arm holds still, Run one, then the plan chart follows the running chunk with its executed part."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from tests.browser_support import chromium_page, console_process, wait_for_instruction

pytestmark = pytest.mark.browser
CAMERAS = ["head", "wrist", "side"]
SCREENSHOT = Path(os.environ.get("PLAN_SCREENSHOT", "/tmp/plan_panel.png"))
RED = "pick up the red block and put it in the bin"
GREEN = "pick up the green block and put it in the bin"


def get_json(url: str) -> dict:
    return json.loads(urllib.request.urlopen(url, timeout=5).read())


def test_dry_runs_side_by_side_then_run_and_the_plan_chart(tmp_path):
    with console_process("--no-record", "--seed", "3", log_path=tmp_path / "console.log") as (url, _):
        with chromium_page(height=2400) as page:
            page.goto(url)
            page.wait_for_selector("#plan", timeout=30_000)
            wait_for_instruction(page)
            instruction = page.locator("#instruction textarea")
            before = get_json(f"{url}/api/status")

            instruction.fill(RED)
            page.click("#btn-dry-run")
            page.wait_for_function("() => window.planStats.cards === 1", timeout=30_000)
            instruction.fill(GREEN)
            page.click("#btn-dry-run")
            page.wait_for_function("() => window.planStats.cards === 2", timeout=30_000)
            titles = page.locator(".dry-run .title").all_inner_texts()
            assert RED in titles[0] and GREEN in titles[1], titles
            # Each card: every camera's frame and foresight, and its plan chart.
            page.wait_for_function(
                "() => [...document.querySelectorAll('.dry-run img')].every(i => i.complete && i.naturalWidth > 0)"
                " && [...document.querySelectorAll('.dry-run .chart')].filter(c => c.data && c.querySelector('.main-svg')).length === 2",
                timeout=30_000)
            assert page.locator(".dry-run img").count() == 2 * 2 * len(CAMERAS)
            state = get_json(f"{url}/api/status")
            assert state["mode"] == "idle"  # the arm held still through both dry runs
            page.locator("#plan").scroll_into_view_if_needed()
            page.screenshot(path=str(SCREENSHOT.with_name("plan_dry_runs.png")), full_page=True)

            # Run the green one: the cards go (the scene moves on) and the chart follows the chunk.
            page.locator(".dry-run .dry-run-run").nth(1).click()
            page.wait_for_selector("#status-mode:has-text('RUNNING')", timeout=10_000)
            page.wait_for_function("() => window.planStats.cards === 0", timeout=10_000)
            page.wait_for_function("() => window.planStats.chunkId !== null && window.planStats.executed >= 3", timeout=30_000)
            first_chunk = page.evaluate("window.planStats.chunkId")
            page.wait_for_function(f"() => window.planStats.chunkId > {first_chunk}", timeout=30_000)
            traces = page.evaluate("document.getElementById('plan-plot').data.length")
            assert traces == 3 * 7  # per action dim: previous chunk, this chunk, the commands sent
            assert "steps executed" in page.inner_text("#plan-message")
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            assert get_json(f"{url}/api/status")["tick"] > before["tick"]
