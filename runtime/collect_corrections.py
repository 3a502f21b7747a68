"""Collect corrections in the sim as the console does, with an automatic operator.

    python -m runtime.collect_corrections --checkpoint DIR --episodes N --out recordings/NAME
        [--seed S] [--belt-speed LOW,HIGH] [--mode corrections|attempts] [--unpaced] [--fumble-s S]
        [--execute-horizon N] [--blend MODE --blend-steps N --blend-k K] [--latency-ticks L[,L...]]
        [--cover-start X --cover-length L] [--speed-change-min V0 --speed-change-max V1 ...]
        [--surprise-calibration FILE] [--no-operator]

A real Session runs the policy on the conveyor sim at the control rate (inference beside the
loop, chunk blending, safety), recording in "corrections" mode by default. The operator is
robot_io.sim.auto_operator.AutoOperator plugged in as the session's teleop device: it takes over
when the policy strays or stalls and drives to the end with the scripted expert, so each takeover
becomes one correction episode, tagged as an intervention, exactly as a person's would be. Each
scene ends when a block has settled in the bin or at the sim's time limit. Episode i uses seed
S + i (keep them apart from the evaluation seeds). Prints the policy's own success rate, the
takeovers and their reasons, and what was saved.

--unpaced runs each scene headless as fast as the CPU allows, the way `model.evaluate` does
(robot_io.sim.rollout: one tick of inference latency, the same chunk blending, no safety layer),
with the same operator and the same recording conventions: several times faster than the
console's 15 Hz, and the corrections come from the states the evaluation meets.
--latency-ticks plays a slower inference as `model.evaluate --latency-ticks` does; a list
(e.g. 2,3,4) gives scene i the i-th value in turn, the spread of delays the console meets.
The foresight setting's flags (robot_io/sim/foresight_setting.py) run the scenes in that setting;
the dataset keeps it, as robot_io.sim.collect's does.

Each frame keeps its context for fine-tuning (robot_io/datasets/schema.py): the foresight judged at
that tick (`foresight_psnr_db`), its calibrated `surprise_score` (with the checkpoint's surprise
calibration, surprise_calibration.json beside it, or --surprise-calibration FILE; without one the
column is -1 and the command says so), and the operator's `intervention_segment`: its recovery,
then its correction.

--no-operator (with --mode attempts) lets the policy run every scene alone and records each whole,
with its outcome: the policy's own rollouts at its delay, for filtered self-imitation
(`model.train --learn-from successes` learns the successful ones).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from model.policy import policy_for_robot
from robot_io.chunks.flags import add_chunk_flags, chunks_from_flags
from robot_io.chunks.schedule import ChunkConfig
from robot_io.devices.robot import camera_keys
from robot_io.policy import Policy
from robot_io.datasets.schema import SEGMENT_NONE, SOURCE_OPERATOR, UNKNOWN, RecorderError
from robot_io.datasets.recorder import EpisodeRecorder
from robot_io.sim.auto_operator import AutoOperator, AutoOperatorConfig
from robot_io.sim.conveyor_env import ConveyorSimConfig, parse_speed_range, sim_config_or_exit
from robot_io.sim.foresight_setting import (add_setting_flags, check_recorded_setting, describe_setting,
                                            setting_from_flags, write_setting)
from robot_io.sim.rollout import run_episode
from robot_io.sim.sim_robot import SimRobot
from runtime import session_scenes
from runtime.control.commands import RECORDING_MODES
from runtime.control.foresight_reckoning import foresight_horizon
from runtime.control.session import Session, SessionConfig, describe_episode
from runtime.control.surprise import SurpriseConfig
from robot_io.surprise_calibration import CALIBRATION_FILE, CalibrationError, SurpriseCalibration, calibration_for
from runtime.foresight_judge import ForesightJudge

TAKEOVER_KINDS = {"wrong_block": "lifted a wrong block", "missed": "was about to miss the target",
                  "stalled": "held the target without delivering it", "fumbled": "left the target in reach unpicked"}


def run_scene(session: Session, operator: AutoOperator | None, seed: int, max_ticks: int, attempts: bool) -> dict:
    """One seeded scene: the policy runs, the operator may take over; ends settled or at the limit.
    attempts: record the whole scene as one episode (else the session records each takeover)."""
    ran = session_scenes.run_scene(session, seed, max_ticks, record=attempts)
    return {"seed": seed, "scene": ran.start.scene, "success": ran.success, **takeover(operator)}


def takeover(operator: AutoOperator | None) -> dict:
    """Whether and why the operator (None: none watched) took over in the scene just run."""
    reason = operator.reason if operator else ""
    return {"took_over": bool(reason), "reason": reason, "reason_kind": operator.reason_kind if operator else ""}


def run_scene_unpaced(robot: SimRobot, policy: Policy, operator: AutoOperator | None, recorder: EpisodeRecorder,
                      seed: int, attempts: bool, chunks: ChunkConfig, latency_ticks: int = 1,
                      calibration: SurpriseCalibration | None = None) -> dict:
    """One seeded scene headless; records the takeover (or, attempts: the whole scene) as one
    episode whose outcome is the scene's success, each frame with its judged foresight, its
    surprise score (with a calibration) and the operator's segment."""
    episode = robot.reset_scene(seed)
    policy.seed(seed)  # the same scene draws the same noise on every run
    judge = ForesightJudge(camera_keys(robot), foresight_horizon(policy), calibration)

    def record(observation: dict, action: dict[str, float], source: str) -> None:
        psnr, gauge = judge.observe(observation)  # every tick, recorded or not: predictions come due
        intervention = source == SOURCE_OPERATOR  # DAgger convention, as in the session
        if not (attempts or intervention):
            return
        if not recorder.is_recording:
            recorder.start_episode(episode.instruction)
        recorder.add_frame(observation, action, intervention=intervention, source=source,
                           foresight_psnr_db=UNKNOWN if psnr is None else psnr,
                           surprise_score=UNKNOWN if gauge is None else gauge.p_value,
                           segment=operator.intervention_segment() if intervention else SEGMENT_NONE)

    result = run_episode(robot, policy, chunks=chunks, on_frame=record, operator=operator, latency_ticks=latency_ticks,
                         on_inference=judge.add_inference)
    if recorder.is_recording:
        recorder.save_episode("success" if result.success else "failure")
    return {"seed": seed, "scene": describe_episode(episode), "success": result.success, **takeover(operator)}


def collect_unpaced(robot: SimRobot, policy: Policy, operator: AutoOperator | None, args: argparse.Namespace) -> tuple[list[dict], int]:
    """(per-scene results, episodes in the dataset)."""
    recorder = EpisodeRecorder(args.out, round(robot.config.fps), robot.observation_features, robot.action_features,
                               resume=args.out.exists(), robot_type=robot.name)
    results = []
    try:
        for i in range(args.episodes):
            latency = args.latency_ticks[i % len(args.latency_ticks)]
            results.append(run_scene_unpaced(robot, policy, operator, recorder, args.seed + i, args.mode == "attempts",
                                             args.chunks, latency, args.calibration))
            report(i, args.episodes, results[-1])
    finally:
        recorder.finalize()
    return results, recorder.num_episodes


def collect_in_session(robot: SimRobot, policy: Policy, operator: AutoOperator | None, args: argparse.Namespace,
                       sim: ConveyorSimConfig) -> tuple[list[dict], int]:
    """(per-scene results, episodes in the dataset), each scene run by the console's real-time session."""
    # The calibration scores every judged prediction; auto-hold stays off (the operator decides).
    session = Session(robot, policy, SessionConfig(fps=sim.fps, chunks=args.chunks,
                                                   record_root=args.out, recording_mode=args.mode,
                                                   scene_seed=args.seed, surprise=SurpriseConfig(calibration=args.calibration)),
                      teleoperator=operator,
                      policy_label=str(args.checkpoint))
    session.start()
    results = []
    try:
        session_scenes.wait_for_loop(session)
        for i in range(args.episodes):
            results.append(run_scene(session, operator, args.seed + i, sim.max_ticks, args.mode == "attempts"))
            report(i, args.episodes, results[-1])
        session_scenes.save_last_correction(session, args.seed + args.episodes)
    finally:
        session.close()
    status = session.snapshot().recording
    return results, status.saved_episodes if status else 0


def parse_latencies(text: str) -> list[int]:
    """'2,3,4' -> [2, 3, 4], each >= 1."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ticks like 3 or 2,3,4, got {text!r}") from None
    if not all(value >= 1 for value in values):
        raise argparse.ArgumentTypeError(f"latency ticks must be >= 1, got {text!r}")
    return values


def report(i: int, total: int, result: dict) -> None:
    print(f"[{i + 1}/{total}] {result['scene']}: {'success' if result['success'] else 'failure'}"
          + (f", operator took over: {result['reason']}" if result["took_over"] else ", policy alone"), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--episodes", type=int, required=True, help="scenes to run")
    parser.add_argument("--out", type=Path, required=True, help="LeRobot dataset folder (resumed when it exists)")
    parser.add_argument("--seed", type=int, default=200_000, help="seed of the first scene")
    parser.add_argument("--belt-speed", type=parse_speed_range, default=None, help="LOW,HIGH m/s (default: the sim's)")
    parser.add_argument("--mode", choices=RECORDING_MODES, default="corrections")
    parser.add_argument("--unpaced", action="store_true", help="headless and as fast as the CPU allows, as model.evaluate runs")
    parser.add_argument("--fumble-s", type=float, default=AutoOperatorConfig.fumble_s,
                        help="take over when the target has been in the arm's reach this long unpicked (0: never)")
    parser.add_argument("--latency-ticks", type=parse_latencies, default=[1], metavar="L[,L...]",
                        help="with --unpaced: ticks from an observation to its chunk's first command; a list "
                             "gives the scenes its values in turn (default 1)")
    parser.add_argument("--no-operator", action="store_true",
                        help="with --mode attempts: no operator watches; each scene is the policy's alone, recorded whole")
    parser.add_argument("--surprise-calibration", type=Path, default=None, metavar="FILE",
                        help=f"the surprise calibration that scores each frame (default: CHECKPOINT/{CALIBRATION_FILE}, if there)")
    add_chunk_flags(parser)
    add_setting_flags(parser)
    args = parser.parse_args(argv)
    args.chunks = chunks_from_flags(parser, args)
    if args.episodes < 1:
        parser.error("--episodes must be >= 1")
    if args.latency_ticks != [1] and not args.unpaced:
        parser.error("--latency-ticks needs --unpaced: the real-time session has the latency it measures")
    if args.no_operator and args.mode != "attempts":
        parser.error("--no-operator needs --mode attempts: without an operator, corrections mode records nothing")
    if not args.fumble_s >= 0:
        parser.error("--fumble-s must be >= 0 (0: never)")

    try:
        args.calibration = calibration_for(args.checkpoint, args.surprise_calibration)
    except CalibrationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.calibration is None:
        print(f"no surprise calibration beside {args.checkpoint} (python -m runtime.calibrate_surprise --checkpoint "
              f"{args.checkpoint} makes one): the frames' surprise_score is recorded as {UNKNOWN}", flush=True)
    speeds = {} if args.belt_speed is None else {"belt_speed_range": args.belt_speed}
    sim = sim_config_or_exit(parser, foresight=setting_from_flags(parser, args), **speeds)
    print(describe_setting(sim.foresight), flush=True)
    if args.out.exists():
        try:
            check_recorded_setting(args.out, sim.foresight)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    robot = SimRobot(sim)
    robot.connect()
    operator = None if args.no_operator else AutoOperator(robot, AutoOperatorConfig(fumble_s=args.fumble_s or None))
    try:
        policy = policy_for_robot(args.checkpoint, robot)
        if args.unpaced:
            results, saved = collect_unpaced(robot, policy, operator, args)
        else:
            results, saved = collect_in_session(robot, policy, operator, args, sim)
        if args.out.exists():  # a dataset was made (not when nothing was recorded)
            write_setting(args.out, sim.foresight)
    except (ValueError, RecorderError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        robot.disconnect()
    alone = [r for r in results if not r["took_over"]]
    corrected = [r for r in results if r["took_over"]]
    print(f"policy alone: {sum(r['success'] for r in alone)}/{len(results)} scenes succeeded without help; "
          f"operator took over in {len(corrected)} ({sum(r['success'] for r in corrected)} of those ended in success)")
    for kind, count in Counter(r["reason_kind"] for r in corrected).most_common():
        print(f"  takeovers because the policy {TAKEOVER_KINDS[kind]}: {count}")
    print(f"dataset {args.out}: {saved} episodes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
