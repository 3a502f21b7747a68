"""--policy-url grpc://: the console drives the sim with a policy served by LeRobot's own
async-inference policy server (a tiny random ACT made here for the sim's features), and a start
against a server that is not there stops with the reason."""

import socket

import numpy as np

from app import build_remote_policy, main, parse_args
from robot_io.devices.robot import camera_keys, state_keys
from robot_io.sim.conveyor_env import ConveyorSimConfig
from robot_io.sim.sim_robot import SimRobot
from robot_io.wire.lerobot_grpc_policy import LeRobotGrpcPolicy
from runtime.control.commands import RunPolicy
from runtime.control.session import Session, SessionConfig
from tests.robot_io.wire.lerobot_server_support import lerobot_policy_server, write_tiny_act
from tests.session_support import wait_until
from ui.status_bar import render_status

IMAGE = 64
CHUNKS = 3  # chunks the session runs before the test looks at what moved


def test_a_grpc_policy_url_drives_the_sim_chunk_after_chunk(tmp_path):
    robot = SimRobot(ConveyorSimConfig(image_height=IMAGE, image_width=IMAGE))
    keys, limits = list(robot.action_features), robot.joint_limits
    write_tiny_act(tmp_path / "act", state_keys(robot), {c: robot.observation_features[c] for c in camera_keys(robot)},
                   [limits[k][0] for k in keys], [limits[k][1] for k in keys])
    with lerobot_policy_server(tmp_path / "server.log") as port:
        args = parse_args(["--policy-url", f"grpc://127.0.0.1:{port}", "--server-policy", str(tmp_path / "act")])
        policy = build_remote_policy(args, robot)
        assert isinstance(policy, LeRobotGrpcPolicy)
        session = Session(robot, policy, SessionConfig(fps=15, max_step_per_tick=0.05))
        session.start()
        try:
            before = wait_until(lambda s: s.tick >= 1, session, timeout_s=30)
            session.submit(RunPolicy("pick up the red block and put it in the bin"))
            first = wait_until(lambda s: s.action_source == "policy" and s.chunk_id is not None, session, timeout_s=60)
            later = wait_until(lambda s: s.chunk_id is not None and s.chunk_id >= first.chunk_id + CHUNKS, session,
                               timeout_s=60)
            status = render_status(later)
        finally:
            session.close()
            policy.close()
    assert session.loop_error is None and not later.last_error
    moved = np.abs(np.array([later.state[k] for k in keys]) - np.array([before.state[k] for k in keys])).max()
    assert moved > 1e-3
    assert "(model " in status and " + network " in status


def test_an_unreachable_grpc_policy_url_stops_the_start_with_the_reason(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, never listening
        url = f"grpc://127.0.0.1:{s.getsockname()[1]}"
        assert main(["--policy-url", url, "--server-policy", "act", "--server-policy-type", "act", "--no-record"]) == 2
    assert f"cannot reach the policy server at {url}" in capsys.readouterr().err


def test_a_grpc_policy_url_without_the_servers_checkpoint_is_refused(capsys):
    assert main(["--policy-url", "grpc://127.0.0.1:8080", "--no-record"]) == 2
    assert "--server-policy" in capsys.readouterr().err
