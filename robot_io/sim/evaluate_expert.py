"""Measure the scripted expert on seeded episodes through `SimRobot`, as the console runs it.

    python -m robot_io.sim.evaluate_expert --episodes 50 [--seed 0] [--no-cameras]
        [--cover-start X --cover-length L] [--speed-change-min V0 --speed-change-max V1 ...]

Prints the success rate overall, per belt-speed band and per target colour, the episode length,
and the cost of a control tick.
"""

from __future__ import annotations

import argparse
import sys
import time

from robot_io.sim.conveyor_env import sim_config_or_exit
from robot_io.sim.foresight_setting import add_setting_flags, describe_setting, setting_from_flags
from robot_io.chunks.flags import add_chunk_flags, chunks_from_flags
from robot_io.sim.rollout import RolloutResult, run_episode
from robot_io.sim.rollout_summary import format_summary, summarize
from robot_io.sim.scripted_expert import ScriptedExpert
from robot_io.sim.sim_robot import SimRobot


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="first episode's seed; the others follow")
    add_chunk_flags(parser)
    parser.add_argument("--no-cameras", action="store_true", help="render nothing (faster; same physics)")
    add_setting_flags(parser)
    args = parser.parse_args(argv)
    args.chunks = chunks_from_flags(parser, args)
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    setting = setting_from_flags(parser, args)
    args.sim = sim_config_or_exit(parser, foresight=setting, **({"cameras": ()} if args.no_cameras else {}))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = args.sim
    print(describe_setting(config.foresight), flush=True)
    robot = SimRobot(config)
    robot.connect()
    expert = ScriptedExpert()
    results: list[RolloutResult] = []
    started = time.perf_counter()
    try:
        for seed in range(args.seed, args.seed + args.episodes):
            robot.reset_scene(seed)
            result = run_episode(robot, expert, chunks=args.chunks)
            results.append(result)
            ep = result.episode
            print(f"seed {seed}: {ep.describe_belt()}, {ep.target_color:<6} "
                  f"{'ok  ' if result.success else 'FAIL'} {result.ticks} ticks, in bin: {list(result.in_bin)}",
                  flush=True)
    finally:
        robot.disconnect()
    elapsed = time.perf_counter() - started
    ticks = sum(r.ticks for r in results)
    print(format_summary(summarize(results, config)))
    print(f"{ticks} ticks in {elapsed:.1f} s: {1e3 * elapsed / ticks:.1f} ms per tick "
          f"({len(config.cameras)} cameras, {config.image_width}x{config.image_height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
