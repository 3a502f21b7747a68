"""Rerun logging benchmark (prints figures; not a test): what the live Rerun recording adds per
control tick, with the conveyor sim and a policy running (default: the shipped tiny model, its
inference beside the loop; --policy expert: the scripted expert). No viewer is connected: this is
the console process's own cost; a viewer's cost is its browser's.

Two runs of the same seeded scene, without and with the logger: control-loop Hz, period error
p99 and missed ticks of each; the logger thread's CPU per logged tick; the whole process's CPU per
tick (so Rerun's own encoder, file and gRPC threads count too); ticks skipped; session file growth.

    .venv/bin/python -m bench.bench_rerun --seconds 30 [--policy model|expert] [--image-every 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("LP_NUM_THREADS", "1")

from robot_io.sim.scripted_expert import ScriptedExpert  # noqa: E402
from robot_io.sim.sim_robot import SimRobot  # noqa: E402
from runtime.control.commands import RunPolicy  # noqa: E402
from runtime.rerun.logger import RerunConfig, RerunLogger  # noqa: E402
from runtime.control.session import Session, SessionConfig  # noqa: E402
from tests.browser_support import free_port  # noqa: E402

FPS = 15.0
SEED = 11
WARMUP_S = 3.0  # first inference, first renders
GIL_SWITCH_INTERVAL_S = 0.001  # as app.py sets it
INSTRUCTION = "pick up the red block and put it in the bin"


def make_policy(kind: str, robot: SimRobot):
    if kind == "expert":
        return ScriptedExpert()
    from model.policy import policy_for_robot
    from model.shipped import SHIPPED_CHECKPOINT

    return policy_for_robot(SHIPPED_CHECKPOINT, robot)


def run(kind: str, seconds: float, rerun: RerunConfig | None) -> dict:
    robot = SimRobot()
    session = Session(robot, make_policy(kind, robot), SessionConfig(fps=FPS, scene_seed=SEED))
    logger = RerunLogger(session, rerun) if rerun else None
    session.start()
    if logger:
        logger.start()
    try:
        session.submit(RunPolicy(INSTRUCTION))
        time.sleep(WARMUP_S)
        first, cpu0 = session.snapshot(), time.process_time()
        stats0 = logger.stats() if logger else None
        spool0 = logger.spool_path.stat().st_size if logger else 0
        time.sleep(seconds)
        last, cpu1 = session.snapshot(), time.process_time()
        ticks = last.tick - first.tick
        result = {
            "hz": last.loop.achieved_hz, "p99_ms": last.loop.period_error_p99_ms,
            "missed": last.loop.missed_ticks - first.loop.missed_ticks,
            "process_ms_per_tick": 1000 * (cpu1 - cpu0) / ticks, "ticks": ticks,
        }
        if logger:
            stats = logger.stats()
            logged = stats.logged - stats0.logged
            result.update(
                logged=logged, skipped=stats.skipped - stats0.skipped,
                logger_ms_per_tick=stats.cpu_ms_per_tick,
                spool_mb_per_min=(logger.spool_path.stat().st_size - spool0) / 1e6 * 60 / seconds,
            )
        return result
    finally:
        if logger:
            logger.close()
        session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--policy", choices=["model", "expert"], default="model")
    parser.add_argument("--image-every", type=int, default=RerunConfig.image_every_ticks)
    args = parser.parse_args()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    with tempfile.TemporaryDirectory() as tmp:
        rerun = RerunConfig(grpc_port=free_port(), image_every_ticks=args.image_every, spool_dir=Path(tmp),
                            save_dir=Path(tmp))
        without = run(args.policy, args.seconds, None)
        with_rerun = run(args.policy, args.seconds, rerun)
    print(f"{args.policy} policy, conveyor sim at {FPS:.0f} Hz, {args.seconds:.0f} s each, "
          f"images to Rerun every {args.image_every} ticks, {os.cpu_count()} CPUs:")
    for name, r in (("without Rerun", without), ("with Rerun", with_rerun)):
        print(f"  {name:>13}: loop {r['hz']:.2f} Hz, period error p99 {r['p99_ms']:.1f} ms, missed {r['missed']} "
              f"of {r['ticks']} ticks; process CPU {r['process_ms_per_tick']:.1f} ms/tick")
    print(f"  logger thread: {with_rerun['logger_ms_per_tick']:.2f} CPU ms per logged tick; "
          f"{with_rerun['logged']} logged, {with_rerun['skipped']} skipped")
    print(f"  added process CPU (logger + Rerun's threads): "
          f"{with_rerun['process_ms_per_tick'] - without['process_ms_per_tick']:.1f} ms/tick; "
          f"session file grows {with_rerun['spool_mb_per_min']:.0f} MB/min")


if __name__ == "__main__":
    main()
