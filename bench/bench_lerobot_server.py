"""What LeRobot's async-inference protocol costs beside the model: the console's gRPC client
(robot_io/wire/lerobot_grpc_policy.py) against LeRobot's own policy_server in a child process on this
machine, serving a tiny random ACT for the sim's three cameras, one observation per call.

    python -m bench.bench_lerobot_server [--calls 30] [--image-size 224] [--json]

Per inference, p50 / p90: the round trip the console measures; "network", streaming the pickled
observation (SendObservations); "model", the GetActions call (the server's queue, preprocessing,
ACT, postprocessing per step, pickling the chunk and the reply). The server runs with
inference_latency 0 (LeRobot's default pads each GetActions to 1/fps). Server and client share this
machine's cores; the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from bench.bench_model import percentiles
from bench.bench_remote_policy import CAMERAS, INSTRUCTION, observation, print_stages
from robot_io.sim.sim_robot import GRIPPER_KEY, JOINT_KEYS
from robot_io.wire.lerobot_grpc_policy import LeRobotGrpcPolicy, LeRobotServerConfig
from tests.robot_io.wire.lerobot_server_support import lerobot_policy_server, write_tiny_act

WARMUP_CALLS = 3
ACTION_RANGE = (-1.0, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    keys = [*JOINT_KEYS, GRIPPER_KEY]
    cameras = {camera: (args.image_size, args.image_size, 3) for camera in CAMERAS}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = write_tiny_act(Path(folder) / "act", keys, cameras, [ACTION_RANGE[0]] * len(keys),
                                    [ACTION_RANGE[1]] * len(keys))
        load_before = os.getloadavg()[0]
        with lerobot_policy_server(Path(folder) / "server.log") as port:
            policy = LeRobotGrpcPolicy(LeRobotServerConfig(f"grpc://127.0.0.1:{port}", policy_path=str(checkpoint)),
                                       state_keys=keys, action_keys=keys, cameras=cameras)
            calls = []
            for i in range(WARMUP_CALLS + args.calls):
                timings = policy.infer(observation(rng, args.image_size), INSTRUCTION).timings_ms
                if i >= WARMUP_CALLS:
                    calls.append({stage: timings[stage] for stage in ("round_trip", "model", "network")})
            policy.close()
    result = {"image_size": args.image_size, "cameras": len(CAMERAS), "calls": args.calls,
              "per_inference_ms": percentiles(calls), "load_average": [load_before, os.getloadavg()[0]]}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.calls} calls, {len(CAMERAS)} cameras {args.image_size}x{args.image_size}, tiny ACT on LeRobot's policy_server")
    print_stages(result["per_inference_ms"])
    print(f"  load average {load_before:.1f} -> {result['load_average'][1]:.1f}")


if __name__ == "__main__":
    main()
