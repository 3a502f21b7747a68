"""Training jobs beside a running session: real model.finetune and lerobot-train runs of a few steps
on a tiny recording made by robot_io.sim.collect, a trainer killed with SIGKILL, a second training
refused, and datasets or checkpoints that cannot be used."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from model.shipped import SHIPPED_CHECKPOINT
from robot_io.datasets.schema import INFO_PATH
from robot_io.sim.collect import main as collect
from robot_io.sim.conveyor_env import ConveyorSimConfig
from robot_io.sim.sim_robot import SimRobot
from runtime.control.checkpoint_loader import is_checkpoint
from runtime.control.commands import RunPolicy
from runtime.training.jobs import STDERR_FILE, TrainingBusy, TrainingConfig, TrainingError, TrainingJobs
from runtime.training.trainers import TrainRequest
from tests.fakes import ConstantPolicy
from tests.model.helpers import write_checkpoint
from tests.session_support import wait_until

TIMEOUT_S = 240.0  # a few CPU steps, with the suite's other workers on the same 2 cores


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """(dataset root holding `demo`, a 1-episode 64x64 sim recording; run folder root)."""
    base = tmp_path_factory.mktemp("training")
    assert collect(["--episodes", "1", "--out", str(base / "datasets" / "demo"), "--image-size", "64"]) == 0
    return base / "datasets", base / "runs"


@pytest.fixture
def jobs(roots, tmp_path):
    datasets, _ = roots
    jobs = TrainingJobs(TrainingConfig(dataset_roots=(datasets,), checkpoint_roots=(SHIPPED_CHECKPOINT.parent, tmp_path),
                                       out_root=tmp_path / "runs"))
    yield jobs
    jobs.close()
    assert jobs.job is None or not jobs.job.running()


def finetune(roots, steps=3, base=SHIPPED_CHECKPOINT):
    return TrainRequest("finetune", roots[0] / "demo", steps=steps, batch_size=2, base=base)


def wait_for(job, predicate, timeout_s=TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while not predicate(job.status()):
        assert time.monotonic() < deadline, job.status()
        time.sleep(0.1)
    return job.status()


def test_a_finetune_reports_every_step_and_offers_its_checkpoint(jobs, roots):
    job = jobs.start(finetune(roots))
    seen = [job.status().phase]
    status = wait_for(job, lambda s: seen.append(s.phase) or s.phase not in ("starting", "running"))
    assert status.phase == "done", status.error
    assert "starting" in seen
    assert status.step == status.total == 3 and status.points == 3
    steps, losses = zip(*job.points())
    assert steps == (1, 2, 3) and all(loss > 0 for loss in losses) and status.loss == losses[-1]
    assert job.points(since=2) == job.points()[2:]
    # The result is the last checkpoint, in a run folder of its own, loadable by the hot swap.
    assert status.result.endswith("checkpoints/step_0000003") and is_checkpoint(Path(status.result))
    assert status.folder.startswith(str(jobs.config.out_root)) and "Load the checkpoint" in status.message
    progress = [json.loads(line) for line in (job.folder / "progress.jsonl").read_text().splitlines()]
    assert [p["loss"] for p in progress if "loss" in p] == list(losses)
    assert (job.folder / "command.txt").read_text().startswith("nice -n 19 ")


def test_the_trainer_runs_niced_with_limited_threads(jobs, roots):
    job = jobs.start(finetune(roots, steps=50))
    wait_for(job, lambda s: s.phase == "running" or s.phase not in ("starting",))
    assert os.getpriority(os.PRIO_PROCESS, job.pid) == 19
    environ = (f"/proc/{job.pid}/environ")
    with open(environ, "rb") as f:
        env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
    assert env[b"OMP_NUM_THREADS"] == b"1"
    jobs.stop()
    status = wait_for(job, lambda s: s.phase not in ("starting", "running"))
    assert status.phase == "stopped" and status.error == ""


def test_a_second_training_is_refused_naming_the_running_one(jobs, roots):
    first = jobs.start(finetune(roots, steps=50))
    with pytest.raises(TrainingBusy, match=r"a training is running: fine-tune of our model on demo, 50 steps .*stop it first"):
        jobs.start(TrainRequest("lerobot", roots[0] / "demo", steps=2, batch_size=2, policy="act-tiny"))
    assert jobs.job is first and first.running()
    jobs.stop()
    wait_for(first, lambda s: s.phase == "stopped")


def test_a_killed_trainer_is_reported_and_the_session_drives_on(jobs, roots, make_session):
    session, _ = make_session(ConstantPolicy(target=0.2, steps=400))
    label = session.policy_label
    session.submit(RunPolicy("go"))
    job = jobs.start(finetune(roots, steps=200))
    wait_for(job, lambda s: s.step >= 1 or s.phase not in ("starting", "running"))
    os.kill(job.pid, signal.SIGKILL)
    status = wait_for(job, lambda s: s.phase not in ("starting", "running"))
    assert status.phase == "failed" and status.result == ""
    assert "was killed by SIGKILL; the console's model is unchanged" in status.error
    assert "train:" in status.error  # the tail of its stderr: where it was
    before = session.snapshot()
    after = wait_until(lambda s: s.tick > before.tick + 30, session)
    assert after.mode.value == "running" and after.last_error in (None, "") and session.policy_label == label
    # The desk is free again.
    jobs.start(finetune(roots, steps=1))
    assert wait_for(jobs.job, lambda s: s.phase not in ("starting", "running")).phase == "done"


def test_a_trainer_that_fails_shows_the_tail_of_its_stderr(jobs, roots, tmp_path):
    other = tmp_path / "toy"  # a checkpoint of a preset model.finetune does not know
    write_checkpoint(other, SimRobot(ConveyorSimConfig()))
    job = jobs.start(finetune(roots, base=other))
    status = wait_for(job, lambda s: s.phase not in ("starting", "running"))
    assert status.phase == "failed" and "exited with status 2" in status.error
    assert "unknown preset 'small'" in status.error
    assert "unknown preset 'small'" in (job.folder / STDERR_FILE).read_text()


def test_lerobot_train_reports_its_losses_and_its_policy_folder(jobs, roots):
    job = jobs.start(TrainRequest("lerobot", roots[0] / "demo", steps=2, batch_size=2, policy="act-tiny"))
    status = wait_for(job, lambda s: s.phase not in ("starting", "running"))
    assert status.phase == "done", status.error
    assert status.step == status.total == 2 and [step for step, _ in job.points()] == [1, 2]
    assert status.result.endswith("lerobot/checkpoints/000002/pretrained_model")
    assert f"python app.py --lerobot-policy {status.result}" in status.message
    assert json.loads((job.folder / "lerobot/checkpoints/000002/pretrained_model/config.json").read_text())["type"] == "act"


def test_datasets_and_checkpoints_that_cannot_be_used_are_refused(jobs, roots, tmp_path):
    datasets, _ = roots
    assert [listing.path.name for listing in jobs.datasets()] == ["demo"]
    cases = [
        (TrainRequest("finetune", tmp_path / "elsewhere", 1, 1, SHIPPED_CHECKPOINT), "outside the dataset roots"),
        (TrainRequest("finetune", datasets / "missing", 1, 1, SHIPPED_CHECKPOINT), "no dataset folder at"),
        (TrainRequest("finetune", datasets, 1, 1, SHIPPED_CHECKPOINT), "holds no LeRobot dataset"),
        (TrainRequest("finetune", datasets / "demo", 1, 1, tmp_path / "nothing"), "is not a checkpoint folder"),
        (TrainRequest("finetune", datasets / "demo", 1, 1, tmp_path.parent), "under the checkpoint roots"),
    ]
    for request, message in cases:
        with pytest.raises(TrainingError, match=message):
            jobs.start(request)
    old = datasets / "old"  # removed at the end: the other tests list this root
    (old / "meta").mkdir(parents=True)
    try:
        info = json.loads((datasets / "demo" / INFO_PATH).read_text()) | {"codebase_version": "v2.1"}
        (old / INFO_PATH).write_text(json.dumps(info))
        with pytest.raises(TrainingError, match="a LeRobot v2.1 dataset; training reads v3.0"):
            jobs.start(TrainRequest("lerobot", old, 1, 1))
    finally:
        shutil.rmtree(old)
    assert jobs.job is None and not (tmp_path / "runs").exists()  # nothing started, nothing written
    with pytest.raises(ValueError, match="unknown trainer 'x'"):
        TrainRequest("x", datasets / "demo", 1, 1)
    with pytest.raises(ValueError, match="fine-tuning needs a checkpoint"):
        TrainRequest("finetune", datasets / "demo", 1, 1)
