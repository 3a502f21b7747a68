"""Recording from the page: a full attempt saved with the operator's verdict, then corrections-only
mode where a takeover is its own episode; the episode list shows both, and LeRobot loads them."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from tests.browser_support import chromium_page, console_process, wait_for_instruction

pytestmark = pytest.mark.browser
SCREENSHOT = Path(os.environ.get("RECORDING_SCREENSHOT", "/tmp/recording_panel.png"))
INSTRUCTION = "pick up the red block and put it in the bin"


def get_json(url: str) -> dict:
    return json.loads(urllib.request.urlopen(url, timeout=5).read())


def test_attempt_with_verdict_then_a_correction_episode(tmp_path):
    dataset = tmp_path / "episodes"
    args = ("--policy", "expert", "--record-to", str(dataset), "--seed", "5", "--no-rerun")
    with console_process(*args, log_path=tmp_path / "console.log") as (url, _):
        with chromium_page(height=1800) as page:
            page.goto(url)
            page.wait_for_selector("#status-mode", timeout=30_000)
            # The page is live once the load event has filled in the scene's instruction.
            wait_for_instruction(page)
            page.locator("#instruction textarea").fill(INSTRUCTION)
            page.click("#btn-run")
            page.wait_for_selector("#status-mode:has-text('RUNNING')", timeout=10_000)

            page.click("#btn-rec-start")
            page.wait_for_selector("text=● REC", timeout=30_000)
            page.wait_for_timeout(1500)
            page.click("#btn-rec-failure")  # the operator's verdict, whatever the sim says
            page.wait_for_selector("#episode-list td.outcome-failure", timeout=60_000)

            page.get_by_label("Corrections only (each takeover is its own episode)").check()
            page.wait_for_function("() => document.querySelector('#event-log textarea').value.includes('Recording mode: corrections')",
                                   timeout=10_000)
            page.click("#btn-takeover")
            page.wait_for_selector("text=● REC", timeout=30_000)
            page.locator("body").click(position={"x": 5, "y": 5})
            page.keyboard.down("KeyR")  # up: the operator lifts the arm
            page.wait_for_timeout(800)
            page.keyboard.up("KeyR")
            page.click("#btn-release")
            page.wait_for_function("() => document.querySelectorAll('#episode-list tr').length === 3", timeout=60_000)
            summary = page.inner_text("#episodes-summary")
            assert "2 episodes" in summary and "1 with corrections" in summary, summary
            page.locator("#episode-list").scroll_into_view_if_needed()
            page.screenshot(path=str(SCREENSHOT), full_page=True)

    os.environ["HF_HUB_OFFLINE"] = "1"
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/episodes", root=dataset)
    assert ds.num_episodes == 2
    episode = [int(e) for e in ds.hf_dataset["episode_index"]]
    interventions = [bool(v) for v in ds.hf_dataset["intervention"]]
    assert not any(v for v, e in zip(interventions, episode) if e == 0)  # the expert's attempt
    assert all(v for v, e in zip(interventions, episode) if e == 1)  # the correction: operator throughout
    assert int(ds.hf_dataset["episode_outcome"][0]) == 0  # "failure", as the operator said
