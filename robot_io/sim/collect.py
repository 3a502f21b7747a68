"""Record scripted-expert demonstrations headless as a LeRobot v3.0 dataset.

    python -m robot_io.sim.collect --episodes 50 --out recordings/NAME [--seed 0] [--resume] [--every-target]
        [--cover-start X --cover-length L] [--speed-change-min V0 --speed-change-max V1 ...]

Episode i uses seed `--seed + i`; with --resume the count starts at the episodes already in the
dataset, so a resumed run continues the seed sequence rather than repeating it. Only episodes in
which the target block ends in the bin are kept; failed ones are discarded (and reported).

--every-target records each seed's scene once per block on the belt, each time told to pick
another one: the same pictures under different instructions, so a model cannot learn which block
to pick from the scene alone (with 500 one-target scenes it can memorise scene -> target and
ignore the words). Resumed, it starts at the next whole scene.

The foresight setting's flags (robot_io/sim/foresight_setting.py) record the episodes in that
setting; the dataset keeps it (meta/conveyor_setting.json) and a resumed dataset refuses another.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Iterator

from robot_io.datasets.schema import RecorderError
from robot_io.datasets.recorder import EpisodeRecorder
from robot_io.sim.conveyor_env import sim_config_or_exit
from robot_io.sim.foresight_setting import (add_setting_flags, check_recorded_setting, describe_setting,
                                            setting_from_flags, write_setting)
from robot_io.sim.rollout import run_episode
from robot_io.sim.scripted_expert import ScriptedExpert
from robot_io.sim.sim_robot import SimRobot

MAX_ATTEMPTS_PER_EPISODE = 3  # give up when failures outnumber the wanted episodes this much


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, required=True, help="successful episodes to add")
    parser.add_argument("--out", type=Path, required=True, help="dataset folder (must not exist unless --resume)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    parser.add_argument("--resume", action="store_true", help="append to the dataset at --out")
    parser.add_argument("--image-size", type=int, default=224, help="camera width and height in pixels")
    parser.add_argument("--every-target", action="store_true", help="each scene once per block as the target")
    add_setting_flags(parser)
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    args.sim = sim_config_or_exit(parser, image_height=args.image_size, image_width=args.image_size,
                                  foresight=setting_from_flags(parser, args))
    return args



def scene_draws(first_seed: int, targets: int | None) -> Iterator[tuple[int, int | None]]:
    """(seed, target index) in recording order; targets None: one episode per seed, its own target."""
    for seed in itertools.count(first_seed):
        if targets is None:
            yield seed, None
        else:
            yield from ((seed, target) for target in range(targets))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    robot = SimRobot(args.sim)
    setting = args.sim.foresight
    try:
        if args.resume and args.out.exists():
            check_recorded_setting(args.out, setting)
        recorder = EpisodeRecorder(
            root=args.out,
            fps=round(robot.config.fps),
            observation_features=robot.observation_features,
            action_features=robot.action_features,
            resume=args.resume,
        )
    except (RecorderError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    write_setting(args.out, setting)
    print(describe_setting(setting), flush=True)
    robot.connect()
    expert = ScriptedExpert()
    targets = robot.config.num_blocks if args.every_target else None
    scenes_begun = -(-recorder.num_episodes // (targets or 1))
    draws = scene_draws(args.seed + scenes_begun, targets)
    saved = failed = 0
    started = time.perf_counter()
    try:
        while saved < args.episodes:
            if failed > MAX_ATTEMPTS_PER_EPISODE * args.episodes:
                print(f"error: giving up after {failed} failed episodes", file=sys.stderr)
                return 1
            seed, target_index = next(draws)
            episode = robot.reset_scene(seed, target_index)
            recorder.start_episode(episode.instruction)
            result = run_episode(
                robot, expert,
                on_frame=lambda obs, action, source: recorder.add_frame(obs, action, intervention=False, source=source),
            )
            if result.success:
                index = recorder.save_episode()
                saved += 1
                print(f"[{saved}/{args.episodes}] episode {index} saved: seed {seed}, {episode.target_color}, "
                      f"{episode.describe_belt()}, {result.ticks} frames", flush=True)
            else:
                recorder.discard_episode()
                failed += 1
                print(f"seed {seed} ({episode.target_color}) failed (in bin: {list(result.in_bin)}): discarded", flush=True)
    finally:
        recorder.finalize()
        robot.disconnect()
    minutes = (time.perf_counter() - started) / 60
    print(f"{saved} episodes saved to {args.out} ({failed} discarded) in {minutes * 60:.0f} s: "
          f"{saved / minutes:.1f} episodes/min; the dataset now holds {recorder.num_episodes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
