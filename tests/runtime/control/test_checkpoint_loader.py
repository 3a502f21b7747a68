"""Hot swap: a checkpoint loaded beside the running console replaces the policy, the robot holding."""

import time

import pytest

from runtime.control.checkpoint_loader import CheckpointLoader
from runtime.control.commands import Mode, RunPolicy
from runtime.control.session import Session, SessionConfig
from tests.fakes import ConstantPolicy, FakeRobot
from tests.session_support import wait_until

TIMEOUT_S = 10.0


def make_checkpoint(folder):
    folder.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "stats.json"):
        (folder / name).write_text("{}")
    return folder


@pytest.fixture
def running(tmp_path):
    robot = FakeRobot()
    session = Session(robot, ConstantPolicy(target=0.2, steps=400), SessionConfig(fps=60), policy_label="base")
    session.start()
    yield session, robot
    session.close()


def wait_for_status(loader, predicate):
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate(loader.status()):
        assert time.monotonic() < deadline, loader.status()
        time.sleep(0.01)
    return loader.status()


def test_a_loaded_checkpoint_takes_over_while_the_robot_holds(running, tmp_path):
    session, robot = running
    root = tmp_path / "runs"
    new = make_checkpoint(root / "finetune" / "checkpoints" / "step_0000100")
    loaded = []

    def load(folder, robot_):
        loaded.append(folder)
        return ConstantPolicy(target=-0.3, steps=400)

    loader = CheckpointLoader(session, robot, [root], load)
    assert loader.checkpoints() == [new.resolve()]
    session.submit(RunPolicy("go"))
    wait_until(lambda s: s.state["joint_1.pos"] > 0.01, session)
    loader.request(new)
    assert "Loaded" in wait_for_status(loader, lambda s: not s.loading).message and loaded == [new.resolve()]
    held = wait_until(lambda s: s.mode is Mode.PAUSED, session)
    assert session.policy_label == str(new.resolve()) and "Model:" in held.events[-1]
    later = wait_until(lambda s: s.tick > held.tick + 10, session)
    assert later.state == held.state  # held through the swap
    session.submit(RunPolicy("go"))  # the new policy drives now: joint 1 heads for -0.3
    wait_until(lambda s: s.state["joint_1.pos"] < 0.0, session)


def test_folders_outside_the_roots_or_not_checkpoints_are_refused(running, tmp_path):
    session, robot = running
    loader = CheckpointLoader(session, robot, [tmp_path / "runs"], lambda folder, robot_: ConstantPolicy())
    elsewhere = make_checkpoint(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="outside the checkpoint folders"):
        loader.request(elsewhere)
    with pytest.raises(ValueError, match="outside the checkpoint folders"):
        loader.request(tmp_path / "runs" / ".." / "elsewhere")
    (tmp_path / "runs" / "half").mkdir(parents=True)
    (tmp_path / "runs" / "half" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="missing model.safetensors, stats.json"):
        loader.request(tmp_path / "runs" / "half")
    with pytest.raises(ValueError, match="name a checkpoint"):
        loader.request("  ")
    with pytest.raises(ValueError, match="at least one root"):
        CheckpointLoader(session, robot, [], lambda folder, robot_: ConstantPolicy())


def test_a_checkpoint_that_fails_to_load_leaves_the_running_policy(running, tmp_path):
    session, robot = running
    bad = make_checkpoint(tmp_path / "runs" / "other_robot")

    def load(folder, robot_):
        raise ValueError("trained for another robot layout: cameras ['top'] vs ['head', 'wrist']")

    loader = CheckpointLoader(session, robot, [tmp_path / "runs"], load)
    session.submit(RunPolicy("go"))
    wait_until(lambda s: s.action_source == "policy", session)
    loader.request(bad)
    status = wait_for_status(loader, lambda s: not s.loading)
    assert "another robot layout" in status.error and session.policy_label == "base"
    assert session.snapshot().mode is Mode.RUNNING
