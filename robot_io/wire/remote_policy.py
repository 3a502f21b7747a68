"""A policy served elsewhere: the client side of openpi's websocket protocol (model/serve.py, or any
openpi server).

    policy = RemotePolicy(RemotePolicyConfig("ws://gpu-box:8000", token="..."),
                          state_keys=..., action_keys=..., camera_keys=...)

On connect the server sends its metadata; when it names its layout (our server does: "cameras",
"state_keys", "action_keys"), the robot must provide every camera and state key it reads and have
exactly its action keys, or the policy is refused with both lists. Each call is one binary msgpack
frame out ("observation/state" in the server's order, "images" {camera: uint8 (H, W, 3)},
"prompt") and one back ("actions", "server_timing", and our server's extra keys: foresight
pictures, latents, per-stage timings).

Timings: `timings_ms["model"]` is the server's model time (its `server_timing.infer_ms`),
`"queue"` the time the request waited there for a batch, `"network"` the rest of the measured round
trip (transfer plus msgpack on both ends), `"round_trip"` the whole.

Frame history: InternVLA-A1 reads frame t-15, so when the server announces a "foresight_horizon"
(ours does; it keeps that many ticks of frames) every control tick's frames are sent as an
`observe_only` request. Those are pipelined (sent without waiting; their acknowledgements are read
before the next reply), so the control rate does not pay one network round trip per tick.

A server that goes away: the call raises RemotePolicyError naming the URL and what happened (the
session holds on it), and the next `infer` connects again. Frames observed while disconnected are
dropped: a new connection starts a new frame history on the server.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import numpy as np
import websockets
import websockets.sync.client as ws_client
from websockets.exceptions import InvalidStatus

from robot_io.policy import Policy, PolicyOutput
from robot_io.wire.codec import ProtocolError, packb, unpackb
from robot_io.wire.protocol import (
    AUTH_HEADER, AUTH_SCHEME, IMAGES_KEY, LAYOUT_KEYS, OBSERVE_ONLY_KEY, OBSERVED_KEY, PROMPT_KEY, RESET_KEY, SERVER_TIMING_KEY,
    STATE_KEY, TOKEN_ENV,
)

SCHEMES = ("ws", "wss")
DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_REPLY_TIMEOUT_S = 30.0  # one model call on a loaded server, with room to spare
DEFAULT_MAX_REPLY_BYTES = 64 * 2**20  # foresight pictures and latents of every camera ride along
MAX_PIPELINED_OBSERVATIONS = 32  # observe_only requests in flight before the client waits for acknowledgements


class RemotePolicyError(RuntimeError):
    """The policy server cannot be used right now; the message names it and says why."""


@dataclass(frozen=True)
class RemotePolicyConfig:
    url: str  # ws://HOST:PORT (or wss://)
    token: str | None = field(default=None, repr=False)  # sent as "Authorization: Api-Key <token>"
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    reply_timeout_s: float = DEFAULT_REPLY_TIMEOUT_S
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES

    def __post_init__(self) -> None:
        parsed = urlparse(self.url) if isinstance(self.url, str) else None
        if parsed is None or parsed.scheme not in SCHEMES or not parsed.hostname:
            raise ValueError(f"policy URL must look like ws://HOST:PORT (or wss://), got {self.url!r}")
        try:
            parsed.port  # noqa: B018 - raises on a port that is not a number in range
        except ValueError as err:
            raise ValueError(f"policy URL {self.url!r} has a bad port: {err}") from err
        if self.token is not None and (not isinstance(self.token, str) or not self.token.strip() or self.token != self.token.strip()):
            raise ValueError("policy token must be a non-empty string without surrounding spaces (or None for no token)")
        for name in ("connect_timeout_s", "reply_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if isinstance(self.max_reply_bytes, bool) or not isinstance(self.max_reply_bytes, int) or self.max_reply_bytes <= 0:
            raise ValueError(f"max_reply_bytes must be a positive int, got {self.max_reply_bytes!r}")


class RemotePolicy(Policy):
    name = "remote"

    def __init__(self, config: RemotePolicyConfig, *, state_keys: Sequence[str], action_keys: Sequence[str],
                 camera_keys: Sequence[str]) -> None:
        """Connects now, so a wrong URL, token or layout is refused before anything runs."""
        self.config = config
        self.state_keys, self.action_keys, self.camera_keys = list(state_keys), list(action_keys), list(camera_keys)
        self.metadata: dict[str, Any] = {}
        self._ws: ws_client.ClientConnection | None = None
        self._unacknowledged = 0  # observe_only requests sent whose replies are not read yet
        self._reset_pending = False
        self._connect()

    @property
    def foresight_horizon(self) -> int | None:
        """Ticks between frame t and the predicted frame, when the server says (ours does)."""
        horizon = self.metadata.get("foresight_horizon")
        return horizon if isinstance(horizon, int) and not isinstance(horizon, bool) else None

    # --- Policy ---------------------------------------------------------------------------------
    def observe(self, observation: dict[str, Any]) -> None:
        if self._ws is None or self.foresight_horizon is None:
            # Lost: the next infer reconnects, and the server's history starts over anyway. Or a
            # server that keeps no frame history (it does not announce a horizon): nothing to send.
            return
        if self._unacknowledged >= MAX_PIPELINED_OBSERVATIONS:
            self._read_acknowledgement()
        self._send({**self._observation_message(observation), OBSERVE_ONLY_KEY: True})
        self._unacknowledged += 1

    def infer(self, observation: dict[str, Any], instruction: str) -> PolicyOutput:
        started = time.perf_counter()
        if self._ws is None:
            self._connect()
        self._send({**self._observation_message(observation), PROMPT_KEY: instruction})
        while self._unacknowledged:
            self._read_acknowledgement()
        reply = self._receive()
        round_trip_ms = (time.perf_counter() - started) * 1e3
        return self._output(reply, round_trip_ms)

    def reset(self) -> None:
        self._reset_pending = True  # rides on the next request (the protocol has no bare reset)

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    # --- the connection -------------------------------------------------------------------------
    def _connect(self) -> None:
        c = self.config
        headers = {AUTH_HEADER: f"{AUTH_SCHEME} {c.token}"} if c.token else None
        try:
            # proxy=None: a policy server sits on the robot's network; an HTTP proxy from the
            # environment would only add a hop (or fail).
            ws = ws_client.connect(c.url, compression=None, max_size=c.max_reply_bytes, additional_headers=headers,
                                   open_timeout=c.connect_timeout_s, proxy=None)
        except InvalidStatus as err:
            status = err.response.status_code
            hint = ": the token is missing or wrong (--policy-token)" if status == 401 else ""
            raise RemotePolicyError(f"the policy server at {c.url} refused the connection (HTTP {status}){hint}") from err
        except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as err:
            raise RemotePolicyError(f"cannot reach the policy server at {c.url}: {_describe(err)}") from err
        try:
            metadata = unpackb(_binary(ws.recv(timeout=c.connect_timeout_s)))
        except (ProtocolError, websockets.ConnectionClosed, TimeoutError, RemotePolicyError) as err:
            ws.close()
            raise RemotePolicyError(f"the policy server at {c.url} sent no openpi metadata on connect: {_describe(err)}") from err
        if not isinstance(metadata, dict):
            ws.close()
            raise RemotePolicyError(f"the policy server at {c.url} sent metadata of type {type(metadata).__name__}, not a map")
        try:
            self._check_layout(metadata)
        except RemotePolicyError:
            ws.close()
            raise
        self.metadata, self._ws, self._unacknowledged = metadata, ws, 0
        self._reset_pending = False  # a new connection is a new frame history

    def _check_layout(self, metadata: dict[str, Any]) -> None:
        """The server's layout against the robot's; every difference is named, with both lists."""
        layout = {key: metadata.get(key) for key in LAYOUT_KEYS}
        if any(value is not None and not _is_name_list(value) for value in layout.values()):
            raise RemotePolicyError(f"the policy server at {self.config.url} sent a malformed layout: {layout}")
        problems = []
        cameras, state_keys, action_keys = (layout[key] for key in LAYOUT_KEYS)
        if cameras is not None and (missing := [c for c in cameras if c not in self.camera_keys]):
            problems.append(f"cameras {missing} are missing (the server reads {cameras}, the robot has {self.camera_keys})")
        if state_keys is not None and (missing := [k for k in state_keys if k not in self.state_keys]):
            problems.append(f"state keys {missing} are missing (the server reads {state_keys}, the robot has {self.state_keys})")
        if action_keys is not None and sorted(action_keys) != sorted(self.action_keys):
            problems.append(f"action keys differ (the server returns {action_keys}, the robot takes {self.action_keys})")
        if problems:
            raise RemotePolicyError(
                f"the policy at {self.config.url} was trained for another layout: " + "; ".join(problems)
                + " (map the robot's names with --camera-map / --joint-map)"
            )

    def _send(self, message: dict[str, Any]) -> None:
        if self._reset_pending:
            message[RESET_KEY] = True
            self._reset_pending = False
        try:
            self._ws.send(packb(message))
        except (websockets.ConnectionClosed, OSError) as err:
            self._lost(err)

    def _receive(self) -> dict[str, Any]:
        try:
            frame = self._ws.recv(timeout=self.config.reply_timeout_s)
        except (websockets.ConnectionClosed, OSError, TimeoutError) as err:
            self._lost(err)
        if isinstance(frame, str):  # openpi's error path: the message as text, then the server closes
            self.close()
            raise RemotePolicyError(f"the policy server at {self.config.url} refused the request: {frame.strip()}")
        try:
            reply = unpackb(frame)
        except ProtocolError as err:
            self.close()
            raise RemotePolicyError(f"the policy server at {self.config.url} sent an unreadable reply: {err}") from err
        if not isinstance(reply, dict):
            self.close()
            raise RemotePolicyError(f"the policy server at {self.config.url} replied with a {type(reply).__name__}, not a map")
        return reply

    def _read_acknowledgement(self) -> None:
        reply = self._receive()
        self._unacknowledged -= 1
        if not reply.get(OBSERVED_KEY):
            self.close()
            raise RemotePolicyError(f"the policy server at {self.config.url} answered an observation with keys {sorted(reply)}")

    def _lost(self, err: BaseException) -> None:
        self.close()
        raise RemotePolicyError(
            f"lost the policy server at {self.config.url} ({_describe(err)}); the next call reconnects"
        ) from err

    # --- messages -------------------------------------------------------------------------------
    def _observation_message(self, observation: dict[str, Any]) -> dict[str, Any]:
        state_keys = self.metadata.get("state_keys") or self.state_keys
        cameras = self.metadata.get("cameras") or self.camera_keys
        state = np.array([float(observation[key]) for key in state_keys], dtype=np.float32)  # (state_dim,)
        images = {camera: np.ascontiguousarray(observation[camera]) for camera in cameras if camera in observation}
        return {STATE_KEY: state, IMAGES_KEY: images}

    def _output(self, reply: dict[str, Any], round_trip_ms: float) -> PolicyOutput:
        server_order = self.metadata.get("action_keys") or self.action_keys
        actions = reply.get("actions")
        if not isinstance(actions, np.ndarray) or actions.ndim != 2 or actions.shape[1] != len(server_order):
            got = f"{actions.dtype} {actions.shape}" if isinstance(actions, np.ndarray) else type(actions).__name__
            raise RemotePolicyError(
                f"the policy server at {self.config.url} returned actions {got}, expected (steps, {len(server_order)})"
            )
        columns = [server_order.index(key) for key in self.action_keys]
        timing = reply.get(SERVER_TIMING_KEY) if isinstance(reply.get(SERVER_TIMING_KEY), dict) else {}
        model_ms = _milliseconds(timing.get("infer_ms"))
        queue_ms = _milliseconds(timing.get("queue_ms"))
        stages = reply.get("timings_ms") if isinstance(reply.get("timings_ms"), dict) else {}
        timings = {f"server_{stage}": _milliseconds(ms) for stage, ms in stages.items()}
        timings.update(model=model_ms, queue=queue_ms, network=max(0.0, round_trip_ms - model_ms - queue_ms),
                       round_trip=round_trip_ms)
        return PolicyOutput(
            actions=np.array(actions[:, columns], dtype=np.float32),  # (steps, action_dim) in the robot's order
            foresight=_images(reply.get("foresight")),
            foresight_latents=_images(reply.get("foresight_latents")),
            timings_ms=timings,
        )


def _binary(frame: str | bytes) -> bytes:
    if isinstance(frame, str):
        raise RemotePolicyError(f"a text frame: {frame.strip()}")
    return frame


def _is_name_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(name, str) for name in value)


def _milliseconds(value: Any) -> float:
    return float(value) if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) else 0.0


def _images(value: Any) -> dict[str, np.ndarray] | None:
    """A {camera: array} extra key, or None when the server sent none (openpi servers do not)."""
    if not isinstance(value, dict) or not value:
        return None
    return {str(camera): array for camera, array in value.items() if isinstance(array, np.ndarray)}


def _describe(err: BaseException) -> str:
    if isinstance(err, websockets.ConnectionClosed):
        reason = err.rcvd.reason if err.rcvd is not None and err.rcvd.reason else "no reason given"
        return f"connection closed ({reason})"
    text = str(err) or type(err).__name__
    return f"{type(err).__name__}: {text}" if text != type(err).__name__ else text
