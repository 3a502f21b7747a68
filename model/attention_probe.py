"""Where the experts look: attention mass per block of tokens, measured in closed-loop sim episodes.

    python -m model.attention_probe [--checkpoint DIR] [--episodes N] [--seed S] [--mask-generation]
        [--cover-start X --cover-length L] [--speed-change-min V0 --speed-change-max V1 ...] [--json OUT]

Without --checkpoint it probes the shipped model (model/weights/tiny_conveyor).

The policy drives N held-out sim scenes (seeds S, S+1, ...) as `model.evaluate`'s closed loop does
(robot_io.sim.rollout, the console's chunk defaults, one tick of inference latency). At every
inference, for each layer, it records the softmax attention weights of

    the action expert's queries (state + action tokens), in every denoising step, and
    the generation expert's queries (the foresight tokens),

summed over each block of keys (per camera: its image tokens with their vision marks, then the
instruction text, per camera its generation tokens, the state, the actions) and averaged over
heads and queries (and, for the action expert, over the denoising steps). It prints, per layer,
each block's mass as the mean ± std over inferences, beside the mass the block would get if
attention were uniform over the keys a query may read: a block of many tokens gets much mass by
its size alone, so a mass above its uniform share is a preference, below it an avoidance. The
row "all gen" sums the generation blocks of every camera.
--json also keeps the action expert's mass per denoising step.

--mask-generation hides the generation tokens from the action expert (model.evaluate's flag):
their mass is then 0. The weights are computed explicitly only here (MixtureOfTransformers'
attention_observer); the policy's normal path is unchanged.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from model.checkpoint import CheckpointError
from model.config import ModelConfig
from model.evaluate import Sampling, check_held_out, describe_sampling, episode_line, write_json
from model.internvla import InternVLA
from model.policy import policy_for_robot
from model.shipped import SHIPPED_CHECKPOINT
from robot_io.sim.conveyor_env import sim_config_or_exit
from robot_io.sim.foresight_setting import add_setting_flags, describe_setting, setting_from_flags
from robot_io.sim.rollout import run_episode
from robot_io.sim.sim_robot import SimRobot

ACTION, GENERATION = "action", "generation"  # whose queries
QUERY_TOKENS = {ACTION: "state + action tokens", GENERATION: "generation tokens"}


@dataclass(frozen=True)
class Block:
    name: str
    keys: slice  # positions in the whole sequence


def sequence_blocks(config: ModelConfig, cameras: Sequence[str]) -> list[Block]:
    """The blocks of keys in sequence order; camera slots past `cameras` are named slot<i>."""
    names = [cameras[i] if i < len(cameras) else f"slot{i}" for i in range(config.num_cameras)]
    per_image, per_gen = config.prefix_tokens_per_camera, config.generation_tokens_per_camera
    images_end, prefix_end = config.num_cameras * per_image, config.prefix_tokens
    gen_end = prefix_end + config.generation_tokens
    return [
        *(Block(f"image {name}", slice(i * per_image, (i + 1) * per_image)) for i, name in enumerate(names)),
        Block("text", slice(images_end, prefix_end)),
        *(Block(f"gen {name}", slice(prefix_end + i * per_gen, prefix_end + (i + 1) * per_gen)) for i, name in enumerate(names)),
        Block("state", slice(gen_end, gen_end + 1)),
        Block("actions", slice(gen_end + 1, gen_end + 1 + config.chunk_size)),
    ]


class AttentionMass:
    """Per model call ("inference"), the attention mass of the action and generation experts'
    queries on each block of keys, per layer and per pass (denoising step) of the model.

    Attach it to a model (`attached`), run inferences, and call `end_inference` after each.
    """

    def __init__(self, config: ModelConfig, cameras: Sequence[str]) -> None:
        self.blocks = sequence_blocks(config, cameras)
        self.num_layers = config.num_layers
        gen_start, suffix_start = config.prefix_tokens, config.prefix_tokens + config.generation_tokens
        self.queries = {ACTION: slice(suffix_start, suffix_start + 1 + config.chunk_size),
                        GENERATION: slice(gen_start, suffix_start)}
        self.read = {group: [b for b in self.blocks if b.keys.stop <= span.stop] for group, span in self.queries.items()}
        self.inferences: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {group: [] for group in self.queries}
        self._passes: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {group: [] for group in self.queries}

    @contextmanager
    def attached(self, model: InternVLA) -> Iterator[AttentionMass]:
        mot = model.qwen3_vl_with_expert
        mot.attention_observer = self.observe
        try:
            yield self
        finally:
            mot.attention_observer = None

    def observe(self, layer: int, weights: Tensor, bias: Tensor) -> None:
        """One layer of one pass: weights (B, heads, L, L_keys), the L queries being the last L keys."""
        queries, keys = weights.shape[-2:]
        first = keys - queries  # sequence position of the first query
        allowed = (bias > float("-inf")).float()  # (B, 1, L, L_keys)
        uniform = allowed / allowed.sum(dim=-1, keepdim=True)
        for group, span in self.queries.items():
            rows = slice(max(span.start, first) - first, min(span.stop, keys) - first)
            if rows.start >= rows.stop:
                continue
            if layer == 0:
                blocks = len(self.read[group])
                self._passes[group].append((np.zeros((self.num_layers, blocks)), np.zeros((self.num_layers, blocks))))
            mass, share = self._passes[group][-1]
            per_key = weights[:, :, rows].mean(dim=(0, 1, 2)).double()  # (L_keys,): over batch, heads, queries
            per_key_uniform = uniform[:, :, rows].mean(dim=(0, 1, 2)).double()
            for b, block in enumerate(self.read[group]):
                mass[layer, b] = float(per_key[block.keys].sum())
                share[layer, b] = float(per_key_uniform[block.keys].sum())

    def end_inference(self) -> None:
        """Close the passes seen since the last call as one inference."""
        for group, passes in self._passes.items():
            if passes:
                self.inferences[group].append((np.stack([m for m, _ in passes]), np.stack([u for _, u in passes])))
        self._passes = {group: [] for group in self.queries}

    def summary(self) -> dict[str, Any]:
        """JSON-ready, per query group: per layer and block the mass (mean, std over inferences, each
        inference the mean over its passes) and the uniform share; the mean mass per pass."""
        result = {}
        for group, records in self.inferences.items():
            if not records:
                continue
            names = [b.name for b in self.read[group]]
            mass = np.stack([m.mean(axis=0) for m, _ in records])  # (inferences, layers, blocks)
            uniform = np.stack([u.mean(axis=0) for _, u in records]).mean(axis=0)  # (layers, blocks)
            by_pass = np.stack([m for m, _ in records]).mean(axis=0)  # (passes, layers, blocks)
            generation = [b for b, block in enumerate(self.read[group]) if _inside(block.keys, self.queries[GENERATION])]
            result[group] = {
                "queries": QUERY_TOKENS[group], "inferences": len(records), "passes_per_inference": len(by_pass),
                "blocks": names,
                "layers": [{"blocks": {name: _figures(mass[:, layer, b], uniform[layer, b]) for b, name in enumerate(names)},
                            "generation_total": _figures(mass[:, layer, generation].sum(axis=1), uniform[layer, generation].sum())}
                           for layer in range(self.num_layers)],
                "mass_by_pass": [[dict(zip(names, map(float, row))) for row in step] for step in by_pass],
            }
        return result


def _inside(keys: slice, span: slice) -> bool:
    return span.start <= keys.start and keys.stop <= span.stop


def _figures(mass: np.ndarray, uniform: float) -> dict[str, float]:
    """mass: one per inference."""
    return {"mass": float(mass.mean()), "std": float(mass.std()), "uniform": float(uniform)}


def format_summary(summary: dict[str, Any]) -> str:
    lines = []
    for group, s in summary.items():
        over = "its denoising steps, " if s["passes_per_inference"] > 1 else ""
        lines.append(f"{group} expert's queries ({s['queries']}): attention mass per block of keys, the mean over "
                     f"{over}heads and queries of each of {s['inferences']} inferences (mean ± std over inferences)")
        for layer, figures in enumerate(s["layers"]):
            lines.append(f"  layer {layer:<8} {'mass':>13} {'uniform':>9} {'mass/uniform':>13}")
            rows = [*figures["blocks"].items(), ("all gen", figures["generation_total"])]
            lines += [f"    {name:<12} {m['mass']:.3f} ± {m['std']:.3f} {m['uniform']:9.3f} {_ratio(m):>13}" for name, m in rows]
    return "\n".join(lines)


def _ratio(figures: dict[str, float]) -> str:
    return f"{figures['mass'] / figures['uniform']:.2f}" if figures["uniform"] > 0 else "-"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT, help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--episodes", type=int, default=10, help="closed-loop sim episodes (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="first seed; the others follow")
    parser.add_argument("--mask-generation", action="store_true",
                        help="the action expert does not read the generation tokens (model.evaluate's ablation)")
    parser.add_argument("--json", type=Path, default=None, help="write the masses here")
    add_setting_flags(parser)
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    check_held_out(parser, args.seed, args.episodes)
    args.sim = sim_config_or_exit(parser, foresight=setting_from_flags(parser, args))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(describe_setting(args.sim.foresight), flush=True)
    robot = SimRobot(args.sim)
    try:
        policy = policy_for_robot(args.checkpoint, robot)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    Sampling(mask_generation=args.mask_generation).apply(policy.model)
    print(describe_sampling(policy.model), flush=True)
    recorder = AttentionMass(policy.model.config, policy.camera_keys)
    seeds = list(range(args.seed, args.seed + args.episodes))
    successes = 0
    started = time.perf_counter()
    robot.connect()
    try:
        with recorder.attached(policy.model):
            for seed in seeds:
                robot.reset_scene(seed)
                policy.seed(seed)  # as model.evaluate's episodes: the same noise on every run
                result = run_episode(robot, policy, on_inference=lambda tick, output: recorder.end_inference())
                successes += result.success
                print(episode_line(result), flush=True)
    finally:
        robot.disconnect()
    summary = recorder.summary()
    print(f"{successes}/{len(seeds)} episodes succeeded ({time.perf_counter() - started:.0f} s)")
    print(format_summary(summary))
    c = policy.model.config
    write_json(args.json, {
        "checkpoint": str(args.checkpoint.absolute()), "seeds": [seeds[0], seeds[-1]], "successes": successes,
        "sim_setting": args.sim.foresight.to_dict(), "action_reads_generation": c.action_reads_generation,
        "noise_scale": c.flow.sample_noise_scale, "denoise_steps": c.flow.denoise_steps, "queries": summary,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
