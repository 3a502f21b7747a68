"""LeRobot's own async-inference policy server for tests: a tiny random ACT for a robot's features,
saved with the processors the server loads, served by `lerobot.async_inference.policy_server.serve`
in a child process on 127.0.0.1 that ends itself."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from lerobot.configs import FeatureType, PolicyFeature
from lerobot.policies import ACTConfig, make_pre_post_processors
from lerobot.policies.act.modeling_act import ACTPolicy
from lerobot.utils.constants import ACTION, OBS_IMAGES, OBS_STATE

from tests.browser_support import free_port

CHUNK = 10
STARTUP_TIMEOUT_S = 120  # the child imports torch and lerobot on a busy machine
LIFETIME_S = 600  # the child ends itself after this, whatever happens to the test
SERVER_FPS = 15

# The child: LeRobot's serve() in a daemon thread until stdin closes (the test ends it or dies) or LIFETIME_S.
SERVER_SCRIPT = """
import os, sys, threading
from lerobot.async_inference.configs import PolicyServerConfig
from lerobot.async_inference.policy_server import serve
port, fps, lifetime = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
config = PolicyServerConfig(host="127.0.0.1", port=port, fps=fps, inference_latency=0.0, obs_queue_timeout=2.0)
threading.Thread(target=serve, args=(config,), daemon=True).start()
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
stop.wait(lifetime)
os._exit(0)
"""


def write_tiny_act(folder: Path, state_keys: list[str], cameras: Mapping[str, tuple[int, int, int]],
                   action_low: list[float], action_high: list[float]) -> Path:
    """A random-init ACT reading `cameras` (HWC shapes) and the state, returning len(action_low)
    actions; stats fabricated so its actions land inside [action_low, action_high]. No download:
    the ResNet backbone starts random."""
    inputs = {OBS_STATE: PolicyFeature(type=FeatureType.STATE, shape=(len(state_keys),))}
    inputs.update({f"{OBS_IMAGES}.{camera}": PolicyFeature(type=FeatureType.VISUAL, shape=(shape[2], shape[0], shape[1]))
                   for camera, shape in cameras.items()})
    action_dim = len(action_low)
    config = ACTConfig(input_features=inputs, output_features={ACTION: PolicyFeature(type=FeatureType.ACTION, shape=(action_dim,))},
                       chunk_size=CHUNK, n_action_steps=CHUNK, dim_model=32, n_heads=2, dim_feedforward=64,
                       n_encoder_layers=1, n_decoder_layers=1, n_vae_encoder_layers=1, latent_dim=4,
                       pretrained_backbone_weights=None, device="cpu")
    torch.manual_seed(0)
    policy = ACTPolicy(config)
    low, high = torch.tensor(action_low), torch.tensor(action_high)
    stats = {OBS_STATE: {"mean": torch.zeros(len(state_keys)), "std": torch.ones(len(state_keys))},
             ACTION: {"mean": (low + high) / 2, "std": (high - low) / 8}}
    stats.update({key: {"mean": torch.full((3, 1, 1), 0.5), "std": torch.full((3, 1, 1), 0.25)}
                  for key in inputs if key.startswith(OBS_IMAGES)})
    preprocessor, postprocessor = make_pre_post_processors(config, dataset_stats=stats)
    policy.save_pretrained(folder)
    preprocessor.save_pretrained(folder)
    postprocessor.save_pretrained(folder)
    return folder


@contextlib.contextmanager
def lerobot_policy_server(log_path: Path, port: int | None = None) -> Iterator[int]:
    """Yields the port (a free one unless given) of LeRobot's policy server, running in a child
    process (its cwd is log_path's folder: LeRobot writes its logs/ there)."""
    port = port or free_port()
    log = open(log_path, "a")
    child = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT, str(port), str(SERVER_FPS), str(LIFETIME_S)],
                             stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, cwd=log_path.parent,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})  # a name that is no folder fails, no download
    try:
        _wait_listening(port, child, log_path)
        yield port
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        log.close()


def _wait_listening(port: int, child: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"LeRobot's policy server exited with {child.returncode}: {log_path.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"LeRobot's policy server did not listen on {port} within {STARTUP_TIMEOUT_S} s")
