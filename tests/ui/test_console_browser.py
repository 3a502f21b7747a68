"""The real console in headless Chromium: feeds advance, an instruction runs the expert, an
episode is recorded and found on disk, bad input gets a message."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from tests.browser_support import chromium_page, console_process, shown_width, wait_for_instruction

pytestmark = pytest.mark.browser
CAMERAS = ["head", "wrist", "side"]
SCREENSHOT = Path(os.environ.get("CONSOLE_SCREENSHOT", "/tmp/foresight_console.png"))


def status(url: str) -> dict:
    return json.loads(urllib.request.urlopen(f"{url}/api/status", timeout=5).read())


def test_console_end_to_end(tmp_path):
    dataset = tmp_path / "episodes"
    with console_process("--record-to", str(dataset), "--seed", "3", log_path=tmp_path / "console.log") as (url, proc):
        with chromium_page() as page:
            page.goto(url)
            page.wait_for_selector("#status-mode", timeout=30_000)

            # Every feed delivers frames to the page and shows them.
            page.wait_for_function(
                "cams => window.feedStats && cams.every(c => window.feedStats[c] && window.feedStats[c].frames >= 10)",
                arg=CAMERAS, timeout=30_000,
            )
            first = page.evaluate("cams => cams.map(c => window.feedStats[c].frames)", CAMERAS)
            page.wait_for_timeout(1000)
            later = page.evaluate("cams => cams.map(c => window.feedStats[c].frames)", CAMERAS)
            assert all(b > a for a, b in zip(first, later)), (first, later)
            page.wait_for_function("cams => cams.every(c => window.feedStats[c].width === 224)", arg=CAMERAS, timeout=5_000)
            for camera in CAMERAS:
                assert shown_width(page, f"feed-{camera}") == 224

            # The instruction box is prefilled with the scene's instruction after load.
            instruction = page.locator("#instruction textarea")
            wait_for_instruction(page)

            # An empty instruction is refused with a message; nothing runs.
            instruction.fill("   ")
            page.click("#btn-run")
            page.get_by_text("The instruction is empty").first.wait_for(timeout=10_000)
            assert status(url)["mode"] == "idle"

            # A motion key while the policy holds takes over at once (no button); Release hands back.
            page.click("h2")
            page.keyboard.down("KeyW")
            page.wait_for_selector("#status-mode:has-text('TAKEOVER')", timeout=10_000)
            page.wait_for_selector("#status-controller", timeout=10_000)  # who has control, for every viewer
            page.keyboard.up("KeyW")
            page.click("#btn-release")
            page.wait_for_selector("#status-mode:has-text('IDLE')", timeout=10_000)

            # Record an episode of the default policy (the shipped model) given the named block.
            page.click("#btn-rec-start")
            page.wait_for_selector("text=● REC", timeout=10_000)
            instruction.fill("pick up the red block and put it in the bin")
            page.click("#btn-run")
            page.wait_for_selector("#status-mode:has-text('RUNNING')", timeout=10_000)
            page.wait_for_function("() => document.querySelector('#status-bar').innerText.includes('inference')", timeout=20_000)
            page.wait_for_selector("#status-seam", timeout=20_000)  # chunks switch
            page.wait_for_timeout(2000)

            # A reload changes nothing about the robot or the recording, and shows the current state.
            page.reload()
            page.wait_for_selector("#status-mode:has-text('RUNNING')", timeout=30_000)
            page.wait_for_selector("text=● REC", timeout=10_000)
            wait_for_instruction(page, "red block")
            page.wait_for_function("cams => window.feedStats && cams.every(c => window.feedStats[c] && window.feedStats[c].frames >= 3)",
                                   arg=CAMERAS, timeout=30_000)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            page.click("#btn-rec-stop")
            page.wait_for_selector("text=1 saved", timeout=60_000)
            assert status(url)["recording"]["backlog"] == 0

            # An episode still recording when the console gets SIGTERM is saved, not lost.
            page.click("#btn-rec-start")
            page.wait_for_function("() => document.querySelector('#status-bar').innerText.includes('● REC')", timeout=10_000)
            page.wait_for_timeout(1500)

    # SIGTERM saved the second episode and finalized the dataset: lerobot's own loader reads both.
    assert proc.returncode == 0, (tmp_path / "console.log").read_text()
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/episodes", root=dataset)
    assert ds.meta.total_episodes == 2 and ds.num_frames > 30
    frame = ds[ds.num_frames - 1]
    for camera in CAMERAS:
        assert tuple(frame[f"observation.images.{camera}"].shape) == (3, 224, 224)
    assert "intervention" in ds.features
