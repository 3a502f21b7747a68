"""The websocket server: handshake and auth, one policy state per connection, the batcher that
feeds the worker thread, and serve_in_thread for tests and benchmarks."""

from __future__ import annotations

import asyncio
import hmac
import http
import logging
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

import websockets
import websockets.asyncio.server as ws_server
from websockets.frames import CloseCode

from model.checkpoint import CheckpointError, load_checkpoint, read_layout
from model.policy import InternVLAPolicy
from model.serve.batching import run_jobs
from model.serve.requests import BadRequest, Request, parse_request
from model.understanding import build_text_tokenizer
from robot_io.policy import PolicyOutput
from robot_io.wire.codec import ProtocolError, packb, unpackb
from robot_io.wire.protocol import AUTH_HEADER, AUTH_SCHEME, OBSERVED_KEY, PROTOCOL, SERVER_TIMING_KEY

logger = logging.getLogger(__name__)


DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000  # openpi's default
DEFAULT_MAX_MESSAGE_BYTES = 16 * 2**20  # three 640x480 RGB frames are ~2.8 MB
DEFAULT_BATCH_WINDOW_MS = 5.0
DEFAULT_MAX_BATCH = 8
DEFAULT_MAX_CLIENTS = 32
MAX_PORT = 65535
HEALTH_PATH = "/healthz"
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
