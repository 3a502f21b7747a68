"""What a remote policy costs beside the model: the console's client (robot_io/wire/remote_policy.py)
against model.serve on this machine, one three-camera observation per call.

    python -m bench.bench_remote_policy [--checkpoint DIR] [--calls 30] [--image-size 224] [--threads 1] [--json]

Per inference: the round trip the console measures, the server's model time and the rest (network:
transfer plus msgpack on both ends), p50 / p90. Per tick: the cost of sending the frame history
(`observe` calls, pipelined). Server and client share this machine's cores, so under load these
figures grow; the load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from bench.bench_model import percentiles
from model.serve import PolicyServer, ServeConfig, serve_in_thread
from model.shipped import SHIPPED_CHECKPOINT
from robot_io.wire.remote_policy import RemotePolicy, RemotePolicyConfig
from robot_io.sim.sim_robot import GRIPPER_KEY, JOINT_KEYS

CAMERAS = ["head", "wrist", "side"]
INSTRUCTION = "pick up the red block and put it in the bin"
WARMUP_CALLS = 3
OBSERVES_PER_CALL = 8  # ticks between inferences at the console's default execute horizon


def observation(rng: np.random.Generator, size: int) -> dict:
    keys = [*JOINT_KEYS, GRIPPER_KEY]
    return {**{k: float(v) for k, v in zip(keys, rng.uniform(-0.3, 0.3, len(keys)))},
            **{c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in CAMERAS}}


def print_stages(per_inference_ms: dict[str, dict[str, float]]) -> None:
    for stage, p in per_inference_ms.items():
        print(f"  {stage:<11} p50 {p['p50']:7.1f} ms   p90 {p['p90']:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the server's model")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    load_before = os.getloadavg()[0]
    with serve_in_thread(PolicyServer(ServeConfig(checkpoint=args.checkpoint, port=0, seed=0))) as port:
        policy = RemotePolicy(RemotePolicyConfig(f"ws://127.0.0.1:{port}"), state_keys=[*JOINT_KEYS, GRIPPER_KEY],
                              action_keys=[*JOINT_KEYS, GRIPPER_KEY], camera_keys=CAMERAS)
        calls, observes_ms = [], []
        for i in range(WARMUP_CALLS + args.calls):
            for _ in range(OBSERVES_PER_CALL):
                started = time.perf_counter()
                policy.observe(observation(rng, args.image_size))
                observes_ms.append((time.perf_counter() - started) * 1e3)
            timings = policy.infer(observation(rng, args.image_size), INSTRUCTION).timings_ms
            if i >= WARMUP_CALLS:
                calls.append({stage: timings[stage] for stage in ("round_trip", "model", "queue", "network")})
        policy.close()
    result = {
        "checkpoint": args.checkpoint, "image_size": args.image_size, "cameras": len(CAMERAS), "calls": args.calls,
        "per_inference_ms": percentiles(calls),
        "observe_ms": {"p50": float(np.percentile(observes_ms, 50)), "p90": float(np.percentile(observes_ms, 90))},
        "load_average": [load_before, os.getloadavg()[0]],
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.calls} calls, {len(CAMERAS)} cameras {args.image_size}x{args.image_size}, {args.checkpoint}")
    print_stages(result["per_inference_ms"])
    o = result["observe_ms"]
    print(f"  observe     p50 {o['p50']:7.2f} ms   p90 {o['p90']:7.2f} ms   (per tick, pipelined)")
    print(f"  load average {load_before:.1f} -> {result['load_average'][1]:.1f}")


if __name__ == "__main__":
    main()
