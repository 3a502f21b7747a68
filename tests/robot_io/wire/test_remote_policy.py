"""The remote policy against the real policy server (model/serve.py) on 127.0.0.1, serving a small
checkpoint made here for our fake robot's layout."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest
import websockets.sync.server as ws_sync_server

from model.policy import InternVLAPolicy
from model.serve import PolicyServer, ServeConfig, serve_in_thread
from robot_io.wire.remote_policy import RemotePolicy, RemotePolicyConfig, RemotePolicyError
from runtime.control.commands import Mode, RunPolicy
from runtime.control.session import Session, SessionConfig
from tests.fakes import CAMERAS, FRAME_SHAPE, JOINTS, FakeRobot
from tests.model.helpers import small_config, write_served_checkpoint
from tests.session_support import wait_until

PROMPT = "pick up the red block"
TOKEN = "s3cret-token"
HISTORY_TICKS = 20  # more than the model's frame history (15), so frame t-15 is a real past frame


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    write_served_checkpoint(folder, FakeRobot())
    return folder


@pytest.fixture
def serve(checkpoint):
    """serve(port=0, **ServeConfig) -> port of a running server; stop(port) ends one early."""
    running = {}

    def start(port: int = 0, **overrides) -> int:
        context = serve_in_thread(PolicyServer(ServeConfig(checkpoint=checkpoint, port=port, seed=0, **overrides)))
        bound = context.__enter__()
        running[bound] = context
        return bound

    def stop(port: int) -> None:
        running.pop(port).__exit__(None, None, None)

    start.stop = stop
    yield start
    for context in running.values():
        context.__exit__(None, None, None)


def remote(port: int, action_keys=JOINTS, cameras=CAMERAS, **config) -> RemotePolicy:
    return RemotePolicy(RemotePolicyConfig(f"ws://127.0.0.1:{port}", **config),
                        state_keys=JOINTS, action_keys=list(action_keys), camera_keys=list(cameras))


def observations(count: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {**{k: float(v) for k, v in zip(JOINTS, rng.uniform(-0.3, 0.3, len(JOINTS)))},
         **{c: rng.integers(0, 256, FRAME_SHAPE, dtype=np.uint8) for c in CAMERAS}}
        for _ in range(count)
    ]


def test_remote_inference_matches_the_local_model_with_its_frame_history(serve, checkpoint):
    port = serve()
    policy = remote(port)
    local = InternVLAPolicy.from_checkpoint(checkpoint, state_keys=JOINTS, action_keys=JOINTS, camera_keys=CAMERAS,
                                            robot_type=FakeRobot.name, seed=0)
    try:
        assert policy.foresight_horizon == small_config().foresight.history_steps
        ticks = observations(HISTORY_TICKS)
        for observation in ticks:  # pipelined observe_only requests, as the runner sends every tick
            policy.observe(observation)
            local.observe(observation)
        output = policy.infer(ticks[-1], PROMPT)
        expected = local.infer(ticks[-1], PROMPT)
        assert output.actions.shape == expected.actions.shape and output.actions.dtype == np.float32
        np.testing.assert_allclose(output.actions, expected.actions, rtol=1e-4, atol=1e-4)
        assert set(output.foresight) == set(CAMERAS) and set(output.foresight_latents) == set(CAMERAS)
        for camera in CAMERAS:  # the same pictures, up to rounding in the server's batched path
            np.testing.assert_allclose(output.foresight[camera].astype(int), expected.foresight[camera].astype(int), atol=1)
        assert {"model", "queue", "network", "round_trip", "server_denoise"} <= set(output.timings_ms)
        assert output.timings_ms["model"] > 0
    finally:
        policy.close()


def test_actions_come_back_in_the_robots_order(serve):
    port = serve()
    ticks = observations(1)
    straight, reversed_ = remote(port), remote(port, action_keys=JOINTS[::-1])
    try:
        np.testing.assert_allclose(reversed_.infer(ticks[0], PROMPT).actions, straight.infer(ticks[0], PROMPT).actions[:, ::-1],
                                   rtol=1e-4, atol=1e-4)  # both connections' noise starts from seed 0
    finally:
        straight.close()
        reversed_.close()


def test_a_robot_without_the_servers_cameras_or_actions_is_refused_with_both_lists(serve):
    port = serve()
    with pytest.raises(RemotePolicyError, match="another layout") as err:
        remote(port, action_keys=["joint_1.pos", "elbow.pos", "gripper.pos"], cameras=["head", "front"])
    message = str(err.value)
    assert "['wrist']" in message and "'front'" in message  # the missing camera and what the robot has
    assert "elbow.pos" in message and "joint_2.pos" in message


def test_a_token_protected_server_refuses_a_missing_token_and_takes_the_right_one(serve):
    port = serve(token=TOKEN)
    with pytest.raises(RemotePolicyError, match="HTTP 401.*token"):
        remote(port)
    with pytest.raises(RemotePolicyError, match="HTTP 401"):
        remote(port, token="wrong-token")
    policy = remote(port, token=TOKEN)
    try:
        assert policy.infer(observations(1)[0], PROMPT).actions.shape[1] == len(JOINTS)
    finally:
        policy.close()


def test_a_server_that_goes_away_fails_clearly_and_the_next_call_reconnects(serve):
    port = serve()
    policy = remote(port)
    ticks = observations(3)
    try:
        policy.infer(ticks[0], PROMPT)
        serve.stop(port)
        with pytest.raises(RemotePolicyError, match=f"ws://127.0.0.1:{port}"):
            policy.observe(ticks[1])
            policy.infer(ticks[1], PROMPT)
        policy.observe(ticks[1])  # disconnected: dropped, no error
        with pytest.raises(RemotePolicyError, match="cannot reach"):
            policy.infer(ticks[1], PROMPT)  # still down: one connection attempt, refused
        serve(port=port)
        assert policy.infer(ticks[2], PROMPT).actions.shape[1] == len(JOINTS)
    finally:
        policy.close()


def test_the_session_holds_when_the_server_goes_away_and_says_why(serve):
    port = serve()
    robot = FakeRobot()
    session = Session(robot, remote(port), SessionConfig(fps=30))
    session.start()
    try:
        session.submit(RunPolicy(PROMPT))
        snapshot = wait_until(lambda s: s.inference_ms is not None, session, timeout_s=60)
        assert {"model", "network"} <= set(snapshot.inference_timings_ms)
        serve.stop(port)
        held = wait_until(lambda s: s.mode is Mode.PAUSED, session, timeout_s=60)
        assert f"ws://127.0.0.1:{port}" in held.last_error
        sent = len(robot.sent)
        wait_until(lambda s: len(robot.sent) > sent + 3, session)  # the loop still ticks, holding
    finally:
        session.close()
    assert session.loop_error is None


def test_a_server_that_is_not_openpi_is_refused_at_connect():
    def handler(connection):
        connection.send("hello")  # text, not msgpack metadata

    with ws_sync_server.serve(handler, "127.0.0.1", 0) as server:
        port = server.socket.getsockname()[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        with pytest.raises(RemotePolicyError, match="no openpi metadata"):
            remote(port)
        server.shutdown()


def test_nothing_listening_is_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused
        with pytest.raises(RemotePolicyError, match=f"cannot reach the policy server at ws://127.0.0.1:{port}"):
            remote(port)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "127.0.0.1:8000", "ws://", "ws://host:99999"])
def test_bad_urls_are_refused(url):
    with pytest.raises(ValueError, match="URL"):
        RemotePolicyConfig(url)


def test_a_token_with_spaces_is_refused():
    with pytest.raises(ValueError, match="token"):
        RemotePolicyConfig("ws://127.0.0.1:8000", token=" x ")
