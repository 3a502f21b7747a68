"""The LeRobot gRPC client against LeRobot's own policy server (a child process on 127.0.0.1 serving
a tiny random ACT made here for the sim's features), and against servers that are not it."""

from __future__ import annotations

import http.server
import io
import os
import pickle
import socket
import threading
import time
from concurrent import futures

import grpc
import lerobot
import numpy as np
import pytest
import torch
import websockets.sync.server as ws_sync_server
from lerobot.async_inference.helpers import raw_observation_to_observation
from lerobot.policies import make_pre_post_processors
from lerobot.policies.act.modeling_act import ACTPolicy
from lerobot.transport import services_pb2, services_pb2_grpc
from lerobot.utils.constants import OBS_STR
from lerobot.utils.feature_utils import hw_to_dataset_features

from robot_io.devices.robot import camera_keys, camera_shapes, state_keys
from robot_io.sim.conveyor_env import ConveyorSimConfig
from robot_io.sim.sim_robot import SimRobot
from robot_io.wire.lerobot_grpc_policy import LeRobotGrpcPolicy, LeRobotServerConfig
from robot_io.wire.remote_policy import RemotePolicyError
from tests.browser_support import free_port
from tests.robot_io.wire.lerobot_server_support import CHUNK, lerobot_policy_server, write_tiny_act

IMAGE = 64
PROMPT = "pick up the red block"
SHORT_TIMEOUTS = {"connect_timeout_s": 1.0, "load_timeout_s": 5.0, "reply_timeout_s": 1.0}


@pytest.fixture(scope="module")
def robot():
    sim = SimRobot(ConveyorSimConfig(image_height=IMAGE, image_width=IMAGE))
    sim.connect()
    yield sim
    sim.disconnect()


def cameras_of(robot) -> dict[str, tuple[int, int, int]]:
    return camera_shapes(robot)


def write_act_for(folder, robot, cameras=None):
    limits = robot.joint_limits
    keys = list(robot.action_features)
    return write_tiny_act(folder, state_keys(robot), cameras or cameras_of(robot), [limits[k][0] for k in keys],
                          [limits[k][1] for k in keys])


@pytest.fixture(scope="module")
def server(tmp_path_factory, robot):
    """(port, folder): the server runs in `folder`, which holds "act" (the sim's features),
    "act_top" (a policy reading a camera the sim does not have) and "act_two" (one reading two of
    the sim's three cameras)."""
    folder = tmp_path_factory.mktemp("lerobot_server")
    write_act_for(folder / "act", robot)
    write_act_for(folder / "act_top", robot, cameras={"top": (IMAGE, IMAGE, 3)})
    write_act_for(folder / "act_two", robot, cameras={c: s for c, s in cameras_of(robot).items() if c != "side"})
    with lerobot_policy_server(folder / "server.log") as port:
        yield port, folder


def client(url, policy_path, robot, **config) -> LeRobotGrpcPolicy:
    return LeRobotGrpcPolicy(LeRobotServerConfig(url, policy_path=str(policy_path), **config), state_keys=state_keys(robot),
                             action_keys=list(robot.action_features), cameras=cameras_of(robot))


def expected_chunk(checkpoint, robot, observation) -> np.ndarray:
    """What LeRobot's own pipeline makes of this observation, run here: the raw observation built by
    hand from the robot's keys, so the client's mapping is what is checked."""
    policy = ACTPolicy.from_pretrained(checkpoint).eval()
    preprocessor, postprocessor = make_pre_post_processors(policy.config, pretrained_path=str(checkpoint))
    raw = {key: observation[key] for key in state_keys(robot)} | {key: observation[key] for key in camera_keys(robot)}
    lerobot_features = hw_to_dataset_features(robot.observation_features, OBS_STR, use_video=False)
    batch = preprocessor(raw_observation_to_observation({**raw, "task": PROMPT}, lerobot_features,
                                                        policy.config.image_features))
    with torch.no_grad():
        chunk = policy.predict_action_chunk(batch)  # (1, steps, action_dim)
    return torch.stack([postprocessor(chunk[:, i]) for i in range(chunk.shape[1])], dim=1)[0].numpy()


def test_infer_returns_the_servers_chunk_for_each_observation(server, robot):
    port, folder = server
    policy = client(f"grpc://127.0.0.1:{port}", folder / "act", robot)
    try:
        assert policy.policy_type == "act"  # read from the checkpoint's config.json
        observation = robot.get_observation()
        first = policy.infer(observation, PROMPT)
        # The same observation again: the server's similarity filter would drop it without must_go.
        second = policy.infer(observation, PROMPT)
    finally:
        policy.close()
    for output in (first, second):
        assert output.actions.shape == (CHUNK, len(robot.action_features)) and output.actions.dtype == np.float32
        assert np.isfinite(output.actions).all() and output.foresight is None
        assert set(output.timings_ms) == {"model", "network", "round_trip"}
    np.testing.assert_allclose(first.actions, expected_chunk(folder / "act", robot, observation), atol=1e-4)
    np.testing.assert_allclose(second.actions, first.actions, atol=1e-5)
    assert not policy.chunk_starts_next_tick  # LeRobot stamps actions[0] with the observation's own timestep


def test_a_policy_reading_fewer_cameras_than_the_robot_has_gets_only_those(server, robot):
    port, folder = server
    policy = client(f"grpc://127.0.0.1:{port}", folder / "act_two", robot)
    try:
        assert list(policy.cameras) == [c for c in camera_keys(robot) if c != "side"]
        output = policy.infer(robot.get_observation(), PROMPT)
    finally:
        policy.close()
    assert output.actions.shape == (CHUNK, len(robot.action_features)) and np.isfinite(output.actions).all()


def test_a_lost_server_fails_the_call_and_the_next_call_connects_again(server, robot):
    _, folder = server
    with lerobot_policy_server(folder / "restarted.log") as port:
        policy = client(f"grpc://127.0.0.1:{port}", folder / "act", robot)
    try:
        with pytest.raises(RemotePolicyError, match=f"lost the policy server at grpc://127.0.0.1:{port}"):
            policy.infer(robot.get_observation(), PROMPT)
        with lerobot_policy_server(folder / "restarted.log", port=port):  # back: the next call loads the policy again
            assert policy.infer(robot.get_observation(), PROMPT).actions.shape == (CHUNK, len(robot.action_features))
    finally:
        policy.close()


def test_a_checkpoint_readable_here_for_other_cameras_is_refused_with_both_lists(server, robot):
    port, folder = server
    with pytest.raises(RemotePolicyError) as refused:
        client(f"grpc://127.0.0.1:{port}", folder / "act_top", robot)
    message = str(refused.value)
    assert "cameras ['top'] are missing" in message and str(camera_keys(robot)) in message


def test_a_policy_on_the_servers_disk_for_other_features_is_refused_at_connect(server, robot):
    port, folder = server
    # A path relative to the server's folder: not readable here, so the probe inference is the check.
    assert not os.path.exists("act_top")
    with pytest.raises(RemotePolicyError) as refused:
        client(f"grpc://127.0.0.1:{port}", "act_top", robot, policy_type="act")
    message = str(refused.value)
    assert "returned no actions" in message and "probe at connect" in message and str(camera_keys(robot)) in message


def test_a_checkpoint_the_server_cannot_load_is_refused_with_its_reason(server, robot):
    port, folder = server
    with pytest.raises(RemotePolicyError, match="could not load act policy 'no_such_checkpoint'"):
        client(f"grpc://127.0.0.1:{port}", "no_such_checkpoint", robot, policy_type="act")


def test_nothing_listening_is_refused_at_once(robot):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, never listening
        with pytest.raises(RemotePolicyError, match="cannot reach the policy server at grpc://"):
            client(f"grpc://127.0.0.1:{s.getsockname()[1]}", "act", robot, policy_type="act", **SHORT_TIMEOUTS)


def _silent_tcp(listener: socket.socket, stop: threading.Event) -> None:
    listener.settimeout(0.1)
    held = []
    while not stop.is_set():
        try:
            held.append(listener.accept()[0])  # accepted, never answered
        except TimeoutError:
            continue
    for connection in held:
        connection.close()


@pytest.fixture(params=["tcp", "http", "websocket"])
def not_grpc_server(request):
    """The port of a server that does not speak gRPC: a silent TCP socket, an HTTP server, a
    websocket server (openpi's transport)."""
    stop = threading.Event()
    if request.param == "tcp":
        listener = socket.create_server(("127.0.0.1", 0))
        thread = threading.Thread(target=_silent_tcp, args=(listener, stop), daemon=True)
        thread.start()
        yield listener.getsockname()[1]
        stop.set()
        thread.join(timeout=5)
        listener.close()
    elif request.param == "http":
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        yield httpd.server_address[1]
        httpd.shutdown()
        httpd.server_close()
    else:
        with ws_sync_server.serve(lambda ws: ws.send(b"metadata"), "127.0.0.1", 0) as wss:
            thread = threading.Thread(target=wss.serve_forever, daemon=True)
            thread.start()
            yield wss.socket.getsockname()[1]
            wss.shutdown()


def test_a_server_that_is_not_grpc_is_refused_within_the_connect_timeout(not_grpc_server, robot):
    with pytest.raises(RemotePolicyError, match="no gRPC server answered within 1 s: it is not LeRobot's policy server"):
        client(f"grpc://127.0.0.1:{not_grpc_server}", "act", robot, policy_type="act", **SHORT_TIMEOUTS)


class OlderLeRobotServer(services_pb2_grpc.AsyncInferenceServicer):
    """A LeRobot policy server of an older release, whose classes lived in lerobot.scripts.server:
    unpickling this console's instructions fails there as it does in that release."""

    def Ready(self, request, context):  # noqa: N802
        return services_pb2.Empty()

    def SendPolicyInstructions(self, request, context):  # noqa: N802
        class OldUnpickler(pickle.Unpickler):
            def find_class(self, module, name):
                return super().find_class(module.replace("lerobot.async_inference", "lerobot.scripts.server"), name)

        OldUnpickler(io.BytesIO(request.data)).load()
        return services_pb2.Empty()


class AcceptingServer(services_pb2_grpc.AsyncInferenceServicer):
    """Takes the handshake and observations as LeRobot's server does; GetActions is each subclass's."""

    def Ready(self, request, context):  # noqa: N802
        return services_pb2.Empty()

    def SendPolicyInstructions(self, request, context):  # noqa: N802
        return services_pb2.Empty()

    def SendObservations(self, request_iterator, context):  # noqa: N802
        for _ in request_iterator:
            pass
        return services_pb2.Empty()


class SlowServer(AcceptingServer):
    """Answers GetActions only after `delay_s`."""

    def __init__(self, delay_s):
        self.delay_s = delay_s

    def GetActions(self, request, context):  # noqa: N802
        time.sleep(self.delay_s)
        return services_pb2.Empty()


class ArbitraryPickleServer(AcceptingServer):
    """Answers with a pickle that would run a command if the client unpickled it freely."""

    def __init__(self, marker):
        self.marker = marker

    def GetActions(self, request, context):  # noqa: N802
        marker = self.marker

        class Payload:
            def __reduce__(self):
                return (os.mkdir, (str(marker),))

        return services_pb2.Actions(data=pickle.dumps([Payload()]))


@pytest.fixture
def grpc_server():
    """start(servicer or None) -> port of a gRPC server on 127.0.0.1 (None: one with no service)."""
    servers = []

    def start(servicer) -> int:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        if servicer is not None:
            services_pb2_grpc.add_AsyncInferenceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return port

    yield start
    for server in servers:
        server.stop(grace=None)


def test_a_grpc_server_that_is_not_lerobots_is_refused(grpc_server, robot):
    port = grpc_server(None)
    with pytest.raises(RemotePolicyError, match="is not LeRobot's async-inference policy server"):
        client(f"grpc://127.0.0.1:{port}", "act", robot, policy_type="act", **SHORT_TIMEOUTS)


def test_a_server_of_another_lerobot_version_is_refused_with_that_reason(grpc_server, robot):
    port = grpc_server(OlderLeRobotServer())
    with pytest.raises(RemotePolicyError, match=f"the server runs another LeRobot version than this console's {lerobot.__version__}"):
        client(f"grpc://127.0.0.1:{port}", "act", robot, policy_type="act", **SHORT_TIMEOUTS)


def test_a_server_slower_than_the_reply_timeout_is_refused_in_that_time(grpc_server, robot):
    port = grpc_server(SlowServer(delay_s=3 * SHORT_TIMEOUTS["reply_timeout_s"]))
    started = time.monotonic()
    with pytest.raises(RemotePolicyError, match="sent no chunk for observation #0 within 1 s"):
        client(f"grpc://127.0.0.1:{port}", "act", robot, policy_type="act", **SHORT_TIMEOUTS)
    assert time.monotonic() - started < 2 * SHORT_TIMEOUTS["reply_timeout_s"] + SHORT_TIMEOUTS["connect_timeout_s"]


def test_a_reply_that_is_not_an_action_chunk_runs_nothing_and_is_refused(grpc_server, robot, tmp_path):
    marker = tmp_path / "ran"
    port = grpc_server(ArbitraryPickleServer(marker))
    with pytest.raises(RemotePolicyError, match="sent a reply this console cannot read"):
        client(f"grpc://127.0.0.1:{port}", "act", robot, policy_type="act", **SHORT_TIMEOUTS)
    assert not marker.exists()


@pytest.mark.parametrize(("url", "fields", "reason"), [
    ("grpc://127.0.0.1", {"policy_path": "act"}, "grpc://HOST:PORT"),
    ("grpc://127.0.0.1:8080/act", {"policy_path": "act"}, "nothing more"),
    ("ws://127.0.0.1:8080", {"policy_path": "act"}, "grpc://HOST:PORT"),
    ("grpc://127.0.0.1:8080", {}, "--server-policy"),
    ("grpc://127.0.0.1:8080", {"policy_path": "act", "policy_type": "gpt"}, "not one LeRobot's policy server runs"),
    ("grpc://127.0.0.1:8080", {"policy_path": "act", "reply_timeout_s": 0}, "reply_timeout_s"),
])
def test_a_bad_config_is_refused_with_the_reason(url, fields, reason):
    with pytest.raises(ValueError, match=reason):
        LeRobotServerConfig(url, **fields)


def test_a_checkpoint_not_readable_here_needs_its_type(robot):
    with pytest.raises(RemotePolicyError, match="--server-policy-type"):
        client(f"grpc://127.0.0.1:{free_port()}", "elsewhere/act", robot)
