"""Hot swap from the page: load a checkpoint under --checkpoint-root while the console runs; the
arm holds, the Model row names it, and Run drives with it. A folder elsewhere is refused."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from robot_io.sim.conveyor_env import ConveyorSimConfig
from robot_io.sim.sim_robot import SimRobot
from tests.browser_support import chromium_page, console_process, wait_for_instruction
from tests.model.helpers import write_checkpoint

pytestmark = pytest.mark.browser
SCREENSHOT = Path(os.environ.get("MODEL_SWAP_SCREENSHOT", "/tmp/model_swap.png"))


def status(url: str) -> dict:
    return json.loads(urllib.request.urlopen(f"{url}/api/status", timeout=5).read())


def choose(page, folder: str) -> None:
    box = page.locator("#checkpoint-folder input")
    box.fill(folder)
    box.press("Enter")
    page.click("#btn-load-checkpoint")


def test_load_a_checkpoint_without_a_restart(tmp_path):
    root = tmp_path / "runs"
    checkpoint = root / "finetune" / "checkpoints" / "step_0000010"
    write_checkpoint(checkpoint, SimRobot(ConveyorSimConfig()))
    elsewhere = tmp_path / "elsewhere"
    write_checkpoint(elsewhere, SimRobot(ConveyorSimConfig()))
    args = ("--policy", "expert", "--no-record", "--no-rerun", "--checkpoint-root", str(root))
    with console_process(*args, log_path=tmp_path / "console.log") as (url, _):
        with chromium_page(height=1400) as page:
            page.goto(url)
            wait_for_instruction(page)
            assert "scripted expert" in page.inner_text("#model-label")
            page.click("#btn-run")
            page.wait_for_selector("#status-mode:has-text('RUNNING')", timeout=10_000)

            choose(page, str(elsewhere))
            page.get_by_text("outside the checkpoint folders").first.wait_for(timeout=10_000)
            assert status(url)["mode"] == "running"  # refused: the expert drives on

            choose(page, str(checkpoint))
            page.wait_for_function(f"() => document.querySelector('#model-label').innerText.includes('step_0000010')",
                                   timeout=60_000)
            page.wait_for_selector("#status-mode:has-text('PAUSED')", timeout=10_000)  # held for the swap
            page.click("#btn-run")
            page.wait_for_selector("#status-mode:has-text('RUNNING')", timeout=10_000)
            page.wait_for_function("() => document.querySelector('#status-bar').innerText.includes('inference')",
                                   timeout=30_000)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
