"""bench.evaluate_console end to end: the real console session at 15 Hz on the conveyor sim with
nobody at the page, the scripted expert (or a slow policy that only holds) as app.py builds it,
every attempt recorded; the report's success and latency figures checked against the dataset the
run recorded and against what the policy was made to do."""

import functools
import json
import os
import time

import numpy as np
import pytest

import app
from model.evaluate import TRAINING_SEED_START
from robot_io.datasets.schema import EPISODE_OUTCOMES, OUTCOME_KEY
from robot_io.policy import Policy, PolicyOutput
from robot_io.sim.conveyor_env import ConveyorSimConfig
from bench import evaluate_console

SLOW_MS = 150.0  # more than two ticks at 15 Hz
SHORT_LIMIT_S = 3.0  # the sim's episode time limit for the policy that never succeeds


class SlowHoldingPolicy(Policy):
    """Thinks SLOW_MS, then plans to hold the arm where it is: the target is never picked."""

    chunk_starts_next_tick = True

    def __init__(self, action_keys):
        self.action_keys = list(action_keys)
        self.closed = 0

    def infer(self, observation, instruction):
        time.sleep(SLOW_MS / 1e3)
        here = np.array([observation[k] for k in self.action_keys], dtype=np.float32)  # (action_dim,)
        return PolicyOutput(actions=np.tile(here, (10, 1)))  # (10, action_dim)

    def close(self):
        self.closed += 1


def run(tmp_path, *extra):
    out = tmp_path / "report.json"
    assert evaluate_console.main(["--policy", "expert", "--json", str(out), "--no-rerun", *extra]) == 0
    return json.loads(out.read_text())


def test_success_and_latency_come_from_the_run_and_match_what_was_recorded(tmp_path, capsys):
    dataset = tmp_path / "attempts"
    report = run(tmp_path, "--episodes", "2", "--seed", "5", "--record-to", str(dataset))
    printed = capsys.readouterr().out
    assert "[1/2] seed 5:" in printed and "[2/2] seed 6:" in printed and "success:" in printed

    closed = report["closed_loop"]
    episodes = closed["per_episode"]
    assert [e["seed"] for e in episodes] == [5, 6] and closed["seeds"] == [5, 6]
    assert sum(r["episodes"] for r in closed["by_speed"].values()) == 2
    assert sum(r["episodes"] for r in closed["by_color"].values()) == 2
    assert closed["successes"] == sum(e["success"] for e in episodes)
    max_ticks = ConveyorSimConfig().max_ticks
    for e in episodes:
        assert (e["target_color"] in e["in_bin"]) == e["success"]  # read off the sim at the scene's end
        assert 0 < e["ticks"] <= max_ticks + 2 and e["seconds"] == pytest.approx(e["ticks"] / 15)
        assert e["inferences"] > 0 and e["missed_ticks"] >= 0
        if not e["success"]:
            assert e["ticks"] >= max_ticks  # a failure ran to the time limit

    os.environ["HF_HUB_OFFLINE"] = "1"
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/attempts", root=dataset)
    assert ds.num_episodes == 2  # each scene one attempt, its outcome judged by the session when it stopped
    outcomes = dict(zip((int(i) for i in ds.hf_dataset["episode_index"]), (int(o) for o in ds.hf_dataset[OUTCOME_KEY])))
    assert [EPISODE_OUTCOMES[outcomes[i]] for i in range(2)] == [("failure", "success")[e["success"]] for e in episodes]
    recording = report["recording"]
    assert recording["frames_saved"] == ds.num_frames and recording["episodes_saved"] == 2
    assert recording["frames_sent"] >= ds.num_frames and recording["frames_dropped"] == recording["frames_sent"] - ds.num_frames

    inference, loop = report["inference"], report["loop"]
    assert inference["count"] >= sum(e["inferences"] for e in episodes)
    assert inference["ms"]["p50"] < SLOW_MS and inference["ticks"]["p50"] == 1  # the expert thinks in a few ms
    assert loop["fps"] == 15 and 12 < loop["achieved_hz"] < 16 and loop["ticks"] > sum(e["ticks"] for e in episodes)
    assert loop["missed_ticks"] >= 0 and loop["period_error_p99_ms"] >= loop["period_error_p50_ms"] >= 0
    assert 60 < loop["tick_interval_ms"]["p50"] < 74
    assert report["setup"]["policy_label"] == "scripted expert" and not report["setup"]["browser"]


def test_a_slow_policy_that_never_picks_shows_in_every_figure(tmp_path, monkeypatch):
    made = []

    def build_policy(checkpoint, robot, defer_pictures=False):  # where app.py builds the console's policy
        made.append(SlowHoldingPolicy(robot.action_features))
        return made[-1]

    monkeypatch.setattr(app, "build_policy", build_policy)
    monkeypatch.setattr(app, "ConveyorSimConfig", functools.partial(ConveyorSimConfig, episode_time_limit_s=SHORT_LIMIT_S))
    report = run(tmp_path, "--episodes", "1", "--seed", "3", "--belt-speed", "0.1,0.1")
    episode = report["closed_loop"]["per_episode"][0]
    assert report["closed_loop"]["successes"] == 0 and not episode["success"] and episode["in_bin"] == []
    assert episode["belt_speed"] == pytest.approx(0.1)
    assert round(SHORT_LIMIT_S * 15) <= episode["ticks"] <= round(SHORT_LIMIT_S * 15) + 2  # to the time limit
    ms, ticks = report["inference"]["ms"], report["inference"]["ticks"]
    assert SLOW_MS <= ms["p50"] < 3 * SLOW_MS
    assert ticks["p50"] >= 3  # 150 ms is over two 66.7 ms ticks: its chunk takes over at the third
    assert report["recording"]["outcomes"] == ["failure"]
    assert [p.closed for p in made] == [1]  # the policy was closed at the end


@pytest.mark.parametrize("argv, message", [
    (["--episodes", "0"], "--episodes must be >= 1"),
    (["--episodes", "3", "--seed", str(TRAINING_SEED_START - 2)], "training demonstrations"),
    (["--episodes", "1", "--seed", "-1"], "--seed must be >= 0"),
    (["--episodes", "1", "--belt-speed", "0.2,0.1"], "belt_speed_range"),
])
def test_bad_arguments_are_refused_before_anything_starts(argv, message, capsys):
    with pytest.raises(SystemExit):
        evaluate_console.main(argv)
    assert message in capsys.readouterr().err


@pytest.mark.browser
def test_a_browser_watches_the_whole_run(tmp_path):
    report = run(tmp_path, "--episodes", "1", "--seed", "2", "--browser")
    browser = report["browser"]
    assert browser["error"] == "" and set(browser["feeds_fps"]) == {"head", "wrist", "side"}
    assert all(fps > 1 for fps in browser["feeds_fps"].values())  # the page took the feeds all along
    assert report["setup"]["browser"]
