"""Closed-loop results in numbers: success overall, per belt-speed band and per target colour,
and whether the block that went into the bin was the named one."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from typing import Any

import numpy as np

from robot_io.sim.conveyor_env import ConveyorSimConfig
from robot_io.sim.rollout import RolloutResult

SPEED_BANDS = 3  # equal-width bands over the belt speed range


def summarize(results: list[RolloutResult], config: ConveyorSimConfig) -> dict[str, Any]:
    """JSON-ready: counts and rates overall, by speed band and by colour, plus every episode."""
    if not results:
        raise ValueError("no episodes to summarise")
    low, high = config.belt_speed_range
    edges = np.linspace(low, high, SPEED_BANDS + 1)
    by_band: dict[str, list[RolloutResult]] = defaultdict(list)
    by_color: dict[str, list[RolloutResult]] = defaultdict(list)
    for r in results:
        band = min(int(np.searchsorted(edges, r.episode.belt_speed, side="right")) - 1, SPEED_BANDS - 1)
        by_band[f"{edges[band]:.3f}-{edges[band + 1]:.3f} m/s"].append(r)
        by_color[r.episode.target_color].append(r)
    placed = [r for r in results if r.in_bin]  # some block ended in the bin
    seconds = [r.seconds for r in results if r.success]
    return {
        **_rate(results),
        "any_block_in_bin": len(placed),
        "wrong_block_in_bin": sum(1 for r in placed if not r.success),
        "named_block_share": sum(r.success for r in placed) / len(placed) if placed else None,
        "mean_success_seconds": float(np.mean(seconds)) if seconds else None,
        "by_speed": {name: _rate(rs) for name, rs in sorted(by_band.items())},
        "by_color": {name: _rate(rs) for name, rs in sorted(by_color.items())},
        "per_episode": [
            {**asdict(r.episode), "success": r.success, "ticks": r.ticks, "in_bin": list(r.in_bin), "seconds": r.seconds}
            for r in results
        ],
    }


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"success: {_fraction(summary)}   (wrong block in the bin: {summary['wrong_block_in_bin']}"
             + (f", named block in {100 * summary['named_block_share']:.0f}% of bins)" if summary["named_block_share"] is not None else ")")]
    lines += [f"  belt {name}: {_fraction(r)}" for name, r in summary["by_speed"].items()]
    lines += [f"  target {name}: {_fraction(r)}" for name, r in summary["by_color"].items()]
    if summary["mean_success_seconds"] is not None:
        lines.append(f"successful episode length: mean {summary['mean_success_seconds']:.1f} s")
    return "\n".join(lines)


def _rate(results: list[RolloutResult]) -> dict[str, Any]:
    wins = sum(r.success for r in results)
    return {"episodes": len(results), "successes": wins, "success_rate": wins / len(results)}


def _fraction(rate: dict[str, Any]) -> str:
    return f"{rate['successes']}/{rate['episodes']} ({100 * rate['success_rate']:.0f}%)"
