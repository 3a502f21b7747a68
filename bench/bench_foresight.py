"""What foresight costs the console per control tick (prints figures; not a test).

    .venv/bin/python -m bench.bench_foresight [--checkpoint DIR] [--inferences 60] [--threads 1]

With the shipped tiny model and real sim frames (3 cameras, 224x224), on this machine's CPU:
- decode: the tokenizer decoding the three predicted latents into pictures, inside each
  inference on the runner thread (the model call with and without it, so the difference is the
  decode alone);
- reckoning: ForesightReckoner.observe_tick on the control thread, on the tick a prediction is
  due (fit, PSNR against the copy baseline, and the policy's frame encoder for latent L2) and on
  the other ticks (remember the frames);
- JPEG: encoding one new foresight picture and one reckoning picture for the page (once per
  picture, shared by every viewer).
Per-tick figures spread the per-inference work over the session's execute horizon (one inference
every EXECUTE_HORIZON ticks). Rerun logging has its own benchmark: bench/bench_rerun.py.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import torch

from model.policy import policy_for_robot
from model.shipped import SHIPPED_CHECKPOINT
from robot_io.sim.conveyor_env import ConveyorSimConfig
from robot_io.sim.scripted_expert import ScriptedExpert
from robot_io.sim.sim_robot import SimRobot
from runtime.control.foresight_reckoning import ForesightReckoner, foresight_horizon, frame_encoder, reckoning_picture
from runtime.control.policy_runner import InferenceResult
from runtime.control.session import SessionConfig
from runtime.control.snapshot import freeze_frames
from ui.frame_encoder import encode_jpeg

EXECUTE_HORIZON = SessionConfig().chunks.execute_horizon


def ms(samples: list[float]) -> str:
    return f"p50 {np.percentile(samples, 50):6.2f} ms  p90 {np.percentile(samples, 90):6.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    parser.add_argument("--inferences", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the console's runner uses its default)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    robot = SimRobot(ConveyorSimConfig())
    robot.connect()
    robot.reset_scene(3)
    policy = policy_for_robot(args.checkpoint, robot)
    expert = ScriptedExpert()  # moves the arm so frames change as in a real episode
    horizon = foresight_horizon(policy)
    reckoner = ForesightReckoner(policy.camera_keys, horizon, frame_encoder(policy))
    instruction = robot.episode.instruction

    decode, plain_ticks, due_ticks, jpeg = [], [], [], []
    chunk, tick = None, 0
    load_before = os.getloadavg()[0]
    for tick in range(args.inferences * EXECUTE_HORIZON + horizon):
        observation = robot.get_observation()
        policy.observe(observation)
        if tick % EXECUTE_HORIZON == 0 and tick // EXECUTE_HORIZON < args.inferences:
            output = policy.infer(observation, instruction)
            decode.append(output.timings_ms["generation_decode"])
            reckoner.add_inference(InferenceResult(output, tick, output.timings_ms["total"]))
            started = time.perf_counter()
            encode_jpeg(output.foresight[policy.camera_keys[0]])
            jpeg.append((time.perf_counter() - started) * 1e3)
        if chunk is None or tick % 10 == 0:
            chunk = expert.infer(observation, instruction).actions
        frames = freeze_frames(observation, policy.camera_keys)
        started = time.perf_counter()
        judged = reckoner.observe_tick(tick, frames)
        (due_ticks if judged else plain_ticks).append((time.perf_counter() - started) * 1e3)
        if judged:
            found = reckoner.reckoning_picture(policy.camera_keys[0])
            started = time.perf_counter()
            encode_jpeg(reckoning_picture(found[0].prediction, found[0].actual))
            jpeg.append((time.perf_counter() - started) * 1e3)
        robot.send_action(dict(zip(robot.action_features, map(float, chunk[tick % 10]))))

    # The decode alone, on latents of the model's shape: its share of "generation_decode".
    model, c = policy.model, policy.config
    latents = torch.zeros(1, len(policy.camera_keys), c.foresight.latent_channels, c.foresight.latent_size, c.foresight.latent_size)
    decode_only = []
    for _ in range(args.inferences):
        started = time.perf_counter()
        with torch.inference_mode():
            model.decode_latents(latents)
        decode_only.append((time.perf_counter() - started) * 1e3)

    per_inference = np.median(decode_only) + np.median(due_ticks) + np.median(jpeg)
    print(f"foresight costs, tiny model, {len(policy.camera_keys)} cameras at 224x224, torch threads {args.threads}, "
          f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}")
    print(f"  generation pass + decode (runner thread, per inference): {ms(decode)}")
    print(f"  decode alone, 3 pictures (runner thread, per inference):  {ms(decode_only)}")
    print(f"  reckoning, tick a prediction is due (control thread):    {ms(due_ticks)}  (n={len(due_ticks)})")
    print(f"  reckoning, other ticks (control thread):                 {ms(plain_ticks)}")
    print(f"  JPEG of a foresight or reckoning picture (on request):   {ms(jpeg)}")
    print(f"  per tick at one inference every {EXECUTE_HORIZON} ticks: control thread "
          f"{(np.median(due_ticks) + (EXECUTE_HORIZON - 1) * np.median(plain_ticks)) / EXECUTE_HORIZON:.2f} ms, "
          f"all foresight work {per_inference / EXECUTE_HORIZON:.2f} ms of CPU")


if __name__ == "__main__":
    main()
