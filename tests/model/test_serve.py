"""The policy server speaks openpi's websocket protocol: a small checkpoint we save is served on
127.0.0.1 and driven by a client written from openpi-client's wire format (its msgpack_numpy
encoding is re-implemented here, independently of robot_io.wire.codec), and, when
OPENPI_CLIENT_PYTHON names a Python with the public `openpi-client` installed (it pins numpy < 2,
so it lives in its own virtualenv), by openpi-client itself."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import msgpack
import numpy as np
import pytest
import websockets.sync.client as ws_client
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import CloseCode

from model import serve
from model.checkpoint import (
    TRAIN_CONFIG_FILE,
    CheckpointError,
    RobotLayout,
    save_checkpoint,
)
from model.policy import InternVLAPolicy
from model.serve import (
    BadRequest,
    PolicyServer,
    ServeConfig,
    parse_request,
    serve_in_thread,
)
from robot_io.wire.codec import ProtocolError, packb, unpackb
from tests.model.helpers import CAMERAS, STATE_KEYS, small_config, small_model

TIMEOUT_S = 60.0  # every wait is bounded; generous because the test machine's cores are shared
ROBOT = "sim"
PROMPT = "pick up the red block and put it in the bin"
FRAME_SHAPE = (48, 64, 3)  # not square, not the model's size: the server letterboxes
SLOW_INFERENCE_S = 2.0
LAYOUT = RobotLayout(ROBOT, CAMERAS, STATE_KEYS, STATE_KEYS)


# ---- openpi-client's wire format, written from its msgpack_numpy.py ------------------------------


def _openpi_pack_array(obj):
    if isinstance(obj, (np.ndarray, np.generic)) and obj.dtype.kind in ("V", "O", "c"):
        raise ValueError(f"Unsupported dtype: {obj.dtype}")
    if isinstance(obj, np.ndarray):
        return {b"__ndarray__": True, b"data": obj.tobytes(), b"dtype": obj.dtype.str, b"shape": obj.shape}
    if isinstance(obj, np.generic):
        return {b"__npgeneric__": True, b"data": obj.item(), b"dtype": obj.dtype.str}
    return obj


def _openpi_unpack_array(obj):
    if b"__ndarray__" in obj:
        return np.ndarray(buffer=obj[b"data"], dtype=np.dtype(obj[b"dtype"]), shape=obj[b"shape"])
    if b"__npgeneric__" in obj:
        return np.dtype(obj[b"dtype"]).type(obj[b"data"])
    return obj


openpi_packb = functools.partial(msgpack.packb, default=_openpi_pack_array)
openpi_unpackb = functools.partial(msgpack.unpackb, object_hook=_openpi_unpack_array)


class Client:
    """openpi's WebsocketClientPolicy, with bounded waits: metadata on connect, one frame per infer."""

    def __init__(self, port: int, api_key: str | None = None) -> None:
        headers = {"Authorization": f"Api-Key {api_key}"} if api_key else None
        self.ws = ws_client.connect(
            f"ws://127.0.0.1:{port}", compression=None, max_size=None, additional_headers=headers, open_timeout=TIMEOUT_S
        )
        self.metadata = openpi_unpackb(self.ws.recv(timeout=TIMEOUT_S))

    def send_raw(self, data: bytes | str):
        self.ws.send(data)
        return self.ws.recv(timeout=TIMEOUT_S)

    def infer(self, obs: dict) -> dict:
        response = self.send_raw(openpi_packb(obs))
        if isinstance(response, str):
            raise RuntimeError(f"Error in inference server:\n{response}")  # noqa: TRY004 - as openpi-client
        return openpi_unpackb(response)

    def close(self) -> None:
        self.ws.close()


def observation(seed: int = 0, **extra) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "observation/state": rng.uniform(-0.5, 0.5, len(STATE_KEYS)).astype(np.float32),
        "images": {camera: rng.integers(0, 256, FRAME_SHAPE, dtype=np.uint8) for camera in CAMERAS},
        "prompt": PROMPT,
        **extra,
    }


def robot_observation(obs: dict) -> dict:
    """The same observation as our robots report it (InternVLAPolicy's input)."""
    return {**dict(zip(STATE_KEYS, obs["observation/state"].tolist())), **obs["images"]}


# ---- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ckpt")
    entry = {"mean": [0.0] * len(STATE_KEYS), "std": [0.1] * len(STATE_KEYS)}
    save_checkpoint(folder, small_model(), {ROBOT: {"observation.state": entry, "action": entry}})
    layout = {"robot_type": ROBOT, "cameras": CAMERAS, "state_keys": STATE_KEYS, "action_keys": STATE_KEYS}
    (folder / TRAIN_CONFIG_FILE).write_text(json.dumps({"dataset": layout}))
    return folder


@pytest.fixture
def start(checkpoint):
    """start(**config) -> (server, port) on 127.0.0.1 and a free port; stopped after the test."""
    running = []

    def _start(**overrides):
        server = PolicyServer(ServeConfig(checkpoint=checkpoint, port=0, seed=0, **overrides))
        context = serve_in_thread(server)
        port = context.__enter__()
        running.append(context)
        return server, port

    yield _start
    for context in running:
        context.__exit__(None, None, None)


def reference_actions(checkpoint: Path, obs: dict) -> np.ndarray:
    policy = InternVLAPolicy.from_checkpoint(
        checkpoint, state_keys=STATE_KEYS, action_keys=STATE_KEYS, camera_keys=CAMERAS, robot_type=ROBOT, seed=0
    )
    return policy.infer(robot_observation(obs), PROMPT).actions


# ---- the protocol ------------------------------------------------------------------------------


def test_metadata_on_connect_and_infer_returns_the_chunk_with_extras(start, checkpoint):
    _, port = start()
    client = Client(port)
    try:
        meta = client.metadata
        c = small_config()
        assert meta["protocol"] == "openpi-websocket" and meta["robot_type"] == ROBOT
        assert meta["cameras"] == CAMERAS and meta["state_keys"] == STATE_KEYS and meta["action_keys"] == STATE_KEYS
        assert meta["chunk_size"] == c.chunk_size and meta["action_dim"] == len(STATE_KEYS)

        obs = observation()
        first = client.infer(obs)
        assert first["actions"].shape == (c.chunk_size, len(STATE_KEYS)) and first["actions"].dtype == np.float32
        assert np.isfinite(first["actions"]).all()
        assert first["server_timing"]["infer_ms"] > 0 and "prev_total_ms" not in first["server_timing"]
        assert set(first["foresight"]) == set(CAMERAS)
        for picture in first["foresight"].values():
            assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[-1] == 3
        assert set(first["foresight_latents"]) == set(CAMERAS)
        assert {"prefix", "generation_decode", "denoise", "total"} <= set(first["timings_ms"])
        assert first["batch_size"] == 1
        # the server's batched path gives what the local policy gives for the same seed
        np.testing.assert_allclose(first["actions"], reference_actions(checkpoint, obs), rtol=1e-4, atol=1e-4)

        second = client.infer(observation(seed=1))
        assert second["server_timing"]["prev_total_ms"] > 0  # openpi reports the previous round trip
    finally:
        client.close()


def test_openpi_style_variants_map_to_the_robot_keys():
    obs = observation()
    chw = {camera: np.ascontiguousarray(image.transpose(2, 0, 1)) for camera, image in obs["images"].items()}
    for message in (
        obs,
        {"state": obs["observation/state"], "images": chw, "prompt": PROMPT},  # openpi ALOHA style
        {**robot_observation(obs), "prompt": PROMPT},  # our robots' own keys
    ):
        request = parse_request(message, LAYOUT)
        assert request.prompt == PROMPT
        assert [request.observation[k] for k in STATE_KEYS] == pytest.approx(obs["observation/state"].tolist())
        for camera in CAMERAS:
            np.testing.assert_array_equal(request.observation[camera], obs["images"][camera])
    partial = parse_request({**obs, "images": {"head": obs["images"]["head"]}}, LAYOUT)
    assert "wrist" not in partial.observation  # an absent view, masked out by the policy

    with pytest.raises(BadRequest, match="unknown cameras"):
        parse_request({**obs, "images": {"top": obs["images"]["head"]}}, LAYOUT)
    with pytest.raises(BadRequest, match="shape"):
        parse_request({**obs, "observation/state": np.zeros(3, np.float32)}, LAYOUT)
    with pytest.raises(BadRequest, match="no state"):
        parse_request({"prompt": PROMPT}, LAYOUT)
    with pytest.raises(BadRequest, match="prompt"):
        parse_request({**obs, "prompt": ""}, LAYOUT)
    with pytest.raises(BadRequest, match="uint8"):
        parse_request({**obs, "images": {"head": np.zeros(FRAME_SHAPE, np.float32)}}, LAYOUT)


def test_two_clients_at_once_are_batched_and_both_answered(start, checkpoint):
    # A wide window and max_batch=2: the batch closes as soon as both requests are in.
    server, port = start(batch_window_ms=10_000.0, max_batch=2)
    clients = [Client(port), Client(port)]
    observations = [observation(seed=0), observation(seed=1)]
    replies: dict[int, dict] = {}
    errors: list[BaseException] = []

    def ask(i: int) -> None:
        try:
            replies[i] = clients[i].infer(observations[i])
        except BaseException as err:  # noqa: BLE001 - reported by the test below
            errors.append(err)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT_S)
        assert not errors, errors
        assert sorted(replies) == [0, 1]
        assert server.batch_stats.sizes[2] == 1 and server.batch_stats.largest_batch == 2
        for i in range(2):
            assert replies[i]["batch_size"] == 2
            # each client got its own answer, as its own policy would give it
            np.testing.assert_allclose(replies[i]["actions"], reference_actions(checkpoint, observations[i]), rtol=1e-4, atol=1e-4)
        assert not np.allclose(replies[0]["actions"], replies[1]["actions"])
    finally:
        for client in clients:
            client.close()


def test_a_lone_client_never_waits_for_the_batch_window(start):
    window_ms = 20_000.0
    server, port = start(batch_window_ms=window_ms)
    client = Client(port)
    try:
        began = time.monotonic()
        reply = client.infer(observation())
        assert (time.monotonic() - began) * 1e3 < window_ms / 2
        assert reply["server_timing"]["queue_ms"] < window_ms / 20 and server.batch_stats.sizes[1] == 1
    finally:
        client.close()


def test_a_slow_inference_does_not_stall_other_connections(start, monkeypatch):
    real = serve.run_jobs
    busy = threading.Event()

    def slow_run_jobs(model, items):
        busy.set()
        time.sleep(SLOW_INFERENCE_S)
        return real(model, items)

    monkeypatch.setattr(serve.server, "run_jobs", slow_run_jobs)  # the name the server calls
    _, port = start(batch_window_ms=0.0)
    slow = Client(port)
    reply: dict = {}
    worker = threading.Thread(target=lambda: reply.update(slow.infer(observation())))
    try:
        worker.start()
        assert busy.wait(TIMEOUT_S)  # the slow request is now in the model
        began = time.monotonic()
        other = Client(port)  # handshake + metadata while the model is busy
        other.ws.ping().wait(TIMEOUT_S)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=TIMEOUT_S) as response:
            assert response.status == 200
        assert time.monotonic() - began < SLOW_INFERENCE_S / 2
        other.close()
        worker.join(TIMEOUT_S)
        assert reply["actions"].shape[0] == small_config().chunk_size
    finally:
        slow.close()


# ---- bad input ---------------------------------------------------------------------------------


def _expect_error_then_close(client: Client, data: bytes | str, code: CloseCode) -> str:
    """openpi's error path: a text frame with the message, then the connection closes."""
    text = client.send_raw(data)
    assert isinstance(text, str)
    with pytest.raises(ConnectionClosed) as closed:
        client.ws.recv(timeout=TIMEOUT_S)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code
    return text


def test_malformed_messages_get_a_clear_error_and_others_keep_being_served(start):
    _, port = start()
    bad_inputs = {
        b"\xc1": "not a valid msgpack",  # 0xc1 is never used by msgpack
        "a text frame": "binary msgpack",
        openpi_packb([1, 2, 3]): "map",
        openpi_packb({"prompt": PROMPT}): "no state",
        msgpack.packb({b"__ndarray__": True, b"data": b"\x00" * 8, b"dtype": "|O", b"shape": [1]}): "no pickle",
        msgpack.packb({b"__ndarray__": True, b"data": b"\x00" * 3, b"dtype": "<f4", b"shape": [1]}): "needs 4 bytes",
    }
    for data, message in bad_inputs.items():
        bad = Client(port)
        text = _expect_error_then_close(bad, data, CloseCode.POLICY_VIOLATION)
        assert "bad request" in text and message in text, text
    good = Client(port)
    try:
        assert good.infer(observation())["actions"].shape == (small_config().chunk_size, len(STATE_KEYS))
    finally:
        good.close()


def test_oversized_messages_are_cut_off_and_others_keep_being_served(start):
    limit = 64 * 2**10
    _, port = start(max_message_bytes=limit)
    big = Client(port)
    assert big.metadata["max_message_bytes"] == limit
    obs = observation()
    obs["images"]["head"] = np.zeros((256, 256, 3), np.uint8)  # 192 KiB
    big.ws.send(openpi_packb(obs))
    with pytest.raises(ConnectionClosed) as closed:
        big.ws.recv(timeout=TIMEOUT_S)
    assert closed.value.rcvd.code == CloseCode.MESSAGE_TOO_BIG and "exceeds limit" in closed.value.rcvd.reason
    good = Client(port)
    try:
        assert good.infer(observation())["actions"].shape[0] == small_config().chunk_size
    finally:
        good.close()


def test_a_token_protected_server_refuses_a_wrong_token(start):
    _, port = start(token="s3cret")
    for key in (None, "wrong"):
        with pytest.raises(InvalidStatus) as refused:
            Client(port, api_key=key)
        assert refused.value.response.status_code == 401
    client = Client(port, api_key="s3cret")
    try:
        assert client.infer(observation())["actions"].shape[0] == small_config().chunk_size
    finally:
        client.close()


def test_the_codec_never_builds_or_sends_object_arrays():
    with pytest.raises(TypeError, match="no pickle"):
        packb({"x": np.array([object()], dtype=object)})
    for dtype in ("|O", "|V8", "i4,f4", "<c8", "<U2", "<M8[s]"):
        raw = msgpack.packb({b"__ndarray__": True, b"data": b"\x00" * 8, b"dtype": dtype, b"shape": [1]})
        with pytest.raises(ProtocolError):
            unpackb(raw)
    array = np.arange(12, dtype=np.int16).reshape(3, 4)
    back = unpackb(packb({"a": array, "s": np.float32(1.5), "t": "x"}))
    np.testing.assert_array_equal(back["a"], array)
    assert back["s"] == np.float32(1.5) and back["s"].dtype == np.float32 and back["t"] == "x"
    np.testing.assert_array_equal(openpi_unpackb(packb(array)), array)  # readable by openpi's decoder


def test_observe_only_and_reset_requests(start):
    _, port = start()
    client = Client(port)
    try:
        reply = client.infer({**observation(), "observe_only": True})
        assert reply["observed"] is True and "actions" not in reply
        assert client.infer(observation(reset=True))["actions"].shape[0] == small_config().chunk_size
    finally:
        client.close()


# ---- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"port": -1}, "port"),
        ({"port": 70000}, "port"),
        ({"max_message_bytes": 0}, "max_message_bytes"),
        ({"batch_window_ms": -1.0}, "batch_window_ms"),
        ({"max_batch": 0}, "max_batch"),
        ({"token": ""}, "token"),
        ({"host": ""}, "host"),
    ],
)
def test_config_is_validated(change, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        ServeConfig(checkpoint=tmp_path, **change)


def test_defaults_bind_loopback_and_hide_the_token(tmp_path):
    config = ServeConfig(checkpoint=tmp_path, token="s3cret")
    assert config.host == "127.0.0.1" and "s3cret" not in repr(config)
    assert serve.parse_args(["--checkpoint", str(tmp_path)]).host == "127.0.0.1"


def test_a_checkpoint_without_a_layout_is_refused(tmp_path):
    save_checkpoint(tmp_path, small_model(), {ROBOT: {}})
    with pytest.raises(CheckpointError, match="train_config.json"):
        PolicyServer(ServeConfig(checkpoint=tmp_path))


# ---- the public openpi-client, from its own virtualenv -----------------------------------------

OPENPI_SCRIPT = """
import json, sys
import numpy as np
from openpi_client import websocket_client_policy
port, key = int(sys.argv[1]), sys.argv[2]
client = websocket_client_policy.WebsocketClientPolicy(host="127.0.0.1", port=port, api_key=key)
rng = np.random.default_rng(0)
obs = {
    "state": rng.uniform(-0.5, 0.5, 7).astype(np.float32),
    "images": {cam: rng.integers(0, 256, (3, 48, 64), dtype=np.uint8) for cam in ("head", "wrist", "side")},
    "prompt": "pick up the red block and put it in the bin",
}
out = client.infer(obs)
print(json.dumps({
    "metadata": client.get_server_metadata(),
    "actions": list(out["actions"].shape),
    "dtype": str(out["actions"].dtype),
    "infer_ms": out["server_timing"]["infer_ms"],
    "foresight": sorted(out["foresight"]),
}))
"""


@pytest.mark.skipif(not os.environ.get("OPENPI_CLIENT_PYTHON"), reason="set OPENPI_CLIENT_PYTHON to a Python with openpi-client")
def test_the_public_openpi_client_works_unchanged(start):
    _, port = start(token="s3cret")
    done = subprocess.run(
        [os.environ["OPENPI_CLIENT_PYTHON"], "-c", OPENPI_SCRIPT, str(port), "s3cret"],
        capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["metadata"]["action_keys"] == STATE_KEYS
    assert result["actions"] == [small_config().chunk_size, len(STATE_KEYS)] and result["dtype"] == "float32"
    assert result["infer_ms"] > 0 and result["foresight"] == sorted(CAMERAS)
