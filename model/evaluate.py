"""Measure an InternVLA-A1 checkpoint on the conveyor task: closed loop in the sim, open loop on demos.

    python -m model.evaluate [--checkpoint DIR] --episodes N [--json OUT] [--seed S]
        [--demos DIR] [--demo-frames M] [--probe-scenes P] [--execute-horizon H] [--workers W]
        [--noise-scale S] [--denoise-steps K] [--mask-generation] [--blend MODE --blend-steps N --blend-k K] [--latency-ticks L]
        [--cover-start X --cover-length L] [--speed-change-min V0 --speed-change-max V1 ...]

Without --checkpoint it evaluates the shipped model (model/weights/tiny_conveyor).

Closed loop: N seeded sim episodes (seeds S, S+1, ...; the training demonstrations use seeds from
TRAINING_SEED_START up, so the default ones are held out) run as the console runs the policy
(robot_io.sim.rollout: one tick of inference latency, or L ticks as the console meets a
slower inference; new chunks blended into the running one as the console's --blend default
does, or as --blend says): success overall, per belt-speed
band and per target colour, and whether the block that went into the bin was the named one.

Open loop, on a held-out demonstration dataset (--demos, default recordings/conveyor_heldout,
recorded with `python -m robot_io.sim.collect --seed 0`; where the default has not been recorded,
as on a fresh clone, this part is skipped with a note naming the command): for M frames t with a
real frame t+15, the decoded foresight picture against the real frame t+15, per camera, in PSNR
and SSIM, beside the "nothing moves" baseline (frame t copied) and the tokenizer's own ceiling
(frame t+15 encoded and decoded); and the mean squared error of the 50-step action chunk against
the expert's. Pictures are compared at the tokenizer's resolution.

Instruction probe, on P held-out scenes (robot_io/sim/instruction_probe.py): at the first tick,
is the plan for each colour nearest the expert's plan for that colour? It tells a policy that
follows the words from one that has learned to copy the arm's own motion.

--noise-scale and --denoise-steps override how the checkpoint samples its chunks in all three
parts (flow.sample_noise_scale, 0: the flow from the noise's mean, one chunk per observation; 1:
sampled from the learned distribution; flow.denoise_steps: Euler steps of the action expert), and
--mask-generation hides the generation (foresight) tokens from the action expert in all three
(config.action_reads_generation: the ablation that tells whether the actions use the foresight).

The foresight setting's flags (robot_io/sim/foresight_setting.py: a cover over the belt, a belt
speed change) set the closed-loop episodes and the probe's scenes; the open loop reads whatever
--demos holds.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.checkpoint import (
    CheckpointError,
    RobotLayout,
)
from model.image_metrics import ssim
from model.internvla import InternVLA
from model.policy import policy_for_robot, robot_layout
from model.preprocess import resize_square, to_model_images, to_uint8_images
from model.shipped import SHIPPED_CHECKPOINT
from model.train_data import (
    DatasetError,
    TrainingData,
    build_cache,
    check_dataset,
    chunk_indices,
    open_dataset,
    read_dataset,
)
from robot_io.datasets.schema import INFO_PATH
from robot_io.images import psnr
from robot_io.chunks.flags import add_chunk_flags, chunks_from_flags
from robot_io.sim.conveyor_env import ConveyorSimConfig, parse_speed_range, sim_config_or_exit
from robot_io.sim.foresight_setting import add_setting_flags, describe_setting, setting_from_flags
from robot_io.sim.rollout import RolloutResult, run_episode
from robot_io.sim.instruction_probe import format_probe, probe_instructions
from robot_io.sim.rollout_summary import format_summary, summarize
from robot_io.sim.sim_robot import SimRobot

DEFAULT_DEMOS = Path("recordings/conveyor_heldout")
# How DEFAULT_DEMOS is recorded (the model card's collect command): 30 held-out episodes from seed 0.
HELDOUT_COMMAND = f"python -m robot_io.sim.collect --episodes 30 --out {DEFAULT_DEMOS} --seed 0"
TRAINING_SEED_START = 100_000  # README: demonstrations for training are collected from this seed up
DEMO_BATCH = 16  # frames per model call in the open-loop part
NOISE_SEED = 0  # flow-matching noise of the open-loop part: the same figures on every run


# ---- closed loop ------------------------------------------------------------------------------

_worker: dict[str, Any] = {}  # each worker process's own robot and policy


def _start_worker(checkpoint: Path, sim: ConveyorSimConfig, sampling: Sampling, rollout: dict[str, Any]) -> None:
    torch.set_num_threads(1)  # one core per worker: workers run side by side
    robot = SimRobot(sim)
    robot.connect()
    policy = policy_for_robot(checkpoint, robot)
    sampling.apply(policy.model)
    _worker.update(robot=robot, policy=policy, rollout=rollout)


def _run_seed(seed: int) -> RolloutResult:
    robot, policy = _worker["robot"], _worker["policy"]
    robot.reset_scene(seed)
    policy.seed(seed)  # the same episode draws the same noise on every run
    return run_episode(robot, policy, **_worker["rollout"])


def closed_loop(checkpoint: Path, seeds: list[int], workers: int, sim: ConveyorSimConfig | None = None,
                sampling: Sampling | None = None, rollout: dict[str, Any] | None = None) -> list[RolloutResult]:
    """Episodes in seed order, each printed as it finishes. rollout: run_episode's keyword
    arguments (chunks, latency_ticks); its defaults are the console's."""
    results = []
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_start_worker,
                             initargs=(checkpoint, sim or ConveyorSimConfig(), sampling or Sampling(), rollout or {})) as pool:
        for result in pool.map(_run_seed, seeds):
            print(episode_line(result), flush=True)
            results.append(result)
    return results


def episode_line(result: RolloutResult) -> str:
    """One closed-loop episode as printed when it finishes."""
    ep = result.episode
    return (f"seed {ep.seed}: {ep.describe_belt()}, {ep.target_color:<6} "
            f"{'ok  ' if result.success else 'FAIL'} {result.ticks} ticks, in bin: {list(result.in_bin)}")


@dataclasses.dataclass(frozen=True)
class Sampling:
    """Overrides of how the checkpoint infers its chunks; None / False keeps the checkpoint's own."""

    noise_scale: float | None = None  # flow.sample_noise_scale
    denoise_steps: int | None = None  # flow.denoise_steps
    mask_generation: bool = False  # True: action_reads_generation False, the foresight ablation

    def apply(self, model: InternVLA) -> None:
        changes = {name: value for name, value in (("sample_noise_scale", self.noise_scale),
                                                   ("denoise_steps", self.denoise_steps)) if value is not None}
        model.config.flow = dataclasses.replace(model.config.flow, **changes)  # validated again
        if self.mask_generation:
            model.config.action_reads_generation = False


def describe_sampling(model: InternVLA) -> str:
    """How the model infers its chunks (after Sampling.apply): one line for the printout."""
    c = model.config
    reads = "reads the generation tokens" if c.action_reads_generation else "blind to the generation tokens (masked)"
    return (f"flow-matching sampling: noise scale {c.flow.sample_noise_scale:g}, {c.flow.denoise_steps} Euler steps; "
            f"action expert {reads}")


# ---- open loop on demonstrations -------------------------------------------------------------

def open_loop(model: InternVLA, stats: dict, layout: RobotLayout, demos: Path, frames: int, seed: int,
              execute_horizon: int) -> dict[str, Any]:
    """Foresight picture quality per camera and action-chunk error on held-out demonstrations."""
    dataset = open_dataset(demos)
    info = check_dataset(dataset.meta, model.config, layout.cameras, stats)
    if info.robot_type != layout.robot_type or info.state_keys != layout.state_keys or info.action_keys != layout.action_keys:
        raise DatasetError(f"{demos} was recorded on another robot layout: {info.robot_type} {info.state_keys} {info.action_keys}")
    arrays = read_dataset(dataset)
    history = model.config.foresight.history_steps
    has_future = np.flatnonzero(np.arange(len(arrays.state)) + history < arrays.episodes[:, 1])  # real frame t+15
    if len(has_future) == 0:
        raise DatasetError(f"{demos}: no frame has a frame {history} steps later in its episode")
    chosen = np.sort(np.random.default_rng(seed).choice(has_future, min(frames, len(has_future)), replace=False))

    with tempfile.TemporaryDirectory(prefix="evaluate_cache_") as folder:
        cache = build_cache(dataset, info, model, Path(folder))
        data = TrainingData(info, arrays, cache, stats, model.config)
        K = len(layout.cameras)
        pictures = {name: [] for name in ("foresight", "future", "copy", "ceiling")}
        squared_errors, first_errors = [], []
        noise_rng = torch.Generator().manual_seed(NOISE_SEED)
        for start in range(0, len(chosen), DEMO_BATCH):
            batch_frames = chosen[start : start + DEMO_BATCH]
            batch = data.batch(batch_frames)
            c = model.config
            noise = torch.randn(len(batch_frames), c.chunk_size, c.max_action_dim, generator=noise_rng)
            with torch.inference_mode():
                actions, latents = model.sample(batch.inputs, noise)  # (B, chunk, A) normalised, (B, N, C, h, w)
                pictures["foresight"].append(to_uint8_images(model.decode_latents(latents[:, :K])))
                pictures["ceiling"].append(to_uint8_images(model.decode_latents(batch.target_latents[:, :K])))
            pictures["future"].append(_tokenizer_sized(cache.frames[batch_frames + history], model))
            pictures["copy"].append(_tokenizer_sized(cache.frames[batch_frames], model))
            error, first = _action_errors(data, batch_frames, actions[:, :, : len(layout.action_keys)].numpy(), execute_horizon)
            squared_errors.append(error)
            first_errors.append(first)

    stacked = {name: np.concatenate(p) for name, p in pictures.items()}  # (M, K, H, W, 3) uint8
    foresight = {}
    for k, cam in enumerate(layout.cameras):
        future = stacked["future"][:, k]
        foresight[cam] = {
            f"{name}_{metric.__name__}": float(metric(stacked[name][:, k], future).mean())
            for name in ("foresight", "copy", "ceiling") for metric in (psnr, ssim)
        }
    return {
        "demos": str(demos), "frames": len(chosen), "episodes": int(len(np.unique(arrays.episodes[chosen, 0]))),
        "picture_size": int(model.config.foresight.image_size), "foresight": foresight,
        "action_mse": float(np.concatenate(squared_errors).mean()),
        f"action_mse_first_{execute_horizon}": float(np.concatenate(first_errors).mean()),
    }


def _tokenizer_sized(frames: np.ndarray, model: InternVLA) -> np.ndarray:
    """Letterboxed uint8 frames (B, K, S, S, 3) -> the tokenizer's size, resized as encode_frames does."""
    images = to_model_images(np.asarray(frames))  # (B, K, 3, S, S)
    resized = resize_square(images.flatten(0, 1), model.config.foresight.image_size)
    return to_uint8_images(resized.view(*images.shape[:2], *resized.shape[1:]))


def _action_errors(data: TrainingData, frames: np.ndarray, normalised: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Squared errors of the real (not padded) chunk steps, all and the first `horizon`, in action units."""
    state = data.arrays.state[frames]  # (B, S)
    predicted = data.delta.to_absolute(data.action_norm.unnormalize(normalised), state)  # (B, chunk, A)
    index, is_pad = chunk_indices(data.arrays.episodes, frames, len(normalised[0]))
    errors = (predicted - data.arrays.action[index]) ** 2  # (B, chunk, A)
    real = ~is_pad
    return errors[real].ravel(), errors[:, :horizon][real[:, :horizon]].ravel()


# ---- report ----------------------------------------------------------------------------------

def format_open_loop(result: dict[str, Any], horizon: int) -> str:
    lines = [f"open loop on {result['demos']}: {result['frames']} frames from {result['episodes']} episodes, "
             f"pictures at {result['picture_size']}x{result['picture_size']}",
             f"  {'camera':<8} {'foresight PSNR / SSIM':>24} {'copy frame t PSNR / SSIM':>26} {'tokenizer ceiling':>20}"]
    for cam, m in result["foresight"].items():
        lines.append(f"  {cam:<8} {m['foresight_psnr']:>15.2f} dB / {m['foresight_ssim']:.3f} "
                     f"{m['copy_psnr']:>17.2f} dB / {m['copy_ssim']:.3f} {m['ceiling_psnr']:>12.2f} dB / {m['ceiling_ssim']:.3f}")
    lines.append(f"  action MSE against the expert: {result['action_mse']:.5f} (all 50 steps), "
                 f"{result[f'action_mse_first_{horizon}']:.5f} (first {horizon} steps)")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT, help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--episodes", type=int, required=True, help="closed-loop sim episodes (0: skip)")
    parser.add_argument("--json", type=Path, default=None, help="write every figure and episode here")
    parser.add_argument("--seed", type=int, default=0, help="first closed-loop seed; the others follow")
    parser.add_argument("--demos", type=Path, default=None,
                        help=f"held-out demonstrations for the open-loop part (default: {DEFAULT_DEMOS}, "
                             f"skipped with a note when not recorded yet)")
    parser.add_argument("--demo-frames", type=int, default=320, help="frames sampled from --demos (0: skip the open loop)")
    parser.add_argument("--probe-scenes", type=int, default=20, help="scenes of the instruction probe (0: skip)")
    add_chunk_flags(parser)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="closed-loop episodes run side by side")
    parser.add_argument("--belt-speed", type=parse_speed_range, default=ConveyorSimConfig.belt_speed_range,
                        help="LOW,HIGH m/s of the closed-loop episodes (default: the training range)")
    parser.add_argument("--noise-scale", type=float, default=None,
                        help="flow-matching starting noise scale (default: the checkpoint's flow.sample_noise_scale)")
    parser.add_argument("--denoise-steps", type=int, default=None,
                        help="Euler steps per chunk (default: the checkpoint's flow.denoise_steps)")
    parser.add_argument("--mask-generation", action="store_true",
                        help="the action expert does not read the generation (foresight) tokens: the ablation "
                             "(default: as the checkpoint's action_reads_generation, normally read)")
    parser.add_argument("--latency-ticks", type=int, default=1, metavar="L",
                        help="ticks from an observation to its chunk's first command (default 1: an inference "
                             "shorter than a tick; the console's status bar shows its inference time)")
    add_setting_flags(parser)
    args = parser.parse_args(argv)
    args.chunks = chunks_from_flags(parser, args)
    args.sim = sim_config_or_exit(parser, belt_speed_range=args.belt_speed, foresight=setting_from_flags(parser, args))
    for low, names in ((0, ("episodes", "demo_frames", "probe_scenes", "noise_scale")),
                       (1, ("workers", "denoise_steps", "latency_ticks"))):
        for name in names:
            value = getattr(args, name)
            if value is not None and not value >= low:  # None: the checkpoint's own; `not >=` also refuses NaN
                parser.error(f"--{name.replace('_', '-')} must be >= {low}")
    check_held_out(parser, args.seed, max(args.episodes, args.probe_scenes))
    return args


def check_held_out(parser: argparse.ArgumentParser, first_seed: int, count: int) -> None:
    """Stop the command (parser.error) unless seeds first_seed .. first_seed + count - 1 are held
    out: below TRAINING_SEED_START, where the training demonstrations start."""
    if first_seed < 0:
        parser.error(f"--seed must be >= 0, got {first_seed}")
    if first_seed + count > TRAINING_SEED_START:
        parser.error(f"seeds from {TRAINING_SEED_START} up are the training demonstrations'; evaluate below them")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    report: dict[str, Any] = {"checkpoint": str(args.checkpoint.absolute()), "execute_horizon": args.chunks.execute_horizon,
                              "latency_ticks": args.latency_ticks, "blend": dataclasses.asdict(args.chunks.blend),
                              "sim_setting": args.sim.foresight.to_dict()}
    print(describe_setting(args.sim.foresight), flush=True)
    try:
        sim = args.sim
        robot = SimRobot(sim)
        layout = robot_layout(robot)
        policy = policy_for_robot(args.checkpoint, robot)  # refuses another layout before any long work
        sampling = Sampling(args.noise_scale, args.denoise_steps, args.mask_generation)
        sampling.apply(policy.model)
        model_config = policy.model.config
        report |= {"noise_scale": model_config.flow.sample_noise_scale, "denoise_steps": model_config.flow.denoise_steps,
                   "action_reads_generation": model_config.action_reads_generation}
        print(describe_sampling(policy.model), flush=True)
        demos = args.demos or DEFAULT_DEMOS
        if args.demo_frames and args.demos is None and not (demos / INFO_PATH).is_file():  # a fresh clone
            report["open_loop_skipped"] = f"no held-out demonstrations at {demos}; record them with `{HELDOUT_COMMAND}`"
            print(f"open loop skipped: {report['open_loop_skipped']}", flush=True)
        elif args.demo_frames:
            started = time.perf_counter()
            report["open_loop"] = open_loop(policy.model, policy.stats, layout, demos,
                                            args.demo_frames, args.seed, args.chunks.execute_horizon)
            print(format_open_loop(report["open_loop"], args.chunks.execute_horizon), f"\n  ({time.perf_counter() - started:.0f} s)", flush=True)
        if args.probe_scenes:
            robot.connect()
            try:
                report["instruction_probe"] = probe_instructions(robot, policy, list(range(args.seed, args.seed + args.probe_scenes)))
            finally:
                robot.disconnect()
            print(format_probe(report["instruction_probe"]), flush=True)
        if args.episodes:
            started = time.perf_counter()
            seeds = list(range(args.seed, args.seed + args.episodes))
            rollout = {"chunks": args.chunks, "latency_ticks": args.latency_ticks}
            results = closed_loop(args.checkpoint, seeds, args.workers, sim, sampling, rollout)
            report["closed_loop"] = summarize(results, robot.config) | {"seeds": [seeds[0], seeds[-1]]}
            blend = args.chunks.blend
            print(f"closed loop, seeds {seeds[0]}-{seeds[-1]}, {args.chunks.execute_horizon} steps per chunk, "
                  f"{args.latency_ticks} tick{'s' if args.latency_ticks > 1 else ''} of inference latency, "
                  f"chunks blended {blend.mode!r}"
                  f"{f' over {blend.steps} ticks' if blend.mode == 'linear' else ''} ({time.perf_counter() - started:.0f} s):")
            print(format_summary(report["closed_loop"]))
    except (CheckpointError, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_json(args.json, report)
    return 0


def write_json(path: Path | None, report: dict[str, Any]) -> None:
    """The report as JSON at `path` (--json), its folder made; nothing when None."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2))
        print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
