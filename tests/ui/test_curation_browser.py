"""The dataset curation panel in headless Chromium, on the real console: open the panel, the
recorded dataset's episodes are listed with thumbnails, outcome and operator share; play one (its
frames appear in the player); delete one through the page (LeRobot's delete_episodes, the old
version kept as a backup); the list follows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.curation import safe_edit
from tests.browser_support import chromium_page, console_process
from tests.replay_support import record_dataset

pytestmark = pytest.mark.browser
SCREENSHOT = Path(os.environ.get("CURATION_SCREENSHOT", "/tmp/curation_panel.png"))
FRAMES = 8


def test_curation_panel_lists_plays_and_deletes_an_episode(tmp_path):
    roots = tmp_path / "recordings"
    demo = record_dataset(roots / "demo", episodes=3, frames=FRAMES, cameras=("head", "wrist"), shape=(48, 64, 3),
                          outcomes=("success", "failure", "success"), operator_frames=2,
                          tasks=("pick the red block", "pick the blue block", "pick the green block"))
    args = ("--policy", "expert", "--record-to", str(roots / "live"), "--replay-root", str(roots), "--no-rerun")
    with console_process(*args, log_path=tmp_path / "console.log") as (url, _):
        with chromium_page(height=1600) as page:
            page.goto(url)
            page.wait_for_selector("#status-mode", timeout=30_000)
            page.click("text=Datasets: curate episodes")
            page.wait_for_function("() => document.querySelectorAll('#curation-dataset option').length === 2", timeout=30_000)
            options = page.locator("#curation-dataset option").all_inner_texts()
            assert options[0].startswith("● recordings/live") and "no episodes recorded yet" in options[0]
            page.select_option("#curation-dataset", str(demo.resolve()))
            page.wait_for_function("() => document.querySelectorAll('#curation-table tr').length === 4", timeout=30_000)
            summary = page.inner_text("#curation-summary")
            assert "3 episodes · 24 frames · 2 success, 1 failure, 0 unknown · 25% operator frames" in summary
            assert page.inner_text("#curation-episode-1").split("\t")[2:6] == ["1", "pick the blue block", str(FRAMES), "failure"]
            page.locator("#curation-table").scroll_into_view_if_needed()  # thumbnails load lazily, when seen
            page.wait_for_function(  # every thumbnail decoded by the server and shown
                "() => [...document.querySelectorAll('#curation-table img')].every((i) => i.complete && i.naturalWidth === 96)",
                timeout=30_000)

            page.click("#curation-episode-1 .curation-play-episode")
            # every frame is shown, in order: playback waits for a slow decode instead of skipping frames
            page.wait_for_function(f"() => window.curationStats.frames === {FRAMES}", timeout=60_000)
            assert page.inner_text("#curation-position") == f"{FRAMES}/{FRAMES}"
            assert page.inner_text("#curation-player-title") == "Episode 1: pick the blue block (failure)"
            assert page.evaluate("document.getElementById('curation-frame').naturalWidth") == 64
            page.screenshot(path=str(SCREENSHOT), full_page=True)

            page.click("#curation-episode-0 .curation-delete")
            page.wait_for_function("() => window.curationStats.lastStatus.startsWith('Deleted episode 0: 2 left')", timeout=120_000)
            page.wait_for_function("() => document.querySelectorAll('#curation-table tr').length === 3", timeout=30_000)
            assert page.inner_text("#curation-episode-0").split("\t")[3] == "pick the blue block"
            assert len(safe_edit.backups(demo.resolve())) == 1
