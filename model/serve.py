"""Policy server: a checkpoint's InternVLA-A1 behind openpi's websocket protocol.

    python -m model.serve --checkpoint DIR --port P [--host 127.0.0.1] [--token T] [--max-batch 8] ...

Wire protocol, as Physical-Intelligence/openpi's `src/openpi/serving/websocket_policy_server.py` and
`packages/openpi-client/src/openpi_client/{websocket_client_policy,msgpack_numpy}.py`, so the public
`openpi_client.websocket_client_policy.WebsocketClientPolicy(host, port, api_key=...)` works unchanged:

- Connect to ws://HOST:PORT (no compression). When the server has a token, the client must send the
  header `Authorization: Api-Key <token>` (openpi-client's `api_key`); otherwise the handshake is
  refused with HTTP 401. `GET /healthz` answers 200 "OK" without a token, as openpi's server does.
- Right after the handshake the server sends one binary frame: the packed metadata dict (below).
- Then, per request: one binary frame from the client, a packed observation dict; one binary frame
  back, a packed dict with
      "actions"           float32 (chunk, action_dim), absolute, in metadata["action_keys"] order
      "server_timing"     {"infer_ms": model time of the batch this request ran in,
                           "queue_ms": time spent waiting for the batch,
                           "prev_total_ms": the previous request's round trip on this connection
                                            (from the 2nd reply on, as openpi)}
  and our extra keys: "foresight" {camera: uint8 (H, W, 3) predicted frame t+15},
  "foresight_latents" {camera: float32 (C, h, w)}, "timings_ms" {stage: ms} (the policy's own
  per-stage clock: prefix, generation_decode, denoise, total) and "batch_size".
- Errors, as openpi: a text frame with the message, then the connection is closed: code 1008
  (policy violation) for a bad request (malformed msgpack, a refused dtype, missing keys, ...), 1011
  for a fault of the server (the traceback is in the text frame). openpi-client raises
  RuntimeError("Error in inference server: ...") on such a text frame. A message over
  max_message_bytes is cut off by websockets itself with close code 1009 and a reason naming both
  sizes. Other clients are never affected.
- Messages are msgpack only (see robot_io.wire.codec): no pickle anywhere.

Observation mapping (openpi style -> our robot keys, the checkpoint's layout in train_config.json):
- "prompt": str, the instruction (required for inference).
- state: "state" or "observation/state", a numeric (len(state_keys),) array in metadata["state_keys"]
  order; or, as our robots report it, one scalar per state key ("joint_1.pos": 0.1, ...).
- cameras: "images": {camera: uint8 image}, or the camera key itself at the top level (our robots'
  format); camera names are metadata["cameras"]. Images are (H, W, 3) or openpi's (3, H, W), any
  size (letterboxed to the model's input). A missing camera is an absent view, masked out.
- optional "reset": true forgets this connection's frame history first (a new episode);
  optional "observe_only": true only records the frames (for frame t-15, like Policy.observe) and
  answers {"observed": true, "server_timing": {...}} without running the model.
- Other keys are ignored. Each connection has its own policy state (frame history, noise).

Batching: requests from different connections that arrive within batch_window_ms of each other (up
to max_batch) run as one model call; requests that arrive while a batch runs form the next batch.
The window is cut short once every connected client has a request in the batch (a lone client
never waits for it).
The model runs in one worker thread, so the event loop keeps answering pings, handshakes and
other clients while it works.

Metadata: {"protocol", "policy", "model", "robot_type", "cameras", "state_keys", "action_keys",
"chunk_size", "action_dim", "image_size", "foresight_horizon", "max_batch", "max_message_bytes",
"extra_keys"}. "foresight_horizon" H: the model reads frame t-H (so clients send every tick's frames
as observe_only requests) and predicts frame t+H.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import http
import ipaddress
import logging
import os
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import websockets
import websockets.asyncio.server as ws_server
from websockets.frames import CloseCode

from model.checkpoint import CheckpointError, RobotLayout, load_checkpoint, read_layout
from model.internvla import InternVLA
from model.policy import InternVLAPolicy, Prepared, infer_batch
from model.understanding import build_text_tokenizer
from robot_io.policy import PolicyOutput
from robot_io.wire.codec import ProtocolError, packb, unpackb
from robot_io.wire.protocol import (
    AUTH_HEADER, AUTH_SCHEME, IMAGES_KEY, OBSERVE_ONLY_KEY, OBSERVED_KEY, PROMPT_KEY, PROTOCOL, RESET_KEY, SERVER_TIMING_KEY,
    STATE_ARRAY_KEYS, TOKEN_ENV,
)

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000  # openpi's default
DEFAULT_MAX_MESSAGE_BYTES = 16 * 2**20  # three 640x480 RGB frames are ~2.8 MB
DEFAULT_BATCH_WINDOW_MS = 5.0
DEFAULT_MAX_BATCH = 8
DEFAULT_MAX_CLIENTS = 32
MAX_PORT = 65535
HEALTH_PATH = "/healthz"
RGB = 3
MAX_IMAGE_SIDE = 4096  # pixels; larger frames are refused before any resizing
MAX_PROMPT_CHARS = 2000
MAX_CLOSE_REASON_BYTES = 123  # the WebSocket limit on a close frame's reason
STARTUP_TIMEOUT_S = 60.0
EXTRA_REPLY_KEYS = ("foresight", "foresight_latents", "timings_ms", "batch_size")


@dataclass(frozen=True)
class ServeConfig:
    checkpoint: Path
    host: str = DEFAULT_HOST  # loopback only unless asked otherwise
    port: int = DEFAULT_PORT  # 0: any free port (see PolicyServer.port once started)
    token: str | None = field(default=None, repr=False)  # when set, clients must send "Authorization: Api-Key <token>"
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES  # incoming messages above this close the connection (1009)
    batch_window_ms: float = DEFAULT_BATCH_WINDOW_MS  # how long a batch waits for more requests
    max_batch: int = DEFAULT_MAX_BATCH  # requests per model call at most
    max_clients: int = DEFAULT_MAX_CLIENTS  # connections beyond this are refused with HTTP 503
    seed: int | None = None  # each connection's noise starts from this seed (None: random)
    device: str = "cpu"
    tokenizer_folder: Path | None = None  # Cosmos TorchScript files, when not in the checkpoint folder

    def __post_init__(self) -> None:
        object.__setattr__(self, "checkpoint", Path(self.checkpoint))
        if self.tokenizer_folder is not None:
            object.__setattr__(self, "tokenizer_folder", Path(self.tokenizer_folder))
        if not isinstance(self.host, str) or not self.host.strip():
            raise ValueError("host must be a non-empty address, e.g. 127.0.0.1")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= MAX_PORT:
            raise ValueError(f"port must be an int in [0, {MAX_PORT}] (0: any free port), got {self.port!r}")
        if self.token is not None and (not isinstance(self.token, str) or not self.token.strip() or self.token != self.token.strip()):
            raise ValueError("token must be a non-empty string without surrounding spaces (or None for no token)")
        if isinstance(self.max_message_bytes, bool) or not isinstance(self.max_message_bytes, int) or self.max_message_bytes <= 0:
            raise ValueError(f"max_message_bytes must be a positive int, got {self.max_message_bytes!r}")
        if not isinstance(self.batch_window_ms, (int, float)) or not 0 <= self.batch_window_ms < float("inf"):
            raise ValueError(f"batch_window_ms must be a finite number >= 0, got {self.batch_window_ms!r}")
        for name in ("max_batch", "max_clients"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ValueError(f"seed must be an int or None, got {self.seed!r}")


class BadRequest(ValueError):
    """The client sent something the server cannot use; the message says what."""


# ---- observation mapping ----------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    observation: dict[str, Any]  # state key -> float, camera key -> uint8 (H, W, 3); absent cameras left out
    prompt: str | None  # None only for observe_only
    reset: bool = False
    observe_only: bool = False


def parse_request(message: Any, layout: RobotLayout) -> Request:
    """An openpi-style observation dict -> our robot observation (see the module docstring)."""
    if not isinstance(message, dict):
        raise BadRequest(f"a request must be a msgpack map (dict), got {type(message).__name__}")
    reset = _flag(message, RESET_KEY)
    observe_only = _flag(message, OBSERVE_ONLY_KEY)
    prompt = message.get(PROMPT_KEY)
    if not observe_only or prompt is not None:
        if not isinstance(prompt, str) or not prompt.strip():
            raise BadRequest(f"{PROMPT_KEY!r} must be a non-empty string (the instruction)")
        if len(prompt) > MAX_PROMPT_CHARS:
            raise BadRequest(f"{PROMPT_KEY!r} is {len(prompt)} characters; at most {MAX_PROMPT_CHARS}")
    observation: dict[str, Any] = _state(message, layout)
    observation.update(_cameras(message, layout))
    return Request(observation, prompt, reset, observe_only)


def _flag(message: dict[str, Any], key: str) -> bool:
    value = message.get(key, False)
    if not isinstance(value, (bool, np.bool_)):
        raise BadRequest(f"{key!r} must be true or false, got {type(value).__name__}")
    return bool(value)


def _state(message: dict[str, Any], layout: RobotLayout) -> dict[str, float]:
    keys = layout.state_keys
    given = [name for name in STATE_ARRAY_KEYS if name in message]
    if len(given) > 1:
        raise BadRequest(f"send the state once, as one of {list(STATE_ARRAY_KEYS)}, not both")
    if given:
        state = np.asarray(message[given[0]]) if isinstance(message[given[0]], (list, np.ndarray)) else None
        if state is None or state.dtype.kind not in "iuf" or state.shape != (len(keys),):
            got = f"{state.dtype} {state.shape}" if state is not None else type(message[given[0]]).__name__
            raise BadRequest(f"{given[0]!r} must be a numeric array of shape ({len(keys)},) in the order {keys}, got {got}")
        return dict(zip(keys, state.astype(np.float64).tolist()))
    missing = [key for key in keys if key not in message]
    if missing:
        raise BadRequest(f"no state: send {STATE_ARRAY_KEYS[0]!r} ({len(keys)} values in the order {keys}) or each state key; missing {missing}")
    bad = [key for key in keys if isinstance(message[key], bool) or not isinstance(message[key], (int, float, np.integer, np.floating))]
    if bad:
        raise BadRequest(f"state values must be numbers; not numbers: {bad}")
    return {key: float(message[key]) for key in keys}


def _cameras(message: dict[str, Any], layout: RobotLayout) -> dict[str, np.ndarray]:
    images = message.get(IMAGES_KEY, {})
    if not isinstance(images, dict):
        raise BadRequest(f"{IMAGES_KEY!r} must map camera name -> uint8 image, got {type(images).__name__}")
    unknown = [name for name in images if name not in layout.cameras]
    if unknown:
        raise BadRequest(f"unknown cameras {unknown}; this policy's cameras are {layout.cameras}")
    frames: dict[str, np.ndarray] = {}
    for camera in layout.cameras:
        if camera in images and camera in message:
            raise BadRequest(f"camera {camera!r} is sent twice (in {IMAGES_KEY!r} and at the top level)")
        image = images.get(camera, message.get(camera))
        if image is not None:
            frames[camera] = _image(camera, image)
    return frames


def _image(camera: str, image: Any) -> np.ndarray:
    """uint8 (H, W, 3) or (3, H, W) -> a writable uint8 (H, W, 3) copy."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise BadRequest(f"camera {camera!r} must be a uint8 (H, W, 3) or (3, H, W) array, got {got}")
    if image.shape[-1] != RGB and image.shape[0] == RGB:
        image = image.transpose(1, 2, 0)  # (3, H, W) -> (H, W, 3), openpi's ALOHA layout
    h, w, channels = image.shape
    if channels != RGB or not (0 < h <= MAX_IMAGE_SIDE and 0 < w <= MAX_IMAGE_SIDE):
        raise BadRequest(f"camera {camera!r} must be (H, W, 3) with 1 <= H, W <= {MAX_IMAGE_SIDE}, got {image.shape}")
    return np.array(image, copy=True)


# ---- the model: one client's policy state, and many clients in one call ------------------------




def run_jobs(model: InternVLA, items: Sequence[tuple[InternVLAPolicy, Request]]) -> list[PolicyOutput | str | Exception]:
    """The worker thread's whole job for one batch; never raises (each item gets a result or its error)."""
    results: list[PolicyOutput | str | Exception | None] = [None] * len(items)
    prepared: list[tuple[int, InternVLAPolicy, Prepared]] = []
    for i, (policy, request) in enumerate(items):
        try:
            if request.reset:
                policy.reset()
            if request.observe_only:
                policy.observe(request.observation)
                results[i] = OBSERVED_KEY
            else:
                prepared.append((i, policy, policy.prepare(request.observation, request.prompt)))
        except ValueError as err:  # the policy's own input checks (NaN state, bad frame, empty text)
            results[i] = BadRequest(str(err))
        except Exception as err:  # noqa: BLE001 - one request's fault is its own client's error
            results[i] = err
    if prepared:
        try:
            outputs = infer_batch(model, [(policy, p) for _, policy, p in prepared])
        except Exception as err:  # noqa: BLE001 - the batch's clients get the error, the server goes on
            outputs = [err] * len(prepared)
        for (i, _, _), output in zip(prepared, outputs):
            results[i] = output
    return results  # type: ignore[return-value]


# ---- the server --------------------------------------------------------------------------------


@dataclass
class BatchStats:
    """What the batcher has done; read from any thread (ints only grow)."""

    requests: int = 0
    batches: int = 0
    largest_batch: int = 0
    sizes: Counter[int] = field(default_factory=Counter)  # batch size -> how many batches


@dataclass
class _Job:
    policy: InternVLAPolicy
    request: Request
    future: asyncio.Future
    queued_at: float


@dataclass(frozen=True)
class _Result:
    output: PolicyOutput | str
    infer_ms: float
    queue_ms: float
    batch_size: int


class PolicyServer:
    """Loads the checkpoint once; serves it to many clients over openpi's websocket protocol."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        layout = read_layout(config.checkpoint)
        if layout is None:
            raise CheckpointError(
                f"{config.checkpoint} has no train_config.json naming its robot layout "
                "(robot_type, cameras, state_keys, action_keys); the server needs it to map observations"
            )
        self.layout = layout
        self.model, self.stats = load_checkpoint(config.checkpoint, config.tokenizer_folder, config.device)
        self.text_tokenizer = build_text_tokenizer(self.model.config.text, config.checkpoint)
        self.new_policy()  # fail now, not at the first client, when the layout and the stats disagree
        self.batch_stats = BatchStats()
        self.port: int | None = None  # the bound port once started
        self.clients = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy-model")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._queue: asyncio.Queue[_Job] | None = None

    def new_policy(self) -> InternVLAPolicy:
        return InternVLAPolicy(
            self.model,
            self.stats,
            state_keys=self.layout.state_keys,
            action_keys=self.layout.action_keys,
            camera_keys=self.layout.cameras,
            robot_type=self.layout.robot_type,
            text_tokenizer=self.text_tokenizer,
            seed=self.config.seed,
        )

    @property
    def metadata(self) -> dict[str, Any]:
        c = self.model.config
        return {
            "protocol": PROTOCOL,
            "policy": InternVLAPolicy.name,
            "model": c.name,
            "robot_type": self.layout.robot_type,
            "cameras": list(self.layout.cameras),
            "state_keys": list(self.layout.state_keys),
            "action_keys": list(self.layout.action_keys),
            "chunk_size": c.chunk_size,
            "action_dim": len(self.layout.action_keys),
            "image_size": c.image_size,
            "foresight_horizon": c.foresight.history_steps,
            "max_batch": self.config.max_batch,
            "max_message_bytes": self.config.max_message_bytes,
            "extra_keys": list(EXTRA_REPLY_KEYS),
        }

    def serve_forever(self) -> None:
        asyncio.run(self.run())

    async def run(self, on_ready: Any = None) -> None:
        """Serve until stop(); on_ready(port) is called once the socket listens."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._queue = asyncio.Queue()
        batcher = asyncio.create_task(self._batch_loop())
        try:
            async with ws_server.serve(
                self._handler,
                self.config.host,
                self.config.port,
                compression=None,
                max_size=self.config.max_message_bytes,
                process_request=self._process_request,
            ) as server:
                self.port = server.sockets[0].getsockname()[1]
                logger.info("policy server on ws://%s:%d (%s)", self.config.host, self.port, self.metadata["model"])
                if on_ready is not None:
                    on_ready(self.port)
                await self._stop.wait()
                batcher.cancel()  # before the connections close, so no handler waits on a batch forever
                self._fail_queued(ConnectionError("the policy server is shutting down"))
        finally:
            batcher.cancel()
            self._executor.shutdown(wait=True, cancel_futures=True)

    def stop(self) -> None:
        """Thread-safe: ask run() to close the server."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    # ---- connections ---------------------------------------------------------------------------

    def _process_request(self, connection: ws_server.ServerConnection, request: Any) -> Any:
        if request.path == HEALTH_PATH:
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        if self.config.token is not None:
            sent = request.headers.get(AUTH_HEADER, "")
            expected = f"{AUTH_SCHEME} {self.config.token}"
            if not hmac.compare_digest(sent.encode(), expected.encode()):
                logger.warning("refused %s: missing or wrong token", connection.remote_address)
                return connection.respond(http.HTTPStatus.UNAUTHORIZED, f"missing or wrong token: send '{AUTH_HEADER}: {AUTH_SCHEME} <token>'\n")
        if self.clients >= self.config.max_clients:
            return connection.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, f"server full: {self.config.max_clients} clients\n")
        return None

    async def _handler(self, websocket: ws_server.ServerConnection) -> None:
        self.clients += 1
        peer = websocket.remote_address
        logger.info("connection from %s opened", peer)
        try:
            policy = self.new_policy()
            await websocket.send(packb(self.metadata))
            previous_total_ms: float | None = None
            while True:
                message = await websocket.recv()
                started = time.monotonic()
                reply = await self._answer(websocket, policy, message)
                if reply is None:  # an error was sent and the connection closed
                    return
                if previous_total_ms is not None:
                    reply[SERVER_TIMING_KEY]["prev_total_ms"] = previous_total_ms
                await websocket.send(packb(reply))
                previous_total_ms = (time.monotonic() - started) * 1e3
        except websockets.ConnectionClosed as closed:
            logger.info("connection from %s closed: %s", peer, closed)
        finally:
            self.clients -= 1

    async def _answer(self, websocket: ws_server.ServerConnection, policy: InternVLAPolicy, message: str | bytes) -> dict[str, Any] | None:
        try:
            if isinstance(message, str):
                raise BadRequest("requests must be binary msgpack frames, got a text frame")
            request = parse_request(unpackb(message), self.layout)
            result = await self._submit(policy, request)
        except (BadRequest, ProtocolError) as err:
            logger.info("bad request from %s: %s", websocket.remote_address, err)
            await _fail(websocket, f"bad request: {err}", CloseCode.POLICY_VIOLATION, "bad request; the error is in the previous frame")
            return None
        except Exception:
            logger.exception("inference failed for %s", websocket.remote_address)
            await _fail(websocket, traceback.format_exc(), CloseCode.INTERNAL_ERROR, "internal server error; traceback in the previous frame")
            return None
        timing = {"infer_ms": result.infer_ms, "queue_ms": result.queue_ms}
        if isinstance(result.output, str):
            return {OBSERVED_KEY: True, SERVER_TIMING_KEY: timing}
        out = result.output
        return {
            "actions": out.actions,  # (chunk, action_dim) float32
            SERVER_TIMING_KEY: timing,
            "foresight": out.foresight or {},
            "foresight_latents": out.foresight_latents or {},
            "timings_ms": out.timings_ms,
            "batch_size": result.batch_size,
        }

    async def _submit(self, policy: InternVLAPolicy, request: Request) -> _Result:
        assert self._queue is not None
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(policy, request, future, time.monotonic()))
        return await future

    # ---- batching ------------------------------------------------------------------------------

    async def _batch_loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        window_s = self.config.batch_window_ms / 1e3
        while True:
            jobs: list[_Job] = []
            try:
                jobs.append(await self._queue.get())
                await self._gather(jobs, loop.time() + window_s)
                started = time.monotonic()
                results = await loop.run_in_executor(self._executor, run_jobs, self.model, [(job.policy, job.request) for job in jobs])
            except asyncio.CancelledError:
                _fail_jobs(jobs, ConnectionError("the policy server is shutting down"))
                raise
            infer_ms = (time.monotonic() - started) * 1e3
            self._count(len(jobs))
            for job, result in zip(jobs, results):
                if job.future.done():  # the client went away
                    continue
                if isinstance(result, Exception):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(_Result(result, infer_ms, (started - job.queued_at) * 1e3, len(jobs)))

    async def _gather(self, jobs: list[_Job], deadline: float) -> None:
        """Add requests to `jobs` until max_batch, or until the window closes with the queue empty,
        or until every connected client is in (each has at most one request in flight)."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while len(jobs) < self.config.max_batch:
            if not self._queue.empty():  # already waiting (e.g. arrived while the last batch ran)
                jobs.append(self._queue.get_nowait())
                continue
            if len(jobs) >= self.clients:  # nobody else can join: a lone client never waits for the window
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                jobs.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                return

    def _fail_queued(self, error: Exception) -> None:
        assert self._queue is not None
        while not self._queue.empty():
            _fail_jobs([self._queue.get_nowait()], error)

    def _count(self, size: int) -> None:
        stats = self.batch_stats
        stats.requests += size
        stats.batches += 1
        stats.largest_batch = max(stats.largest_batch, size)
        stats.sizes[size] += 1


def _fail_jobs(jobs: Sequence[_Job], error: Exception) -> None:
    for job in jobs:
        if not job.future.done():
            job.future.set_exception(error)


async def _fail(websocket: ws_server.ServerConnection, text: str, code: CloseCode, reason: str) -> None:
    """openpi's error path: the message as a text frame, then close."""
    try:
        await websocket.send(text)
        await websocket.close(code=code, reason=reason.encode()[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore"))
    except websockets.ConnectionClosed:
        pass


@contextmanager
def serve_in_thread(server: PolicyServer, timeout_s: float = STARTUP_TIMEOUT_S) -> Iterator[int]:
    """Run the server on a background thread's event loop; yields the bound port, stops on exit."""
    ready = threading.Event()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(server.run(on_ready=lambda _port: ready.set()))
        except BaseException as err:  # noqa: BLE001 - surfaced to the caller below
            errors.append(err)
            ready.set()

    thread = threading.Thread(target=target, name="policy-server", daemon=True)
    thread.start()
    if not ready.wait(timeout_s):
        raise TimeoutError(f"policy server did not start within {timeout_s} s")
    if errors:
        raise RuntimeError("policy server failed to start") from errors[0]
    try:
        assert server.port is not None
        yield server.port
    finally:
        server.stop()
        thread.join(timeout_s)


# ---- command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> ServeConfig:
    p = argparse.ArgumentParser(prog="python -m model.serve", description="Serve a checkpoint over openpi's websocket protocol.")
    p.add_argument("--checkpoint", required=True, type=Path, help="checkpoint folder (model.safetensors, config.json, stats.json, train_config.json)")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free port)")
    p.add_argument("--token", default=None, help=f"clients must send 'Authorization: Api-Key <token>' (default: ${TOKEN_ENV} if set)")
    p.add_argument("--max-message-mb", type=float, default=DEFAULT_MAX_MESSAGE_BYTES / 2**20, help="largest request accepted, MiB")
    p.add_argument("--batch-window-ms", type=float, default=DEFAULT_BATCH_WINDOW_MS, help="how long a batch waits for more requests")
    p.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH, help="requests per model call at most")
    p.add_argument("--max-clients", type=int, default=DEFAULT_MAX_CLIENTS, help="simultaneous connections at most")
    p.add_argument("--seed", type=int, default=None, help="noise seed of every connection (default random)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tokenizer-folder", type=Path, default=None, help="Cosmos TorchScript files, when not in the checkpoint folder")
    args = p.parse_args(argv)
    try:
        return ServeConfig(
            checkpoint=args.checkpoint,
            host=args.host,
            port=args.port,
            token=args.token if args.token is not None else os.environ.get(TOKEN_ENV) or None,
            max_message_bytes=int(args.max_message_mb * 2**20),
            batch_window_ms=args.batch_window_ms,
            max_batch=args.max_batch,
            max_clients=args.max_clients,
            seed=args.seed,
            device=args.device,
            tokenizer_folder=args.tokenizer_folder,
        )
    except ValueError as err:
        p.error(str(err))
        raise  # unreachable: p.error exits


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = parse_args(argv)
    if not _is_loopback(config.host) and config.token is None:
        logger.warning("serving on %s without a token: anyone who can reach this port can drive the policy", config.host)
    server = PolicyServer(config)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
