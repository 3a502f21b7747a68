"""A policy in its own process, so that inference does not share the console's GIL and threads.

The console process runs the control loop, the web server, the feeds' JPEG encoding and the Rerun
logger; a model called on a thread beside them competes with all of that for one interpreter.
`PolicyProcess` is a Policy whose calls run in a spawned child with its own torch thread count:

    parent (the runner thread)                    child
    observe(obs):  frames -> shared-memory slot   reads the slot, policy.observe(obs)
                   ("observe", seq, state) ->
    infer(...):    ("infer", seq, ...) ->         policy.infer / infer_guided on observation seq
                   <- ("result", PolicyOutput)    (or ("error", message))
    decode_foresight(output): ("decode",) ->      policy.decode_foresight(the last result)
                   <- ("result", PolicyOutput)    (a policy that deferred its pictures)

Camera frames, the bulk of every tick, go through a ring of shared-memory slots written once per
tick and never pickled; the pipe carries the slot's sequence number, the state values and, once per
inference, the chunk and its foresight pictures back. A slot holds its sequence number beside the
frames, so a child that fell a whole ring behind sees the frames were overwritten and says so.

A child that dies (or does not answer an inference within `hang_timeout_s`) raises
PolicyProcessError once: the runner reports it, the session holds the robot and says why. Until
the next inference is asked for (the operator's next Run) observations are dropped; that inference
starts a fresh child first.

The child's frame encoder (for latent L2) is not reachable from the control thread, which calls
it; `encoder` gives the parent its own (None: PSNR only).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from robot_io.chunks.schedule import Guide
from robot_io.policy import FrameEncoder, Policy, PolicyOutput, infer_with_guide

SHM_FOLDER = "/dev/shm"
SEQ_BYTES = 8  # each slot starts with the int64 sequence number of the observation it holds
CLOSE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class PolicyProcessConfig:
    # torch threads of the policy process (the console's loop and page keep the other cores)
    threads: int = 1
    # observation slots in shared memory: how many ticks the child may fall behind before frames are lost
    slots: int = 32
    # an inference that takes longer than this counts as a hung process: it is killed, the robot holds
    hang_timeout_s: float = 5.0
    # seconds the child may take to start and load its policy
    start_timeout_s: float = 180.0

    def __post_init__(self) -> None:
        if self.threads < 1 or self.slots < 2:
            raise ValueError(f"a policy process needs threads >= 1 and slots >= 2, got {self.threads} and {self.slots}")
        if not (self.hang_timeout_s > 0 and self.start_timeout_s > 0):
            raise ValueError("policy process timeouts must be > 0")


class PolicyProcessError(RuntimeError):
    """The policy process cannot be used: it could not start, died, or hung."""


class FrameRing:
    """Camera frames of the last `slots` observations in one shared-memory block."""

    def __init__(self, shapes: Mapping[str, tuple[int, int, int]], slots: int, name: str | None = None) -> None:
        self.shapes = dict(shapes)
        self.slots = slots
        self._offsets: dict[str, int] = {}
        offset = SEQ_BYTES
        for camera, shape in self.shapes.items():
            self._offsets[camera] = offset
            offset += int(np.prod(shape))
        self.slot_bytes = offset
        size = max(1, self.slot_bytes * slots)
        if name is None:
            free = _shm_free_bytes()
            if free is not None and free < size:
                raise PolicyProcessError(
                    f"shared memory for the policy process needs {size / 2**20:.1f} MiB but {SHM_FOLDER} has "
                    f"{free / 2**20:.1f} MiB free: enlarge it (docker run --shm-size=256m, or "
                    f"mount -o remount,size=256M {SHM_FOLDER}), or run the policy in the console process "
                    "(--no-policy-process)")
            try:
                self.shm = SharedMemory(create=True, size=size)
            except OSError as err:
                raise PolicyProcessError(f"cannot create {size / 2**20:.1f} MiB of shared memory for the policy process "
                                         f"({err}): enlarge {SHM_FOLDER} or use --no-policy-process") from err
        else:
            self.shm = SharedMemory(name=name)
        self.name = self.shm.name

    def _slot(self, seq: int) -> int:
        return (seq % self.slots) * self.slot_bytes

    def write(self, seq: int, frames: Mapping[str, np.ndarray]) -> None:
        base = self._slot(seq)
        buffer = self.shm.buf
        for camera, shape in self.shapes.items():
            frame = np.ascontiguousarray(frames[camera], dtype=np.uint8)
            if frame.shape != shape:
                raise ValueError(f"camera {camera!r} gave a frame of shape {frame.shape}, expected {shape}")
            start = base + self._offsets[camera]
            np.frombuffer(buffer, np.uint8, frame.size, start).reshape(shape)[...] = frame
        np.frombuffer(buffer, np.int64, 1, base)[0] = seq  # last: the slot is complete

    def read(self, seq: int) -> dict[str, np.ndarray] | None:
        """Copies of observation `seq`'s frames, or None when its slot has been overwritten since."""
        base = self._slot(seq)
        buffer = self.shm.buf
        stamp = np.frombuffer(buffer, np.int64, 1, base)
        if stamp[0] != seq:
            return None
        frames = {camera: np.frombuffer(buffer, np.uint8, int(np.prod(shape)), base + self._offsets[camera]).reshape(shape).copy()
                  for camera, shape in self.shapes.items()}
        return frames if stamp[0] == seq else None  # the parent may have overwritten it while copying

    def close(self, unlink: bool) -> None:
        self.shm.close()
        if unlink:
            try:
                self.shm.unlink()
            except FileNotFoundError:
                pass


def _shm_free_bytes() -> int | None:
    try:
        stat = os.statvfs(SHM_FOLDER)
    except OSError:
        return None  # no /dev/shm here: SharedMemory says what it thinks
    return stat.f_bavail * stat.f_frsize


class PolicyProcess(Policy):
    """The policy `factory` builds, run in a spawned child. `factory` must be picklable (a module-level
    function or functools.partial of one); `cameras` maps the image keys of an observation to their
    (H, W, 3) shapes; `encoder` is the parent's own frame encoder for latent L2, or None."""

    def __init__(self, factory: Callable[[], Policy], cameras: Mapping[str, tuple[int, int, int]],
                 config: PolicyProcessConfig | None = None, encoder: FrameEncoder | None = None,
                 label: str = "policy") -> None:
        self._factory = factory
        self._cameras = {key: tuple(shape) for key, shape in cameras.items()}
        self.config = config or PolicyProcessConfig()
        self._encoder = encoder
        self._label = label
        self._lock = threading.Lock()  # one call at a time on the pipe (close may come from another thread)
        self._process: mp.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._frames: FrameRing | None = None
        self._seq = 0
        self._last_observed: dict[str, Any] | None = None
        self._failed = ""  # why the child stopped, until the next inference restarts it
        self._start()

    # ---- the Policy interface -------------------------------------------------------------------

    def observe(self, observation: dict[str, Any]) -> None:
        if observation is self._last_observed:
            return
        with self._lock:
            if self._failed:
                return  # held until the next Run; nothing to tell the child
            self._seq += 1
            self._last_observed = observation
            self._frames.write(self._seq, {key: observation[key] for key in self._cameras})
            scalars = {key: value for key, value in observation.items() if key not in self._cameras}
            self._send(("observe", self._seq, scalars))

    def infer(self, observation: dict[str, Any], instruction: str) -> PolicyOutput:
        return self._infer(observation, instruction, None)

    def infer_guided(self, observation: dict[str, Any], instruction: str, plan: np.ndarray, committed: int) -> PolicyOutput:
        return self._infer(observation, instruction, Guide(np.asarray(plan, np.float32), committed))

    def decode_foresight(self, output: PolicyOutput) -> PolicyOutput:
        """The pictures of the child's last result (the output it returned with them pending)."""
        if not output.pictures_pending:
            return output
        with self._lock:
            return self._call(("decode",))

    def reset(self) -> None:
        with self._lock:
            if not self._failed:
                self._send(("reset",))

    def frame_encoder(self) -> FrameEncoder | None:
        return self._encoder

    def close(self) -> None:
        """Stop the child and free the shared memory (from any thread)."""
        process, conn, frames = self._process, self._conn, self._frames
        self._process = self._conn = self._frames = None
        self._failed = self._failed or "closed"
        if process is not None:
            try:
                conn.send(("close",))
            except (OSError, ValueError):
                pass
            process.join(CLOSE_TIMEOUT_S)
            if process.is_alive():
                process.kill()
                process.join(CLOSE_TIMEOUT_S)
        if conn is not None:
            conn.close()
        if frames is not None:
            frames.close(unlink=True)

    @property
    def pid(self) -> int | None:
        """The child's process id (tests kill it)."""
        return self._process.pid if self._process is not None else None

    # ---- the child's lifecycle ------------------------------------------------------------------

    def _infer(self, observation: dict[str, Any], instruction: str, guide: Guide | None) -> PolicyOutput:
        if self._failed:
            self._restart()
        self.observe(observation)  # a no-op when the runner already showed it this observation
        with self._lock:
            return self._call(("infer", self._seq, instruction, guide))

    def _call(self, message: tuple) -> PolicyOutput:
        """Caller holds the lock: one request, its PolicyOutput (or the child's error raised)."""
        self._send(message)
        if not self._conn.poll(self.config.hang_timeout_s):
            self._fail(f"the policy process did not answer within {self.config.hang_timeout_s:g} s: killed")
        kind, payload = self._receive()
        if kind == "error":
            raise RuntimeError(payload)
        return payload

    def _start(self) -> None:
        context = mp.get_context("spawn")
        self._frames = FrameRing(self._cameras, self.config.slots)
        self._conn, child_end = context.Pipe()
        self._process = context.Process(
            target=_serve, name=f"policy-{self._label}", daemon=True,
            args=(child_end, self._factory, self._frames.name, self._cameras, self.config.slots, self.config.threads),
        )
        self._process.start()
        child_end.close()
        self._seq = 0
        self._last_observed = None
        if not self._conn.poll(self.config.start_timeout_s):
            self.close()
            raise PolicyProcessError(f"the policy process did not start within {self.config.start_timeout_s:g} s")
        try:
            kind, payload = self._conn.recv()
        except (EOFError, OSError):
            code = self._process.exitcode if self._process is not None else None
            self.close()
            raise PolicyProcessError(f"the policy process exited while starting (exit code {code})") from None
        if kind == "error":
            self.close()
            raise PolicyProcessError(f"the policy process could not build its policy: {payload}")
        self._failed = ""
        for name, value in payload.items():  # the child policy's declared capabilities
            setattr(self, name, value)

    def _restart(self) -> None:
        self.close()
        self._start()

    def _send(self, message: tuple) -> None:
        """Caller holds the lock."""
        try:
            self._conn.send(message)
        except (OSError, ValueError) as err:
            self._fail(f"the policy process is gone ({type(err).__name__}: {err})")

    def _receive(self) -> tuple[str, Any]:
        """Caller holds the lock."""
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            self._fail("the policy process died")

    def _fail(self, why: str) -> None:
        """Caller holds the lock: stop the child for good and raise, once."""
        process = self._process
        code = None
        if process is not None:
            if process.is_alive():
                process.kill()
            process.join(CLOSE_TIMEOUT_S)
            code = process.exitcode
        self._failed = why
        raise PolicyProcessError(f"{why}{f' (exit code {code})' if code not in (None, 0) else ''}; "
                                 "the robot holds, Run starts it again")


CAPABILITIES = ("name", "chunk_starts_next_tick", "foresight_horizon", "guided_chunks")


def _serve(conn: Connection, factory: Callable[[], Policy], shm_name: str, cameras: dict[str, tuple[int, int, int]],
           slots: int, threads: int) -> None:
    """The child: build the policy, then answer the parent's messages in order until told to close."""
    import torch  # the child's own thread count, before any model runs

    torch.set_num_threads(threads)
    frames = FrameRing(cameras, slots, name=shm_name)
    try:
        policy = factory()
    except Exception as err:  # noqa: BLE001 - the parent reports it
        conn.send(("error", f"{type(err).__name__}: {err}"))
        return
    conn.send(("ready", {name: getattr(policy, name) for name in CAPABILITIES}))
    observations: dict[int, dict[str, Any]] = {}  # the latest observation, by sequence number
    observe_error = ""
    last: PolicyOutput | None = None  # the last result, whose pictures a "decode" asks for
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break  # the parent is gone
        kind = message[0]
        if kind == "close":
            break
        if kind == "reset":
            # The runner may observe a new scene's first frame before the reset it asked for and
            # infer on that frame after: keep it (the policy's own history starts again).
            policy.reset()
            observe_error = ""
        elif kind == "observe":
            _, seq, scalars = message
            images = frames.read(seq)
            if images is None:
                observe_error = f"the frames of observation {seq} were overwritten before the policy process read them"
                continue
            observation = scalars | images
            observations = {seq: observation}
            try:
                policy.observe(observation)
            except Exception as err:  # noqa: BLE001 - reported with the next inference
                observe_error = f"{type(err).__name__} while observing: {err}"
        elif kind == "infer":
            _, seq, instruction, guide = message
            observation = observations.get(seq)
            if observe_error or observation is None:
                conn.send(("error", observe_error or f"observation {seq} never reached the policy process"))
                observe_error = ""
                continue
            try:
                last = infer_with_guide(policy, observation, instruction, guide)
                conn.send(("result", last))
            except Exception as err:  # noqa: BLE001 - this inference fails, the process goes on
                conn.send(("error", f"{type(err).__name__}: {err}"))
        elif kind == "decode":
            try:
                if last is None:
                    raise RuntimeError("no inference to decode the foresight of")
                conn.send(("result", policy.decode_foresight(last)))
            except Exception as err:  # noqa: BLE001 - reported to the runner, which holds the robot
                conn.send(("error", f"{type(err).__name__}: {err}"))
    frames.close(unlink=False)
