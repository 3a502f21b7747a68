"""Calibrate a checkpoint's surprise gauge on held-out sim episodes, and measure how it does.

    python -m runtime.calibrate_surprise --checkpoint DIR --episodes N [--seed S] [--false-alarm 0.1]
        [--unit prediction|episode] [--out FILE] [--evaluate-episodes M] [--workers W] [--json REPORT]
        [--execute-horizon N ...] [--cover-start X ... (the foresight setting's flags)]

N seeded episodes (seeds S, S+1, ...; held out: below the training demonstrations' seeds) run the
checkpoint as model.evaluate does (robot_io.sim.rollout), and every prediction is judged when its
tick comes by the console's own judge (ForesightReckoner), its error read as the session's
auto-hold reads it (runtime/control/surprise.foresight_psnr). The errors of the episodes that
succeed make the calibration (robot_io/surprise_calibration.py), written to FILE (default:
beside the checkpoint, where the console finds it).

With --evaluate-episodes M, M more episodes (the seeds after those) measure the calibrated alarm:
in how many failing episodes and how many successful ones it goes off, and how many ticks before
the failure it first does. An episode's failure is the tick the automatic operator watching it
(robot_io/sim/auto_operator.py) judges the attempt lost (a wrong block lifted, the target about to
leave reach, fumbled, a stalled delivery), else its last tick. Where the belt changes speed (the
foresight setting), it also says in how many failing episodes a prediction was judged after the
change began and at least the lead before the failure: a prediction judged before the change
cannot show it, so in the other failing episodes no alarm in time can be about the change.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from model.checkpoint import CheckpointError
from model.evaluate import check_held_out
from model.policy import policy_for_robot
from model.shipped import SHIPPED_CHECKPOINT
from robot_io.chunks.flags import add_chunk_flags, chunks_from_flags
from robot_io.devices.robot import camera_keys
from robot_io.policy import Policy
from robot_io.sim.auto_operator import AutoOperator
from robot_io.sim.conveyor_env import ConveyorSimConfig, sim_config_or_exit
from robot_io.sim.foresight_setting import add_setting_flags, describe_setting, setting_from_flags
from robot_io.sim.rollout import run_episode
from robot_io.sim.sim_robot import SimRobot
from runtime.control.foresight_reckoning import foresight_horizon
from robot_io.surprise_calibration import CALIBRATION_FILE, UNITS, CalibrationError, SurpriseCalibration
from runtime.foresight_judge import ForesightJudge

LEAD_TICKS = 15  # an alarm this many ticks (1 s at 15 Hz) before the failure counts as early


@dataclass(frozen=True)
class EpisodeTrace:
    seed: int
    success: bool
    ticks: int
    judged: tuple[tuple[int, float], ...]  # (tick, mean PSNR dB) per judged prediction
    failure_tick: int | None  # when the watching operator judged it lost (failures only)
    failure_kind: str
    change_tick: int | None = None  # the first tick of the belt's speed change; None: the belt keeps its speed


def trace_episode(robot: SimRobot, policy: Policy, seed: int, rollout: Mapping[str, Any]) -> EpisodeTrace:
    """One seeded episode, its judged predictions, and when it was lost if it was."""
    robot.reset_scene(seed)
    policy.seed(seed)
    judge = ForesightJudge(camera_keys(robot), foresight_horizon(policy))
    watcher = AutoOperator(robot)  # only watches: its commands go nowhere
    lost: list[int] = []

    def on_frame(observation, action, source) -> None:
        tick = judge.tick
        judge.observe(observation)
        if not lost:
            watcher.get_action()
            if watcher.reason:
                lost.append(tick)

    result = run_episode(robot, policy, on_frame=on_frame, on_inference=judge.add_inference, **rollout)
    failure = None if result.success else (lost[0] if lost else result.ticks - 1)
    kind = "" if result.success else (watcher.reason_kind or "time_limit")
    change = robot.episode.speed_change
    change_tick = None if change is None else math.ceil(change.at_s * robot.config.fps)
    return EpisodeTrace(seed, result.success, result.ticks, tuple(judge.judged), failure, kind, change_tick)


# --- episodes side by side ---------------------------------------------------------------------
_worker: dict[str, Any] = {}


def _start_worker(checkpoint: Path, sim: ConveyorSimConfig, rollout: dict[str, Any]) -> None:
    import torch

    torch.set_num_threads(1)  # one core per worker
    robot = SimRobot(sim)
    robot.connect()
    _worker.update(robot=robot, policy=policy_for_robot(checkpoint, robot), rollout=rollout)


def _trace_seed(seed: int) -> EpisodeTrace:
    return trace_episode(_worker["robot"], _worker["policy"], seed, _worker["rollout"])


def trace_episodes(checkpoint: Path, seeds: list[int], sim: ConveyorSimConfig, rollout: dict[str, Any],
                   workers: int) -> list[EpisodeTrace]:
    traces = []
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_start_worker,
                             initargs=(checkpoint, sim, rollout)) as pool:
        for trace in pool.map(_trace_seed, seeds):
            worst = min((psnr for _, psnr in trace.judged), default=float("nan"))
            print(f"seed {trace.seed}: {'ok  ' if trace.success else 'FAIL'} {trace.ticks} ticks, "
                  f"{len(trace.judged)} judged predictions, worst {worst:.2f} dB", flush=True)
            traces.append(trace)
    return traces


# --- calibration and its measure -----------------------------------------------------------------
def calibration_scores(traces: Sequence[EpisodeTrace], unit: str) -> list[float]:
    """Nonconformity scores (-PSNR) of the successful episodes: every prediction, or each episode's worst."""
    successes = [t for t in traces if t.success and t.judged]
    if unit == "prediction":
        return [-psnr for t in successes for _, psnr in t.judged]
    return [-min(psnr for _, psnr in t.judged) for t in successes]


def calibrate(traces: Sequence[EpisodeTrace], false_alarm: float, unit: str, **about) -> SurpriseCalibration:
    if unit not in UNITS:
        raise CalibrationError(f"unit must be one of {UNITS}, got {unit!r}")
    episodes = sum(1 for t in traces if t.success and t.judged)
    return SurpriseCalibration.from_scores(calibration_scores(traces, unit), false_alarm, unit, episodes, **about)


def alarm_report(traces: Sequence[EpisodeTrace], calibration: SurpriseCalibration, lead_ticks: int = LEAD_TICKS) -> dict[str, Any]:
    """How the calibrated alarm does on episodes it was not calibrated on (JSON-ready)."""
    successes = [t for t in traces if t.success]
    failures = [t for t in traces if not t.success]
    fired_on_success = [t.seed for t in successes if any(calibration.is_alarm(p) for _, p in t.judged)]
    judged_on_success = [p for t in successes for _, p in t.judged]
    leads = {}  # failing seed -> ticks from the first alarm to the failure
    for t in failures:
        alarms = [tick for tick, p in t.judged if calibration.is_alarm(p) and tick <= t.failure_tick]
        if alarms:
            leads[t.seed] = t.failure_tick - alarms[0]
    early = [seed for seed, lead in leads.items() if lead >= lead_ticks]
    changed = [t for t in failures if t.change_tick is not None]
    judged_in_time = [t.seed for t in changed
                      if any(t.change_tick < tick <= t.failure_tick - lead_ticks for tick, _ in t.judged)]
    return {
        "threshold_psnr_db": calibration.threshold_psnr_db,
        "episodes": len(traces), "successes": len(successes), "failures": len(failures),
        "success_episodes_with_alarm": len(fired_on_success),
        "success_predictions_with_alarm": sum(calibration.is_alarm(p) for p in judged_on_success),
        "success_predictions": len(judged_on_success),
        "failure_episodes_with_alarm_before_failure": len(leads),
        "failure_episodes_with_alarm_lead_ticks": {"at_least": lead_ticks, "episodes": len(early)},
        "lead_ticks": {"median": statistics.median(leads.values()) if leads else None,
                       "min": min(leads.values(), default=None), "max": max(leads.values(), default=None),
                       "per_seed": leads},
        "failure_kinds": {kind: sum(t.failure_kind == kind for t in failures) for kind in {t.failure_kind for t in failures}},
        # failing episodes with a prediction judged after the belt's speed change, lead_ticks before the failure
        "failures_judged_after_change_in_time": {"episodes": len(judged_in_time), "of": len(changed)} if changed else None,
    }


def format_alarm_report(report: Mapping[str, Any], fps: float) -> str:
    def share(count: int, total: int) -> str:
        return f"{count}/{total} ({100 * count / total:.0f}%)" if total else f"{count}/0"

    lead = report["lead_ticks"]
    early = report["failure_episodes_with_alarm_lead_ticks"]
    lines = [
        f"alarm below {report['threshold_psnr_db']:.2f} dB on {report['episodes']} evaluation episodes:",
        f"  failing episodes with an alarm before the failure: "
        f"{share(report['failure_episodes_with_alarm_before_failure'], report['failures'])}",
        f"  ... at least {early['at_least']} ticks ({early['at_least'] / fps:.1f} s) before it: "
        f"{share(early['episodes'], report['failures'])}",
        f"  successful episodes with an alarm (false alarms): "
        f"{share(report['success_episodes_with_alarm'], report['successes'])}; "
        f"judged predictions of successes over the threshold: "
        f"{share(report['success_predictions_with_alarm'], report['success_predictions'])}",
    ]
    if lead["median"] is not None:
        lines.append(f"  ticks from the first alarm to the failure: median {lead['median']:g}, "
                     f"min {lead['min']}, max {lead['max']}")
    ceiling = report["failures_judged_after_change_in_time"]
    if ceiling is not None:
        lines.append(f"  failing episodes with a prediction judged after the belt's speed change began and at least "
                     f"{early['at_least']} ticks before the failure (where an alarm could be about the change in time): "
                     f"{share(ceiling['episodes'], ceiling['of'])}")
    lines.append(f"  failures by kind: {report['failure_kinds']}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT, help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--episodes", type=int, required=True, help="calibration episodes (its successes calibrate)")
    parser.add_argument("--seed", type=int, default=0, help="first seed; held out, below the training seeds")
    parser.add_argument("--false-alarm", type=float, default=0.1, help="the false-alarm rate alpha (default 0.1)")
    parser.add_argument("--unit", choices=UNITS, default="prediction",
                        help="what alpha counts: judged predictions of successful runs, or successful episodes")
    parser.add_argument("--out", type=Path, default=None, help=f"calibration file (default: CHECKPOINT/{CALIBRATION_FILE})")
    parser.add_argument("--evaluate-episodes", type=int, default=0, help="episodes after the calibration ones that measure the alarm")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="episodes run side by side")
    parser.add_argument("--json", type=Path, default=None, help="write the measurements and every episode here")
    add_chunk_flags(parser)
    add_setting_flags(parser)
    args = parser.parse_args(argv)
    args.chunks = chunks_from_flags(parser, args)
    args.sim = sim_config_or_exit(parser, foresight=setting_from_flags(parser, args))
    if args.episodes < 1 or args.evaluate_episodes < 0 or args.workers < 1:
        parser.error("--episodes and --workers must be >= 1, --evaluate-episodes >= 0")
    if not 0 < args.false_alarm < 1:
        parser.error(f"--false-alarm must be between 0 and 1, got {args.false_alarm}")
    check_held_out(parser, args.seed, args.episodes + args.evaluate_episodes)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out or args.checkpoint / CALIBRATION_FILE
    rollout = {"chunks": args.chunks}
    setting = describe_setting(args.sim.foresight)
    print(setting, flush=True)
    seeds = list(range(args.seed, args.seed + args.episodes))
    try:
        traces = trace_episodes(args.checkpoint, seeds, args.sim, rollout, args.workers)
        calibration = calibrate(traces, args.false_alarm, args.unit, checkpoint=str(args.checkpoint.absolute()),
                                seeds=(seeds[0], seeds[-1]), setting=setting)
    except (CheckpointError, CalibrationError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    calibration.save(out)
    successes = sum(t.success for t in traces)
    print(f"calibrated on {successes}/{len(traces)} successful episodes: alarm below "
          f"{calibration.threshold_psnr_db:.2f} dB, {calibration.describe()}; wrote {out}", flush=True)
    report: dict[str, Any] = {"calibration": str(out), "threshold_psnr_db": calibration.threshold_psnr_db,
                              "false_alarm": args.false_alarm, "unit": args.unit, "setting": setting,
                              "calibration_episodes": [asdict(t) for t in traces]}
    if args.evaluate_episodes:
        evaluation_seeds = list(range(seeds[-1] + 1, seeds[-1] + 1 + args.evaluate_episodes))
        evaluation = trace_episodes(args.checkpoint, evaluation_seeds, args.sim, rollout, args.workers)
        report["evaluation"] = alarm_report(evaluation, calibration) | {"seeds": [evaluation_seeds[0], evaluation_seeds[-1]]}
        report["evaluation_episodes"] = [asdict(t) for t in evaluation]
        print(format_alarm_report(report["evaluation"], args.sim.fps), flush=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=_jsonable))
        print(f"wrote {args.json}")
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main())
