"""A tiny ACT trained by LeRobot's own `lerobot-train` on a recording of `robot_io.sim.collect`, for the
tests of the LeRobot round trip (shared through the `lerobot_act` fixture of tests/conftest.py, so it
trains once per test run)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from robot_io.datasets.schema import local_repo_id

IMAGE = 64  # camera side of the recording, and of the sim the trained policy drives
EPISODES = 2
STEPS = 3
CHUNK = 30  # ACT's chunk (its default is 100): 29 commands after the observation's tick, 2 s at 15 Hz
TIMEOUT_S = 300
LEROBOT_TRAIN = Path(sys.executable).parent / "lerobot-train"  # the CLI entry point pip installed
TINY_ACT = (  # a few-second ACT: one small transformer layer each way, no VAE, no pretrained backbone (no network)
    "--policy.type=act", "--policy.device=cpu", "--policy.push_to_hub=false",
    "--policy.pretrained_backbone_weights=null", "--policy.dim_model=32", "--policy.n_heads=2",
    "--policy.dim_feedforward=64", "--policy.n_encoder_layers=1", "--policy.n_decoder_layers=1",
    "--policy.use_vae=false", f"--policy.chunk_size={CHUNK}", f"--policy.n_action_steps={CHUNK}",
)


@dataclass(frozen=True)
class TrainedPolicy:
    dataset: Path  # the sim recording it learned from
    output_dir: Path  # lerobot-train's --output_dir
    checkpoint: Path  # its checkpoints/last/pretrained_model
    log: str  # lerobot-train's output


def quiet_env() -> dict[str, str]:
    """Offline, one torch thread per process: the 2 shared cores of CI."""
    return os.environ | {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", "MUJOCO_GL": "egl"}


def record_sim_demos(out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "robot_io.sim.collect", "--episodes", str(EPISODES), "--out", str(out),
                    "--image-size", str(IMAGE)], check=True, env=quiet_env(), capture_output=True, timeout=TIMEOUT_S)
    return out


def train_tiny_act(dataset: Path, output_dir: Path) -> TrainedPolicy:
    """`lerobot-train` as the README shows it, shrunk to a few steps of a tiny ACT."""
    command = [str(LEROBOT_TRAIN), f"--dataset.repo_id={local_repo_id(dataset)}", f"--dataset.root={dataset}",
               *TINY_ACT, f"--steps={STEPS}", "--batch_size=2", "--num_workers=0", f"--save_freq={STEPS}",
               f"--output_dir={output_dir}", "--job_name=tiny_act"]
    done = subprocess.run(command, env=quiet_env(), capture_output=True, text=True, timeout=TIMEOUT_S)
    log = done.stdout + done.stderr
    assert done.returncode == 0, f"lerobot-train failed ({done.returncode}):\n{log[-4000:]}"
    return TrainedPolicy(dataset, output_dir, output_dir / "checkpoints" / "last" / "pretrained_model", log)
