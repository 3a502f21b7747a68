"""Training beside the console (prints figures; not a test): the real app with a browser on the page
and the policy running, first alone, then with a training started from the Train panel's route
(our model's fine-tune, or lerobot-train ACT) on a scripted sim recording, niced and with limited
torch threads as the console starts it.

Reports, per window, the control loop's Hz, period error p50/p99 and missed ticks (the session's
own statistics window: the last 900 ticks, 60 s at 15 Hz, so --seconds 60 keeps the two windows
apart), the policy's inference time (sampled once a second) and, with training, the steps it made.

    .venv/bin/python -m bench.bench_train_beside --seconds 60 [--trainer finetune|lerobot]
        [--policy model|expert] [--train-nice 19] [--train-threads 1] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from bench.bench_console import get_status
from robot_io.sim.collect import main as collect
from runtime.training.jobs import TrainingConfig
from runtime.training.trainers import KINDS
from tests.browser_support import chromium_page, console_process, wait_for_instruction

EPISODES = 2  # of the sim recording trained on
TRAIN_STEPS = 1_000_000  # more than a window lasts: the trainer is stopped at its end


def post(url: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body or {}).encode(), headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=30).read())


def get(url: str) -> dict:
    return json.loads(urllib.request.urlopen(url, timeout=5).read())


def measure(url: str, page, seconds: float) -> dict:
    """The loop's figures at the end of a `seconds` window, and the inference times in it."""
    if get_status(url)["mode"] != "running":
        page.click("#btn-run")  # the policy may have finished its episode: run on
    missed_before = get_status(url)["loop"]["missed_ticks"]
    inference_ms, modes = [], set()
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        time.sleep(1.0)
        status = get_status(url)
        modes.add(status["mode"])
        if status["inference_ms"] is not None:
            inference_ms.append(status["inference_ms"])
    end = get_status(url)
    return {"loop": end["loop"], "missed": end["loop"]["missed_ticks"] - missed_before, "inference_ms": inference_ms, "modes": modes}


def report(title: str, figures: dict) -> None:
    loop, ms = figures["loop"], np.asarray(figures["inference_ms"])
    inference = f"; inference p50 {np.percentile(ms, 50):.0f} ms, p90 {np.percentile(ms, 90):.0f} ms" if ms.size else ""
    print(f"{title}: {loop['achieved_hz']:.2f} Hz; period error p50 {loop['period_error_p50_ms']:.2f} ms, "
          f"p99 {loop['period_error_p99_ms']:.2f} ms; missed ticks {figures['missed']}; tick work p99 "
          f"{loop['work_p99_ms']:.1f} ms{inference} (modes seen: {', '.join(sorted(figures['modes']))})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each window")
    parser.add_argument("--trainer", choices=KINDS, default="finetune")
    parser.add_argument("--policy", choices=["model", "expert"], default="model")
    parser.add_argument("--train-nice", type=int, default=TrainingConfig.niceness)
    parser.add_argument("--train-threads", type=int, default=TrainingConfig.threads)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        datasets, runs = Path(tmp) / "datasets", Path(tmp) / "runs"
        assert collect(["--episodes", str(EPISODES), "--out", str(datasets / "demo")]) == 0
        console_args = ("--policy", args.policy, "--no-record", "--no-rerun", "--replay-root", str(datasets),
                        "--train-out", str(runs), "--train-nice", str(args.train_nice), "--train-threads", str(args.train_threads))
        with console_process(*console_args, log_path=Path(tmp) / "console.log") as (url, _):
            with chromium_page(height=1800) as page:
                page.goto(url)
                wait_for_instruction(page)
                page.click("#btn-run")
                page.wait_for_selector("#status-mode:has-text('RUNNING')", timeout=10_000)
                alone = measure(url, page, args.seconds)

                options = get(f"{url}/api/train/options")
                post(f"{url}/api/train/start", {"kind": args.trainer, "dataset": options["datasets"][0]["path"],
                                                "steps": TRAIN_STEPS, "batch_size": args.batch_size,
                                                "base": options["default_base"], "policy": "act"})
                beside = measure(url, page, args.seconds)
                training = get(f"{url}/api/train/status")
                post(f"{url}/api/train/stop")

    print(f"{args.policy} policy running, browser on the page, {args.seconds:.0f} s windows "
          f"(the loop figures cover the last {min(args.seconds, 60):.0f} s):")
    report("  without training", alone)
    report(f"  with {args.trainer} at nice {args.train_nice}, {args.train_threads} thread(s)", beside)
    rate = f", {training['steps_per_s']:.2f} steps/s once stepping" if training["steps_per_s"] else ""
    print(f"  the trainer ({training['label'].split(',')[0]}, batch {args.batch_size}): {training['phase']}, "
          f"{training['step']} steps in the window{rate}" + (f"; error: {training['error']}" if training["error"] else ""))


if __name__ == "__main__":
    main()
