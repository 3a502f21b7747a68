"""Console benchmark (prints figures; not a test): the real app with 3 cameras, a browser
connected to the whole page (feeds, foresight, plan; the Rerun logger on) and an episode
recording while the policy runs (default: the shipped tiny model, its inference beside the loop;
--policy expert: the scripted expert); --rerun-page also keeps the Rerun viewer open in a tab.

Reports control-loop Hz and period error p50/p99 and missed ticks over the run (the session's
own window: the last 900 ticks), the model's inference time in ms and control ticks, frames/s and
frame age each feed delivers in the browser, and recording backlog and dropped frames.

    .venv/bin/python -m bench.bench_console --seconds 60 [--policy model|expert] [--rerun-page] [--execute-horizon N]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from robot_io.chunks.flags import CHUNK_FLAGS
from runtime.control.session_flags import add_process_flags, process_argv, process_from_flags
from robot_io.config_flags import add_config_flags
from runtime.control.session import SessionConfig
from tests.browser_support import SOFTWARE_GL_ARGS, chromium_page, console_process

CAMERAS = ["head", "wrist", "side"]
INSTRUCTION = "pick up the red block and put it in the bin"
FPS = SessionConfig().fps  # the console's default control rate


def get_status(url: str) -> dict:
    return json.loads(urllib.request.urlopen(f"{url}/api/status", timeout=5).read())


def wait_for_save(url: str, timeout_s: float = 300.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        recording = get_status(url)["recording"]
        if recording["saved_episodes"] >= 1 or recording["error"]:
            return recording
        time.sleep(1.0)
    raise TimeoutError(f"the episode was not saved within {timeout_s:.0f} s: {recording}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--policy", choices=["model", "expert"], default="model")
    parser.add_argument("--rerun-page", action="store_true",
                        help="also keep the /rerun viewer open in a second tab (software GL: it costs 1-1.5 cores)")
    add_config_flags(parser, CHUNK_FLAGS)  # --execute-horizon: inferences per second the cores carry beside the loop
    add_process_flags(parser)  # the console's own: the model in its own process or not
    args = parser.parse_args()
    process = process_from_flags(parser, args)

    with tempfile.TemporaryDirectory() as tmp:
        dataset = Path(tmp) / "bench_episodes"
        with console_process("--record-to", str(dataset), "--seed", "11", "--policy", args.policy,
                             "--execute-horizon", str(args.execute_horizon), "--fps", str(FPS),
                             "--start-early" if args.start_early else "--no-start-early",
                             "--guided" if args.guided else "--no-guided",
                             *process_argv(process), log_path=Path(tmp) / "console.log") as (url, _proc):
            with chromium_page(height=2400, extra_args=tuple(SOFTWARE_GL_ARGS) if args.rerun_page else ()) as page:
                if args.rerun_page:
                    viewer = page.context.new_page()
                    viewer.goto(f"{url}/rerun/")
                page.goto(url)
                page.wait_for_function("cams => window.feedStats && cams.every(c => window.feedStats[c] && window.feedStats[c].frames > 5)",
                                       arg=CAMERAS, timeout=60_000)
                page.click("#btn-rec-start")
                page.locator("#instruction textarea").fill(INSTRUCTION)
                page.click("#btn-run")
                page.wait_for_selector("#status-mode:has-text('RUNNING')", timeout=10_000)
                page.evaluate("cams => cams.forEach(c => { window.feedStats[c].ages = []; window.feedStats[c].frames0 = window.feedStats[c].frames; })", CAMERAS)
                page.evaluate("() => { window.foresightStats.latenciesMs = []; window.planStats.plots0 = window.planStats.plots; }")
                started = time.monotonic()
                missed_before = get_status(url)["loop"]["missed_ticks"]
                backlog_max, inference_ms = 0, []
                while time.monotonic() - started < args.seconds:
                    time.sleep(1.0)
                    status = get_status(url)
                    backlog_max = max(backlog_max, status["recording"]["backlog"])
                    inference_ms.append(status["inference_ms"])  # the latest inference's, once a second
                elapsed = time.monotonic() - started
                feeds = page.evaluate("cams => cams.map(c => ({frames: window.feedStats[c].frames - window.feedStats[c].frames0, ages: window.feedStats[c].ages}))", CAMERAS)
                foresight_ms = page.evaluate("() => window.foresightStats.latenciesMs")
                plan_redraws = page.evaluate("() => window.planStats.plots - window.planStats.plots0")
                end = get_status(url)
                page.click("#btn-rec-stop")
                recorded = wait_for_save(url)
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        try:
            saved_frames = LeRobotDataset("local/bench_episodes", root=dataset).num_frames
        except Exception:
            print((Path(tmp) / "console.log").read_text()[-3000:])
            print(sorted(str(p.relative_to(dataset)) for p in dataset.rglob("*")))
            raise

    loop = end["loop"]
    print(f"control loop over the last {min(args.seconds, 60):.0f} s (browser connected, recording, {args.policy} running):")
    print(f"  achieved {loop['achieved_hz']:.2f} Hz; period error p50 {loop['period_error_p50_ms']:.2f} ms, "
          f"p99 {loop['period_error_p99_ms']:.2f} ms; missed ticks {loop['missed_ticks'] - missed_before} "
          f"({loop['missed_ticks']} since start-up); "
          f"tick work p50 {loop['work_p50_ms']:.1f} ms, p99 {loop['work_p99_ms']:.1f} ms")
    if args.policy == "model":  # the expert's plans take no time worth showing
        period_ms = 1e3 / FPS
        ms = np.asarray([m for m in inference_ms if m is not None])
        print(f"inference (sampled once a second): p50 {np.percentile(ms, 50):.0f} ms, p90 {np.percentile(ms, 90):.0f} ms: "
              f"{np.percentile(ms, 50) / period_ms:.1f} / {np.percentile(ms, 90) / period_ms:.1f} ticks "
              f"(`model.evaluate --latency-ticks` plays this)")
    print("camera feeds in the browser:")
    for camera, feed in zip(CAMERAS, feeds):
        ages = np.asarray(feed["ages"])
        print(f"  {camera:>5}: {feed['frames'] / elapsed:.1f} frames/s; frame age at arrival p50 "
              f"{np.percentile(ages, 50):.0f} ms, p95 {np.percentile(ages, 95):.0f} ms, max {ages.max():.0f} ms")
    if foresight_ms:
        shown = np.asarray(foresight_ms)
        print(f"foresight pictures: {len(shown)} shown; inference done -> pictures on the page p50 "
              f"{np.percentile(shown, 50):.0f} ms, p90 {np.percentile(shown, 90):.0f} ms, max {shown.max():.0f} ms")
    else:
        print("foresight pictures: none (the policy has no foresight head)")
    print(f"plan chart: {plan_redraws / elapsed:.1f} redraws/s" + ("; Rerun viewer open in a second tab" if args.rerun_page else ""))
    queued = recorded["episode_frames"]
    print(f"recording: {queued} frames sent by the loop, {saved_frames} in the saved dataset, "
          f"dropped {queued - saved_frames}; writer backlog max {backlog_max} frames")


if __name__ == "__main__":
    main()
