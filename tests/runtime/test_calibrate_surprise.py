"""runtime.calibrate_surprise: the console's foresight judge fed by a headless rollout, the
calibration made from successful episodes, and how the alarm is measured on others."""

import numpy as np
import pytest

from robot_io.images import psnr
from robot_io.policy import PolicyOutput
from robot_io.sim.conveyor_env import ConveyorSimConfig
from robot_io.sim.foresight_setting import ForesightSetting
from robot_io.sim.scripted_expert import ScriptedExpert
from robot_io.sim.sim_robot import SimRobot
from runtime import calibrate_surprise
from runtime.calibrate_surprise import EpisodeTrace, alarm_report, calibrate, format_alarm_report, trace_episode
from robot_io.surprise_calibration import CalibrationError


class StillForesightExpert(ScriptedExpert):
    """The scripted expert, foreseeing that nothing moves: its picture of t+15 is frame t."""

    foresight_horizon = 15

    def seed(self, seed):
        self.seeded = seed

    def infer(self, observation, instruction):
        output = super().infer(observation, instruction)
        frames = {camera: np.array(observation[camera]) for camera in ("head", "wrist", "side")}
        return PolicyOutput(actions=output.actions, foresight=frames, timings_ms=output.timings_ms)


def test_a_rollout_is_judged_by_the_consoles_judge():
    robot = SimRobot(ConveyorSimConfig(image_height=32, image_width=32))
    robot.connect()
    frames = []
    policy = StillForesightExpert()
    try:
        real_get = robot.get_observation

        def keep(*args):  # every tick's frames, to judge the judge by
            observation = real_get(*args)
            frames.append({c: observation[c] for c in ("head", "wrist", "side")})
            return observation

        robot.get_observation = keep
        trace = trace_episode(robot, policy, 3, {})
    finally:
        robot.disconnect()
    assert trace.success and trace.failure_tick is None and policy.seeded == 3
    assert trace.change_tick is None  # the standard belt keeps its speed
    assert len(trace.judged) >= 3
    for tick, judged_psnr in trace.judged:
        # Foresight "frame t" judged at t + 15: its PSNR, mean over cameras, against frame t + 15.
        expected = np.mean([psnr(frames[tick - 15][c], frames[tick][c]) for c in ("head", "wrist", "side")])
        assert judged_psnr == pytest.approx(expected)


def test_a_trace_keeps_the_tick_the_belt_began_to_change_speed():
    setting = ForesightSetting(speed_change_min=0.10, speed_change_max=0.12, speed_change_after_min_s=1.0,
                               speed_change_after_max_s=1.0)
    robot = SimRobot(ConveyorSimConfig(image_height=32, image_width=32, foresight=setting))
    robot.connect()
    try:
        trace = trace_episode(robot, StillForesightExpert(), 3, {})
    finally:
        robot.disconnect()
    assert trace.change_tick == 15  # 1.0 s at 15 Hz


def trace(seed, success, psnrs, failure_tick=None, start=15, every=6, change_tick=None):
    return EpisodeTrace(seed, success, 200, tuple((start + every * i, p) for i, p in enumerate(psnrs)), failure_tick,
                        "" if success else "missed", change_tick)


SUCCESSES = [trace(s, True, [30.0 + s, 31.0 + s]) for s in range(10)]  # worst per episode: 30 .. 39 dB


def test_calibration_from_successful_episodes_only():
    failing = trace(99, False, [1.0], failure_tick=100)
    by_episode = calibrate(SUCCESSES + [failing], 0.1, "episode")
    assert by_episode.episodes == 10 and len(by_episode.scores) == 10
    assert by_episode.threshold_psnr_db == 30.0  # rank ceil(11 * 0.9) = 10 of the scores -39 .. -30: the largest
    by_prediction = calibrate(SUCCESSES + [failing], 0.1, "prediction")
    assert len(by_prediction.scores) == 20
    with pytest.raises(CalibrationError, match="too few"):
        calibrate(SUCCESSES[:5], 0.1, "episode")


def test_the_alarm_report_counts_episodes_and_lead_ticks():
    calibration = calibrate(SUCCESSES, 0.1, "episode")  # alarm below 30 dB
    evaluation = [
        trace(100, True, [35.0, 29.5]),  # a false alarm
        trace(101, True, [35.0, 36.0]),
        trace(102, False, [35.0, 20.0, 20.0], failure_tick=60),  # first alarm at tick 21: 39 ticks ahead
        trace(103, False, [35.0, 35.0, 35.0, 20.0], failure_tick=30),  # alarm only after the failure
        trace(104, False, [35.0, 35.0, 25.0], failure_tick=30),  # alarm at 27: 3 ticks ahead
    ]
    report = alarm_report(evaluation, calibration)
    assert (report["successes"], report["failures"]) == (2, 3)
    assert report["success_episodes_with_alarm"] == 1
    assert (report["success_predictions_with_alarm"], report["success_predictions"]) == (1, 4)
    assert report["failure_episodes_with_alarm_before_failure"] == 2
    assert report["lead_ticks"]["per_seed"] == {102: 39, 104: 3}
    assert report["failure_episodes_with_alarm_lead_ticks"] == {"at_least": 15, "episodes": 1}
    text = format_alarm_report(report, fps=15.0)
    assert "failing episodes with an alarm before the failure: 2/3 (67%)" in text
    assert "at least 15 ticks (1.0 s) before it: 1/3 (33%)" in text
    assert "successful episodes with an alarm (false alarms): 1/2 (50%)" in text
    assert report["failures_judged_after_change_in_time"] is None and "speed change" not in text  # the belt kept its speed


def test_the_alarm_report_says_how_many_failures_a_judged_prediction_could_flag_in_time():
    calibration = calibrate(SUCCESSES, 0.1, "episode")
    judged_at = [15, 21, 27, 33, 39]
    evaluation = [
        trace(200, False, [35.0] * 5, failure_tick=60, change_tick=20),  # judged at 21 .. 39 after it: in time
        trace(201, False, [35.0] * 5, failure_tick=42, change_tick=27),  # only 33, 39 after it; 42 - 15 = 27: too late
        trace(202, False, [35.0] * 5, failure_tick=48, change_tick=30),  # 33 after it, 33 <= 48 - 15: in time
        trace(203, True, [35.0] * 5, change_tick=10),
    ]
    assert [tick for tick, _ in evaluation[0].judged] == judged_at
    report = alarm_report(evaluation, calibration)
    assert report["failures_judged_after_change_in_time"] == {"episodes": 2, "of": 3}
    assert "(where an alarm could be about the change in time): 2/3 (67%)" in format_alarm_report(report, fps=15.0)


def test_the_command_refuses_training_seeds_and_bad_rates(capsys):
    with pytest.raises(SystemExit):
        calibrate_surprise.parse_args(["--episodes", "10", "--seed", "99995"])
    assert "training demonstrations" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        calibrate_surprise.parse_args(["--episodes", "10", "--false-alarm", "1.5"])
    assert "--false-alarm must be between 0 and 1" in capsys.readouterr().err
    args = calibrate_surprise.parse_args(["--episodes", "10", "--cover-start", "-0.3"])
    assert args.sim.foresight.cover_x == pytest.approx((-0.3, -0.05))
