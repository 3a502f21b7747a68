"""LeRobot policy benchmark (prints figures; not a test): a lerobot-train checkpoint drives the sim
through the console's session as app.py --lerobot-policy runs it (its own process unless
--no-policy-process, recording on, no browser, no Rerun), then the same checkpoint is timed on its
own in this process.

Reports control-loop Hz, period error p99, tick work p99 and missed ticks while the policy drives,
chunks scheduled, inference ms p50/p99 as the session saw them, and the bare `infer` ms p50/p99.

    .venv/bin/python -m bench.bench_lerobot_policy --checkpoint outputs/train/NAME/checkpoints/last/pretrained_model \\
        --seconds 30 [--image-size 64] [--no-policy-process]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from app import open_console, parse_args
from robot_io.devices.robot import camera_keys, state_keys
from robot_io.lerobot_policy import LeRobotPolicy
from runtime.control.commands import RunPolicy
from runtime.control.session_flags import add_process_flags, process_argv, process_from_flags

INSTRUCTION = "pick up the red block and put it in the bin"
BARE_CALLS = 30
START_TIMEOUT_S = 300.0


def percentiles(values: list[float]) -> str:
    return f"p50 {np.percentile(values, 50):.1f} / p99 {np.percentile(values, 99):.1f}" if values else "none"


def drive(checkpoint: Path, seconds: float, image_size: int, process_args: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        args = parse_args(["--lerobot-policy", str(checkpoint), "--image-size", str(image_size), "--no-rerun",
                           "--record-to", f"{tmp}/recorded", "--audit-log", f"{tmp}/audit.jsonl", *process_args])
        console = open_console(args)
        session = console.session
        console.start()
        try:
            session.submit(RunPolicy(INSTRUCTION))
            deadline = time.monotonic() + START_TIMEOUT_S
            while (first := session.snapshot()) is None or first.action_source != "policy":
                if time.monotonic() > deadline or (first is not None and first.last_error):
                    raise RuntimeError(f"the policy did not start driving: {first and first.last_error}")
                time.sleep(0.01)
            inference_ms, seen_chunks = [], set()
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                snap = session.snapshot()
                if snap.chunk_id is not None and snap.chunk_id not in seen_chunks:
                    seen_chunks.add(snap.chunk_id)
                    inference_ms.append(snap.inference_ms)
                time.sleep(0.01)
            last = session.snapshot()
        finally:
            console.close()
    loop = last.loop
    print(f"session ({'own process' if args.process else 'console process'}, {image_size} px, {seconds:.0f} s): "
          f"{loop.achieved_hz:.2f} Hz, period error p99 {loop.period_error_p99_ms:.1f} ms, tick work p99 "
          f"{loop.work_p99_ms:.1f} ms, {loop.missed_ticks - first.loop.missed_ticks} missed ticks over "
          f"{last.tick - first.tick} ticks, {len(seen_chunks)} chunks, inference ms {percentiles(inference_ms)}, "
          f"error: {last.last_error or 'none'}", flush=True)


def bare(checkpoint: Path, image_size: int) -> None:
    import torch

    from robot_io.sim.conveyor_env import ConveyorSimConfig
    from robot_io.sim.sim_robot import SimRobot

    torch.set_num_threads(1)
    robot = SimRobot(ConveyorSimConfig(image_height=image_size, image_width=image_size))
    robot.connect()
    policy = LeRobotPolicy(checkpoint, state_keys=state_keys(robot), action_keys=list(robot.action_features),
                           camera_keys=camera_keys(robot))
    observation = robot.get_observation()
    times = [policy.infer(observation, INSTRUCTION).timings_ms["total"] for _ in range(BARE_CALLS)]
    print(f"bare infer ({policy.name}, 1 torch thread, {image_size} px): ms {percentiles(times)} over {BARE_CALLS} calls")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="lerobot-train's pretrained_model folder")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--image-size", type=int, default=64, help="camera side: the size the checkpoint learned")
    add_process_flags(parser)
    args = parser.parse_args()
    drive(args.checkpoint, args.seconds, args.image_size, process_argv(process_from_flags(parser, args)))
    bare(args.checkpoint, args.image_size)


if __name__ == "__main__":
    main()
