"""A policy served by LeRobot's async-inference policy server: the client side of its gRPC protocol
(`lerobot.async_inference`, service `transport.AsyncInference`, as LeRobot 0.6.1 defines it).

    python -m lerobot.async_inference.policy_server --host=0.0.0.0 --port=8080 --fps=15   # the GPU box
    policy = LeRobotGrpcPolicy(LeRobotServerConfig("grpc://gpu-box:8080", policy_path="/ckpt/act"),
                               state_keys=..., action_keys=..., cameras={"head": (224, 224, 3), ...})

The handshake (at construction, so a wrong server or policy stops the start): `Ready`, then
`SendPolicyInstructions` with a pickled RemotePolicyConfig naming the policy type, the checkpoint the
server loads (a path on the server's machine or a hub id), the robot's features as LeRobot writes them
(`hw_to_dataset_features`) and the device; then one inference on a blank observation of the robot's
shapes, which shows whether the policy reads what the robot gives before anything moves.

Each `infer` streams one pickled TimedObservation (the robot's raw observation: state per joint
name, each camera HWC uint8, "task" = the instruction) with its own timestep and `must_go` set, so
the server's similarity filter never drops it, then calls `GetActions` until the chunk whose first
TimedAction has that timestep arrives (an older chunk is skipped). LeRobot's server stamps
actions[0] with the observation's timestep: it is the command for the observation's own tick, as
our Policy interface assumes by default (`chunk_starts_next_tick` False). Actions are positional,
in the robot's `action_features` order, as LeRobot's robot client reads them.

LeRobot's protocol is pickle both ways. The replies are read by a restricted unpickler that builds
only TimedAction and CPU tensors (tensor storage loaded with `weights_only`), so a server cannot
make the console run code.

The server reports no timings: `timings_ms` has "model" (the GetActions call: queue, inference,
the server's pacing and the reply), "network" (sending the observation) and "round_trip".
"""

from __future__ import annotations

import collections
import io
import pickle  # nosec B403: LeRobot's wire format; replies go through _ReplyUnpickler only
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import grpc
import numpy as np
import torch
from lerobot import __version__ as LEROBOT_VERSION
from lerobot.async_inference.constants import SUPPORTED_POLICIES
from lerobot.async_inference.helpers import RemotePolicyConfig, TimedAction, TimedObservation
from lerobot.transport import services_pb2, services_pb2_grpc
from lerobot.transport.utils import send_bytes_in_chunks
from lerobot.utils.constants import OBS_STR
from lerobot.utils.feature_utils import hw_to_dataset_features

from robot_io.lerobot_policy import LeRobotLayout, LeRobotPolicyError, check_layout, is_lerobot_checkpoint, read_layout
from robot_io.policy import Policy, PolicyOutput
from robot_io.wire.remote_policy import RemotePolicyError

SCHEME = "grpc"
DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_LOAD_TIMEOUT_S = 300.0  # the server loads the policy during the handshake (from disk or the hub)
DEFAULT_REPLY_TIMEOUT_S = 30.0  # one model call on a loaded server, with room to spare
TASK_KEY = "task"  # the instruction, in LeRobot's raw observation
BLANK_PIXEL = 128  # the handshake's probe observation: mid-gray frames, zero state
# actions_per_chunk for "the policy's whole chunk": the server cuts each chunk at this many steps.
WHOLE_CHUNK = 2**31 - 1
MAX_MESSAGE_BYTES = 64 * 2**20  # a chunk of actions is small; this bounds a misbehaving server


@dataclass(frozen=True)
class LeRobotServerConfig:
    url: str  # grpc://HOST:PORT
    # The checkpoint the server loads: a folder on the server's machine (lerobot-train's
    # .../checkpoints/last/pretrained_model) or a hub id; required for a grpc:// policy URL.
    policy_path: str | None = None
    # Its LeRobot policy type (act, smolvla, diffusion, pi0, ...); none: read from the checkpoint's
    # config.json when that folder is readable here too.
    policy_type: str | None = None
    device: str = "cpu"  # where the server runs the policy (cpu, cuda, mps)
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    load_timeout_s: float = DEFAULT_LOAD_TIMEOUT_S
    reply_timeout_s: float = DEFAULT_REPLY_TIMEOUT_S

    def __post_init__(self) -> None:
        parsed = urlparse(self.url) if isinstance(self.url, str) else None
        if parsed is None or parsed.scheme != SCHEME or not parsed.hostname:
            raise ValueError(f"a LeRobot policy server URL must look like grpc://HOST:PORT, got {self.url!r}")
        try:
            port = parsed.port
        except ValueError as err:
            raise ValueError(f"policy URL {self.url!r} has a bad port: {err}") from err
        if port is None or parsed.path not in ("", "/") or parsed.query:
            raise ValueError(f"a LeRobot policy server URL is grpc://HOST:PORT and nothing more, got {self.url!r}")
        if not isinstance(self.policy_path, str) or not self.policy_path.strip():
            raise ValueError(f"{self.url} is a LeRobot policy server: name the checkpoint it loads "
                             "(--server-policy: a folder on the server's machine or a hub id)")
        if self.policy_type is not None and self.policy_type not in SUPPORTED_POLICIES:
            raise ValueError(f"policy type {self.policy_type!r} is not one LeRobot's policy server runs "
                             f"(it runs {SUPPORTED_POLICIES})")
        if not isinstance(self.device, str) or not self.device.strip():
            raise ValueError(f"device must name a torch device (cpu, cuda, mps), got {self.device!r}")
        for name in ("connect_timeout_s", "load_timeout_s", "reply_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")

    @property
    def target(self) -> str:
        """HOST:PORT, as grpc dials it."""
        parsed = urlparse(self.url)
        host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
        return f"{host}:{parsed.port}"


class LeRobotGrpcPolicy(Policy):
    name = "lerobot-grpc"

    def __init__(self, config: LeRobotServerConfig, *, state_keys: Sequence[str], action_keys: Sequence[str],
                 cameras: Mapping[str, tuple[int, int, int]]) -> None:
        """Connects, has the server load the policy and runs one probe inference now, so a wrong
        server, checkpoint or layout is refused before anything runs."""
        self.config = config
        self.state_keys, self.action_keys, self.cameras = list(state_keys), list(action_keys), dict(cameras)
        local = _local_layout(config.policy_path)
        self.policy_type = config.policy_type or _type_from_checkpoint(config.policy_path, local)
        if local is not None:
            try:
                check_layout(local, state_keys=self.state_keys, action_keys=self.action_keys,
                             camera_keys=list(self.cameras), folder=config.policy_path)
            except LeRobotPolicyError as err:
                raise RemotePolicyError(str(err)) from err
            # LeRobot's server fails on a camera its policy does not read: send only those it reads.
            self.cameras = {camera: shape for camera, shape in self.cameras.items() if camera in local.cameras}
        self.features = hw_to_dataset_features({**{key: float for key in self.state_keys}, **self.cameras},
                                               OBS_STR, use_video=False)
        self._timestep = 0
        self._channel: grpc.Channel | None = None
        self._stub: services_pb2_grpc.AsyncInferenceStub | None = None
        self._connect()

    # --- Policy ---------------------------------------------------------------------------------
    def infer(self, observation: dict[str, Any], instruction: str) -> PolicyOutput:
        if self._stub is None:
            self._connect()
        return self._infer(self._raw_observation(observation, instruction))

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = self._stub = None

    # --- the connection -------------------------------------------------------------------------
    def _connect(self) -> None:
        c = self.config
        _check_listening(c)
        channel = grpc.insecure_channel(c.target, options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                                           ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                                                           ("grpc.enable_http_proxy", 0)])
        try:
            grpc.channel_ready_future(channel).result(timeout=c.connect_timeout_s)
        except grpc.FutureTimeoutError:
            channel.close()
            raise RemotePolicyError(
                f"{c.url} accepts connections but no gRPC server answered within {c.connect_timeout_s:g} s: it is not "
                "LeRobot's policy server (an openpi websocket server is ws://HOST:PORT)") from None
        stub = services_pb2_grpc.AsyncInferenceStub(channel)
        try:
            self._handshake(stub)
        except RemotePolicyError:
            channel.close()
            raise
        self._channel, self._stub = channel, stub

    def _handshake(self, stub: services_pb2_grpc.AsyncInferenceStub) -> None:
        c = self.config
        try:
            stub.Ready(services_pb2.Empty(), timeout=c.connect_timeout_s)
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise RemotePolicyError(f"the gRPC server at {c.url} is not LeRobot's async-inference policy server "
                                        f"(it does not implement transport.AsyncInference): {_details(err)}") from err
            raise RemotePolicyError(f"the policy server at {c.url} did not answer Ready: {_details(err)}") from err
        instructions = RemotePolicyConfig(policy_type=self.policy_type, pretrained_name_or_path=c.policy_path,
                                          lerobot_features=self.features, actions_per_chunk=WHOLE_CHUNK, device=c.device)
        try:
            stub.SendPolicyInstructions(services_pb2.PolicySetup(data=pickle.dumps(instructions)),
                                        timeout=c.load_timeout_s)
        except grpc.RpcError as err:
            raise RemotePolicyError(
                f"the LeRobot policy server at {c.url} could not load {self.policy_type} policy {c.policy_path!r} on "
                f"{c.device}: {_details(err)}{_version_hint(err)}") from err
        self._stub = stub
        try:
            self._infer(self._blank_observation())
        except RemotePolicyError as err:
            self._stub = None
            raise RemotePolicyError(f"{err} (the probe at connect, a blank observation of this robot: cameras "
                                    f"{list(self.cameras)}, state {self.state_keys})") from None

    # --- one inference --------------------------------------------------------------------------
    def _infer(self, raw: dict[str, Any]) -> PolicyOutput:
        c = self.config
        timestep = self._timestep
        self._timestep += 1
        started = time.perf_counter()
        message = TimedObservation(timestamp=time.time(), timestep=timestep, observation=raw, must_go=True)
        deadline = started + c.reply_timeout_s
        try:
            self._stub.SendObservations(send_bytes_in_chunks(pickle.dumps(message), services_pb2.Observation),
                                        timeout=c.reply_timeout_s)
            sent = time.perf_counter()
            while True:
                left = deadline - time.perf_counter()
                if left <= 0:
                    raise _late(c, timestep)
                reply = self._stub.GetActions(services_pb2.Empty(), timeout=left)
                if not reply.data:
                    raise RemotePolicyError(
                        f"the policy server at {c.url} returned no actions for observation #{timestep}: its inference "
                        "failed (the server's log says why; a policy trained for other cameras or state is the usual "
                        "cause: LeRobot's server needs exactly the cameras its policy reads) or another client took "
                        "the observation")
                chunk = _read_chunk(reply.data, c.url)
                if chunk[0].get_timestep() >= timestep:
                    break  # an older chunk (an abandoned call's) is skipped
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED:  # slow, not gone: its late chunk is skipped next time
                raise _late(c, timestep) from err
            self.close()
            raise RemotePolicyError(f"lost the policy server at {c.url} ({_details(err)}); "
                                    "the next call connects again") from err
        done = time.perf_counter()
        if chunk[0].get_timestep() != timestep:
            raise RemotePolicyError(f"the policy server at {c.url} answered observation #{timestep} with a chunk for "
                                    f"#{chunk[0].get_timestep()}")
        actions = self._actions(chunk)
        network_ms, model_ms = (sent - started) * 1e3, (done - sent) * 1e3
        return PolicyOutput(actions=actions, timings_ms={"model": model_ms, "network": network_ms,
                                                         "round_trip": network_ms + model_ms})

    def _actions(self, chunk: list[TimedAction]) -> np.ndarray:
        """The chunk as (steps, action_dim) float32, refused unless it is one action per robot key."""
        steps = [step.get_action() for step in chunk]
        if not all(isinstance(a, torch.Tensor) and a.ndim == 1 for a in steps) or len({a.numel() for a in steps}) != 1:
            raise RemotePolicyError(f"the policy server at {self.config.url} sent actions that are not one vector a step")
        actions = torch.stack(steps).to(torch.float32).numpy()  # (steps, action_dim)
        if actions.shape[1] != len(self.action_keys):
            raise RemotePolicyError(
                f"the policy at {self.config.url} returns {actions.shape[1]} values an action, the robot takes "
                f"{len(self.action_keys)} ({self.action_keys})")
        if not np.isfinite(actions).all():
            raise RemotePolicyError(f"the policy at {self.config.url} returned actions that are not finite")
        return actions

    # --- observations ---------------------------------------------------------------------------
    def _raw_observation(self, observation: dict[str, Any], instruction: str) -> dict[str, Any]:
        """LeRobot's raw observation: each state key a float, each camera its HWC uint8 frame, the task."""
        raw: dict[str, Any] = {key: float(observation[key]) for key in self.state_keys}
        raw.update({camera: np.ascontiguousarray(observation[camera], dtype=np.uint8) for camera in self.cameras})
        raw[TASK_KEY] = instruction
        return raw

    def _blank_observation(self) -> dict[str, Any]:
        raw: dict[str, Any] = {key: 0.0 for key in self.state_keys}
        raw.update({camera: np.full(shape, BLANK_PIXEL, dtype=np.uint8) for camera, shape in self.cameras.items()})
        raw[TASK_KEY] = ""
        return raw


def _late(config: LeRobotServerConfig, timestep: int) -> RemotePolicyError:
    return RemotePolicyError(f"the policy server at {config.url} sent no chunk for observation #{timestep} within "
                             f"{config.reply_timeout_s:g} s")


class _ReplyUnpickler(pickle.Unpickler):
    """Builds TimedAction lists of CPU tensors and nothing else (see the module docstring)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _load_storage
        allowed = {("lerobot.async_inference.helpers", "TimedAction"): TimedAction,
                   ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
                   ("collections", "OrderedDict"): collections.OrderedDict}
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of an action chunk")
        return allowed[module, name]


def _load_storage(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), weights_only=True)


def _read_chunk(data: bytes, url: str) -> list[TimedAction]:
    try:
        chunk = _ReplyUnpickler(io.BytesIO(data)).load()
    except Exception as err:  # noqa: BLE001 - any unreadable reply is the same refusal
        raise RemotePolicyError(f"the policy server at {url} sent a reply this console cannot read ({err}): it speaks "
                                f"another version of LeRobot's protocol than this console's LeRobot {LEROBOT_VERSION}") from err
    if not isinstance(chunk, list) or not chunk or not all(isinstance(step, TimedAction) for step in chunk):
        raise RemotePolicyError(f"the policy server at {url} sent a {type(chunk).__name__}, not a list of TimedAction")
    return chunk


def _check_listening(config: LeRobotServerConfig) -> None:
    """Tells "nothing listens there" apart from "something that is not a gRPC server" (grpc alone
    reports both as a timeout)."""
    parsed = urlparse(config.url)
    try:
        socket.create_connection((parsed.hostname, parsed.port), timeout=config.connect_timeout_s).close()
    except OSError as err:
        raise RemotePolicyError(f"cannot reach the policy server at {config.url}: {err.strerror or err}") from err


def _type_from_checkpoint(policy_path: str, layout: LeRobotLayout | None) -> str:
    if layout is None:
        raise RemotePolicyError(f"{policy_path!r} is not a checkpoint folder readable here: name its policy type with "
                                f"--server-policy-type (one of {SUPPORTED_POLICIES})")
    if layout.policy_type not in SUPPORTED_POLICIES:
        raise RemotePolicyError(f"{policy_path} holds a {layout.policy_type!r} policy; LeRobot's policy server runs "
                                f"{SUPPORTED_POLICIES}")
    return layout.policy_type


def _local_layout(policy_path: str) -> LeRobotLayout | None:
    """The checkpoint's layout when its folder is readable here (the server on this machine or a
    shared disk); None otherwise: then the probe inference at connect is the check."""
    if not is_lerobot_checkpoint(policy_path):
        return None
    try:
        return read_layout(policy_path)
    except LeRobotPolicyError as err:
        raise RemotePolicyError(str(err)) from err


def _details(err: grpc.RpcError) -> str:
    return f"{err.code().name}: {err.details()}" if isinstance(err, grpc.Call) else str(err)


def _version_hint(err: grpc.RpcError) -> str:
    """A server that cannot unpickle this console's instructions runs another LeRobot version."""
    details = err.details() if isinstance(err, grpc.Call) else ""
    if any(word in (details or "") for word in ("No module named", "unpickl", "has no attribute", "unexpected keyword",
                                                "Policy specs must be")):
        return f" (the server runs another LeRobot version than this console's {LEROBOT_VERSION})"
    return ""
