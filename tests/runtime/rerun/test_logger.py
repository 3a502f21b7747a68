"""The Rerun logger: a short run's saved .rrd, read back with Rerun's own reader, holds the entity
scheme and both timelines; robots without geometry get a notice instead of a 3D scene; a slow
logger skips ticks instead of lagging or slowing the loop; bad folders and taken ports say so."""

from __future__ import annotations

import socket
import time

import mujoco
import numpy as np
import pytest
import rerun as rr

from robot_io.sim.scripted_expert import ScriptedExpert
from robot_io.sim.sim_robot import SimRobot
from robot_io.chunks.blending import BlendConfig
from robot_io.chunks.schedule import ChunkConfig
from runtime.control.commands import RunPolicy, TakeOver, TeleopKeys
from runtime.rerun.logger import RerunConfig, RerunError, RerunLogger
from runtime.rerun.snapshot_writer import STEP_TIMELINE, WALL_TIMELINE, quaternion_xyzw
from runtime.control.session import Session, SessionConfig
from runtime.control.surprise import SurpriseConfig
from tests.browser_support import free_port
from robot_io.surprise_calibration import SurpriseCalibration
from tests.fakes import ConstantPolicy, FakeRobot, ForesightPolicy, OffsetPolicy
from tests.session_support import wait_until

# Saved copies have no footer (see runtime/rerun/logger.py); Rerun's reader warns and streams them.
pytestmark = pytest.mark.filterwarnings("ignore:RRD file has no footer")
SIM_FPS = 15.0
FAKE_FPS = 60.0
SLOW_LOG_S = 0.1  # a logger this slow sees about one snapshot in six at 60 Hz


def read_rrd(path):
    """entity path -> the timeline sets of its chunks (an empty one for static chunks), and the
    number of blueprint stores."""
    reader = rr.chunk.RrdReader(path)
    entities: dict[str, set[frozenset[str]]] = {}
    for chunk in reader.stream():
        entities.setdefault(chunk.entity_path, set()).add(frozenset(chunk.timeline_names))
    return entities, len(reader.blueprints())


@pytest.fixture
def run_logger(tmp_path):
    opened = []

    def start(robot, policy, fps, session_options=None, **rerun_config):
        session = Session(robot, policy, SessionConfig(fps=fps, realtime_priority=0, **(session_options or {})))
        config = RerunConfig(**{"grpc_port": free_port(), "save_dir": tmp_path / "rrd", "spool_dir": tmp_path, **rerun_config})
        logger = RerunLogger(session, config)
        opened.append((logger, session))
        session.start()
        logger.start()
        return session, logger

    yield start
    for logger, session in opened:
        logger.close()
        session.close()
        assert session.loop_error is None


def test_a_short_sim_run_saves_the_scheme_and_both_timelines(run_logger):
    session, logger = run_logger(SimRobot(), ScriptedExpert(), SIM_FPS, image_every_ticks=2)
    session.submit(RunPolicy("pick up the red block and put it in the bin"))
    wait_until(lambda s: len(s.seams.history) >= 2 and s.previous_chunk is not None, session, timeout_s=30)
    time.sleep(0.5)  # a few logged image ticks with both plans
    session.submit(TakeOver())
    session.submit(TeleopKeys(frozenset({"KeyR"})))
    wait_until(lambda s: s.action_source == "operator", session, timeout_s=10)
    time.sleep(0.5)  # a few logged ticks after the take-over
    saved = logger.save()

    assert saved.parent == logger.config.save_dir.absolute() and saved.name.startswith("session-")
    entities, blueprints = read_rrd(saved)
    assert blueprints == 1
    cameras = ("head", "wrist", "side")
    expected = [
        "/world/scene/fixed", "/world/scene/objects", "/world/robot/links", "/world/robot/end_effector",
        "/world/plan/current", "/world/plan/previous",
        *(f"/world/cameras/{c}" for c in cameras),
        *(f"/cameras/{c}/image" for c in cameras),
        *(f"/cameras/{c}/plan/{which}" for c in cameras for which in ("current", "previous")),
        *(f"/timeseries/joints/joint_{j}.pos/{series}" for j in range(1, 7) for series in ("planned", "sent", "measured")),
        "/timeseries/joints/gripper.pos/sent", "/timeseries/joints/joint_1.pos/takeover",
        "/timeseries/seams/raw", "/timeseries/seams/blended",
        "/timeseries/chunk/age", "/timeseries/chunk/queue_depth", "/events",
    ]
    missing = [path for path in expected if path not in entities]
    assert not missing, f"missing {missing}; the file has {sorted(entities)}"
    both = frozenset({STEP_TIMELINE, WALL_TIMELINE})
    odd = {path: sets for path, sets in entities.items() if not sets <= {both, frozenset()}}
    assert not odd, f"chunks on other timelines than {set(both)}: {odd}"
    assert entities["/world/plan/current"] == {both}
    assert "/notice" not in entities
    stats = logger.stats()
    assert stats.logged > 10 and stats.last_error == ""


def planned_path_points(path, entity: str) -> list[int]:
    """Point count of each LineStrips3D strip logged at `entity` in the .rrd at `path`."""
    counts = []
    for chunk in rr.chunk.RrdReader(path).stream():
        if chunk.entity_path != entity:
            continue
        batch = chunk.to_record_batch()
        column = next(name for name in batch.schema.names if name.endswith("LineStrips3D:strips"))
        for row in batch.column(column).to_pylist():
            counts += [len(strip) for strip in row or []]
    return counts


def test_the_planned_path_has_one_point_per_chunk_step(run_logger):
    expert = ScriptedExpert()
    session, logger = run_logger(SimRobot(), expert, SIM_FPS)
    session.submit(RunPolicy("pick up the red block and put it in the bin"))
    wait_until(lambda s: s.chunk is not None and s.previous_chunk is not None, session, timeout_s=30)
    time.sleep(0.3)
    counts = planned_path_points(logger.save(), "/world/plan/current")
    assert counts and set(counts) == {expert.config.chunk_steps}


def test_a_robot_without_geometry_gets_time_series_images_and_a_notice(run_logger):
    session, logger = run_logger(FakeRobot(), ConstantPolicy(steps=20), FAKE_FPS)
    assert not logger.has_geometry
    session.submit(RunPolicy("go"))
    wait_until(lambda s: s.chunk is not None and s.tick > 30, session)
    time.sleep(0.3)
    entities, _ = read_rrd(logger.save())
    assert "/notice" in entities and "/cameras/head/image" in entities and "/cameras/wrist/image" in entities
    assert {"/timeseries/joints/joint_1.pos/planned", "/timeseries/joints/joint_1.pos/sent",
            "/timeseries/joints/joint_1.pos/measured", "/timeseries/chunk/queue_depth"} <= set(entities)
    assert not [path for path in entities if path.startswith("/world/") or "/plan/" in path]


def test_an_auto_hold_is_marked_on_the_timeline_at_its_tick(run_logger):
    surprise = SurpriseConfig(enabled=True, max_seam=0.2)
    session, logger = run_logger(FakeRobot(), OffsetPolicy(low=0.0, high=0.5), FAKE_FPS,
                                 {"surprise": surprise, "chunks": ChunkConfig(blend=BlendConfig(mode="none")), "max_step_per_tick": 1.0})
    session.submit(RunPolicy("go"))
    held = wait_until(lambda s: s.last_surprise is not None, session)
    time.sleep(0.3)
    reader = rr.chunk.RrdReader(logger.save())
    marks = [chunk for chunk in reader.stream() if chunk.entity_path == "/timeseries/surprises" and chunk.timeline_names]
    assert marks and all(STEP_TIMELINE in chunk.timeline_names for chunk in marks)
    assert held.last_surprise.kind == "seam"


def test_the_calibrated_surprise_score_is_logged_at_each_judged_tick(run_logger):
    calibration = SurpriseCalibration.from_scores([-30.0 - k for k in range(9)], 0.1, "prediction", 3)
    session, logger = run_logger(FakeRobot(), ForesightPolicy(steps=50, error=60), FAKE_FPS,
                                 {"surprise": SurpriseConfig(calibration=calibration)})
    session.submit(RunPolicy("go"))
    wait_until(lambda s: s.surprise_gauge is not None, session)
    time.sleep(0.3)
    reader = rr.chunk.RrdReader(logger.save())
    scores = [chunk for chunk in reader.stream() if chunk.entity_path == "/timeseries/surprise_gauge/p_value"
              and chunk.timeline_names]
    assert scores and all(STEP_TIMELINE in chunk.timeline_names for chunk in scores)


def test_a_slow_logger_skips_ticks_and_never_holds_the_loop_back(run_logger):
    session, logger = run_logger(FakeRobot(), ConstantPolicy(), FAKE_FPS)
    real_log = logger._writer.log

    def slow_log(snapshot):
        time.sleep(SLOW_LOG_S)
        real_log(snapshot)

    logger._writer.log = slow_log
    start = wait_until(lambda s: s.tick > 5, session)
    time.sleep(2.0)
    snapshot = session.snapshot()
    stats = logger.stats()
    ticks = snapshot.tick - start.tick
    assert stats.logged < ticks / 3 and stats.skipped > ticks / 2
    assert snapshot.loop.achieved_hz > FAKE_FPS * 0.9
    # It logs the newest snapshot each time, not a backlog: what it logs now is recent.
    logged_before = stats.logged
    wait_until(lambda s: logger.stats().logged > logged_before + 1, session, timeout_s=5)
    assert session.snapshot().tick - snapshot.tick < FAKE_FPS  # within a second of real time


def test_saving_into_an_unusable_folder_says_why_and_logging_goes_on(run_logger, tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    session, logger = run_logger(FakeRobot(), ConstantPolicy(), FAKE_FPS, save_dir=blocker / "rrd")
    wait_until(lambda s: s.tick > 5, session)
    with pytest.raises(RerunError, match="cannot create .*not_a_folder"):
        logger.save()
    logged = logger.stats().logged
    wait_until(lambda s: logger.stats().logged > logged + 3, session)


def test_a_taken_port_is_refused_with_a_clear_message(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        session = Session(FakeRobot(), ConstantPolicy(), SessionConfig(fps=FAKE_FPS, realtime_priority=0))
        with pytest.raises(RerunError, match=f"127.0.0.1:{port} is taken"):
            RerunLogger(session, RerunConfig(grpc_port=port, spool_dir=tmp_path))
        session.close()


@pytest.mark.parametrize("bad, message", [
    ({"image_every_ticks": 0}, "image_every_ticks must be >= 1"),
    ({"grpc_port": 70000}, "grpc_port must be between 1 and 65535"),
    ({"memory_limit_mb": 0}, "memory_limit_mb must be >= 1"),
    ({"spool_limit_mb": 0}, "spool_limit_mb must be >= 1"),
])
def test_config_refuses_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        RerunConfig(**bad)


def test_box_rotations_become_the_quaternions_mujoco_computes():
    rng = np.random.default_rng(0)
    for _ in range(50):
        quat_wxyz = rng.normal(size=4)
        quat_wxyz /= np.linalg.norm(quat_wxyz)
        matrix = np.empty(9)
        mujoco.mju_quat2Mat(matrix, quat_wxyz)
        ours = np.array(quaternion_xyzw(matrix.reshape(3, 3)))
        theirs = np.array([*quat_wxyz[1:], quat_wxyz[0]])
        assert min(np.abs(ours - theirs).max(), np.abs(ours + theirs).max()) < 1e-9  # q and -q are one rotation
