"""--policy-url: the console drives the sim with a policy served by model.serve (a small checkpoint
made here for the sim's layout), and the status bar splits the inference time into model and
network."""

import socket

import pytest

from app import build_remote_policy, main, parse_args
from model.serve import PolicyServer, ServeConfig, serve_in_thread
from robot_io.wire.remote_policy import RemotePolicy
from robot_io.sim.conveyor_env import ConveyorSimConfig
from robot_io.sim.sim_robot import SimRobot
from runtime.control.commands import RunPolicy
from runtime.control.session import Session, SessionConfig
from tests.model.helpers import write_served_checkpoint
from tests.session_support import wait_until
from ui.status_bar import render_status

IMAGE = 64
TOKEN = "lab-token"


def test_a_policy_url_drives_the_sim_and_the_status_bar_shows_model_and_network(tmp_path):
    robot = SimRobot(ConveyorSimConfig(image_height=IMAGE, image_width=IMAGE))
    write_served_checkpoint(tmp_path / "ckpt", robot)
    server = PolicyServer(ServeConfig(checkpoint=tmp_path / "ckpt", port=0, token=TOKEN))
    with serve_in_thread(server) as port:
        args = parse_args(["--policy-url", f"ws://127.0.0.1:{port}", "--policy-token", TOKEN])
        policy = build_remote_policy(args, robot)
        assert isinstance(policy, RemotePolicy)
        session = Session(robot, policy, SessionConfig(fps=15, max_step_per_tick=0.05))
        session.start()
        try:
            session.submit(RunPolicy("pick up the red block and put it in the bin"))
            snapshot = wait_until(lambda s: s.action_source == "policy", session, timeout_s=60)
            status = render_status(snapshot)
            assert "inference" in status and "(model " in status and " + network " in status
        finally:
            session.close()
            policy.close()
    assert session.loop_error is None


def test_an_unreachable_policy_url_stops_the_start_with_the_reason(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, never listening
        url = f"ws://127.0.0.1:{s.getsockname()[1]}"
        assert main(["--policy-url", url, "--no-record"]) == 2
    assert f"cannot reach the policy server at {url}" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "localhost:8000"])
def test_a_policy_url_that_is_not_a_websocket_is_refused(url, capsys):
    assert main(["--policy-url", url, "--no-record"]) == 2
    assert "ws://HOST:PORT" in capsys.readouterr().err
