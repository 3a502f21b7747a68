"""The Train panel in headless Chromium on the real console: a fine-tune that fails shows why and
changes nothing; then the shipped model is fine-tuned for a few steps on a sim recording made by
robot_io.sim.collect, the progress bar and the loss curve follow the run live, and the fine-tuned
checkpoint is offered and hot-swapped into the running console."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from robot_io.sim.collect import main as collect
from robot_io.sim.conveyor_env import ConveyorSimConfig
from robot_io.sim.sim_robot import SimRobot
from tests.browser_support import chromium_page, console_process, wait_for_instruction
from tests.model.helpers import write_checkpoint

pytestmark = pytest.mark.browser
SCREENSHOT = Path(os.environ.get("TRAIN_SCREENSHOT", "/tmp/train_panel.png"))
FAILED_SCREENSHOT = SCREENSHOT.with_name(SCREENSHOT.stem + "_failed.png")
STEPS = 20


def get_json(url: str) -> dict:
    return json.loads(urllib.request.urlopen(url, timeout=5).read())


def test_train_panel_fine_tunes_shows_progress_and_loss_then_offers_the_hot_swap(tmp_path):
    datasets, runs = tmp_path / "datasets", tmp_path / "runs"
    assert collect(["--episodes", "1", "--out", str(datasets / "demo"), "--image-size", "64"]) == 0
    toy = runs / "toy"  # a checkpoint of a preset model.finetune refuses: the trainer fails
    write_checkpoint(toy, SimRobot(ConveyorSimConfig()))
    args = ("--policy", "expert", "--no-record", "--no-rerun", "--replay-root", str(datasets),
            "--checkpoint-root", str(runs), "--train-out", str(runs))
    with console_process(*args, log_path=tmp_path / "console.log") as (url, _):
        with chromium_page(height=1800) as page:
            page.goto(url)
            wait_for_instruction(page)
            page.click("#btn-run")  # the expert drives all along
            page.wait_for_selector("#status-mode:has-text('RUNNING')", timeout=10_000)
            assert page.locator("#train").count() == 0  # nothing of the panel until it is opened
            page.click("text=Train: fine-tune our model")
            page.wait_for_function("() => document.querySelectorAll('#train-dataset option').length === 1", timeout=30_000)
            assert page.input_value("#train-dataset") == str(datasets.resolve() / "demo")
            shipped = page.input_value("#train-base")
            assert shipped.endswith("model/weights/tiny_conveyor")  # the console's own model
            page.fill("#train-steps", str(STEPS))
            page.fill("#train-batch", "2")

            page.select_option("#train-base", str(toy.resolve()))
            page.click("#train-start")
            page.wait_for_function("() => window.trainStats.phase === 'failed'", timeout=120_000)
            error = page.inner_text("#train-error")
            assert "exited with status 2; the console's model is unchanged" in error and "unknown preset 'small'" in error
            assert get_json(f"{url}/api/status")["mode"] == "running" and "scripted expert" in page.inner_text("#model-label")
            page.locator("#train").screenshot(path=str(FAILED_SCREENSHOT))

            page.select_option("#train-base", shipped)
            page.click("#train-start")

            # Live: the bar and the curve move while it runs, more than once.
            page.wait_for_function("() => window.trainStats.phase === 'running' && window.trainStats.points >= 1", timeout=120_000)
            assert page.inner_text("#train-error") == ""  # the failure's message went with its run
            running = page.evaluate("() => ({plots: window.trainStats.plots, bar: document.getElementById('train-progress').value})")
            assert page.is_disabled("#train-start") and not page.is_disabled("#train-stop")
            assert get_json(f"{url}/api/status")["mode"] == "running"
            page.wait_for_function("() => window.trainStats.phase === 'done'", timeout=300_000)
            assert page.evaluate("() => window.trainStats.plots") > running["plots"]
            assert running["bar"] < STEPS

            status = get_json(f"{url}/api/train/status")
            assert status["step"] == status["total"] == STEPS and status["points"] == STEPS
            assert page.evaluate("() => window.trainStats.points") == STEPS
            assert page.evaluate("() => document.getElementById('train-progress').value") == STEPS
            assert f"step {STEPS} / {STEPS}" in page.inner_text("#train-message")
            assert page.locator("#train-loss-plot .main-svg").count() >= 1
            drawn = page.evaluate("() => document.getElementById('train-loss-plot').data[0]")
            assert drawn["x"] == list(range(1, STEPS + 1)) and len(drawn["y"]) == STEPS  # every step's loss on the curve
            assert status["result"] in page.inner_text("#train-result")

            page.click("#train-load")
            checkpoint = Path(status["result"]).name
            page.wait_for_function(f"() => document.querySelector('#model-label').innerText.includes('{checkpoint}')",
                                   timeout=60_000)
            page.wait_for_selector("#status-mode:has-text('PAUSED')", timeout=10_000)  # held for the swap
            page.wait_for_function("() => document.getElementById('train-result').innerText.includes('Loaded')", timeout=10_000)
            page.locator("#train").screenshot(path=str(SCREENSHOT))
