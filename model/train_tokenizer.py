"""Train our image tokenizer (the `tiny` preset's ConvAutoencoder) on the camera frames of LeRobot datasets.

    python -m model.train_tokenizer --dataset DIR [--dataset DIR2 ...] --out DIR [--preset tiny]
        [--steps N] [--batch-size B] [--seed S] [--max-frames M]

Frames of every camera are prepared exactly as InternVLA prepares them for its tokenizer: letterboxed to
the model's image_size (224), scaled to [-1, 1], resized to foresight.image_size. The last episode of every
dataset is held out: reconstruction PSNR per camera on its frames (before and after training) goes to
OUT/metrics.json and a printed table. The loss is L1 on pixels, AdamW at a constant learning rate.

OUT/tokenizer.safetensors is what the foresight path loads: `build_model(config, tokenizer_folder=OUT)`,
`python -m model.train --tokenizer OUT`, or `load_conv_weights(model.cosmos, OUT)` on a built model.
OUT/train_state.pt is saved every `save_every` steps; running the same command again resumes from it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.optim import AdamW
from tqdm import tqdm

from model.config import ModelConfig, preset
from model.preprocess import resize_square, to_model_images
from model.tokenizer import (
    CONV_WEIGHTS_FILE,
    ConvAutoencoder,
    build_tokenizer,
    save_conv_weights,
)
from model.train_data import open_dataset
from robot_io.datasets.schema import IMAGE_PREFIX
from robot_io.images import letterbox

STATE_FILE = "train_state.pt"
METRICS_FILE = "metrics.json"
EVAL_BATCH = 32
PEAK_TO_PEAK = 2.0  # images span [-1, 1]


@dataclass
class TokenizerTrainConfig:
    datasets: tuple[Path, ...]
    out: Path
    preset: str = "tiny"  # whose foresight config (conv_channels, image_size) and frame size are used
    steps: int = 3000
    batch_size: int = 32
    seed: int = 0
    max_frames: int = 2000  # training time steps decoded (each gives one frame per camera), spread evenly
    eval_frames: int = 64  # time steps decoded from each held-out episode, spread evenly
    lr: float = 1e-3
    weight_decay: float = 0.01
    save_every: int = 250

    def __post_init__(self) -> None:
        self.datasets = tuple(Path(d) for d in self.datasets)
        self.out = Path(self.out)
        if not self.datasets:
            raise ValueError("TokenizerTrainConfig.datasets: give at least one dataset folder")
        for name in ("steps", "batch_size", "max_frames", "eval_frames", "save_every"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TokenizerTrainConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"TokenizerTrainConfig: need lr > 0 and weight_decay >= 0, got {self.lr} and {self.weight_decay}")
        tokenizer = self.model_config.foresight.tokenizer
        if tokenizer != "conv":
            raise ValueError(f"preset {self.preset!r} uses the {tokenizer!r} tokenizer; only our 'conv' autoencoder is trained here")

    @property
    def model_config(self) -> ModelConfig:
        return preset(self.preset)


# ---- frames ---------------------------------------------------------------------------------------


def open_tokenizer_dataset(folder: Path) -> Any:
    """A local LeRobotDataset (frames as uint8) with cameras and at least two episodes; never the Hub."""
    dataset = open_dataset(folder, return_uint8=True)
    if not dataset.meta.camera_keys:
        raise ValueError(
            f"{folder} has no camera features ({IMAGE_PREFIX}*), so there is nothing to train an image "
            f"tokenizer on; its features are {sorted(dataset.meta.features)}"
        )
    if dataset.meta.total_episodes < 2:
        raise ValueError(
            f"{folder} holds {dataset.meta.total_episodes} episode(s); at least 2 are needed "
            "(the last one is held out to measure reconstruction PSNR)"
        )
    return dataset


def episode_rows(dataset: Any, episode: int) -> range:
    episodes = dataset.meta.episodes
    return range(episodes["dataset_from_index"][episode], episodes["dataset_to_index"][episode])


def spread(items: list, count: int) -> list:
    """At most `count` of `items`, evenly spaced (all of them when there are fewer)."""
    if len(items) <= count:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def tokenizer_input(frame: np.ndarray, config: ModelConfig) -> Tensor:
    """uint8 (H, W, 3) -> (3, S, S) in [-1, 1], S = foresight.image_size: what InternVLA.encode_frames encodes."""
    image = to_model_images(letterbox(frame, config.image_size))  # (3, 224, 224)
    return resize_square(image[None], config.foresight.image_size)[0]


def decode_frames(rows: list[tuple[Any, int]], config: ModelConfig, desc: str) -> dict[str, Tensor]:
    """(dataset, row) pairs -> camera name -> (N, 3, S, S) float16 tokenizer inputs."""
    frames: dict[str, list[Tensor]] = {}
    for dataset, row in tqdm(rows, desc=desc, unit="step", leave=False):
        item = dataset[row]
        for key in dataset.meta.camera_keys:
            frame = item[key].permute(1, 2, 0).numpy()  # (3, H, W) -> (H, W, 3) uint8
            frames.setdefault(key.removeprefix(IMAGE_PREFIX), []).append(tokenizer_input(frame, config).half())
    return {camera: torch.stack(images) for camera, images in frames.items()}


def load_frames(datasets: list[Any], cfg: TokenizerTrainConfig) -> tuple[Tensor, dict[str, Tensor]]:
    """(training frames of every camera (N, 3, S, S), held-out frames per camera): last episodes held out."""
    train_rows = [(d, row) for d in datasets for e in range(d.meta.total_episodes - 1) for row in episode_rows(d, e)]
    eval_rows = [
        (d, row) for d in datasets for row in spread(list(episode_rows(d, d.meta.total_episodes - 1)), cfg.eval_frames)
    ]
    train = decode_frames(spread(train_rows, cfg.max_frames), cfg.model_config, "decoding training frames")
    held_out = decode_frames(eval_rows, cfg.model_config, "decoding held-out frames")
    return torch.cat(list(train.values())), held_out


# ---- training -------------------------------------------------------------------------------------


def reconstruction_loss(tokenizer: ConvAutoencoder, images: Tensor) -> Tensor:
    return F.l1_loss(tokenizer.decode(tokenizer.encode(images)), images)


@torch.no_grad()
def psnr_per_camera(tokenizer: ConvAutoencoder, frames: dict[str, Tensor]) -> dict[str, float]:
    """Mean per-frame PSNR (dB) of encode -> decode, for each camera's (N, 3, S, S) frames."""
    device = next(tokenizer.parameters()).device
    was_training = tokenizer.training
    tokenizer.eval()
    result = {}
    for camera, images in frames.items():
        values = []
        for batch in images.split(EVAL_BATCH):
            batch = batch.to(device).float()
            mse = (tokenizer.decode(tokenizer.encode(batch)) - batch).pow(2).mean(dim=(1, 2, 3))  # (B,)
            values.append(10 * torch.log10(PEAK_TO_PEAK**2 / mse.clamp_min(1e-10)))
        result[camera] = torch.cat(values).mean().item()
    tokenizer.train(was_training)
    return result


def save_state(cfg: TokenizerTrainConfig, step: int, tokenizer: ConvAutoencoder, optimizer: AdamW, sampler: torch.Generator) -> None:
    state = {
        "step": step, "preset": cfg.preset, "seed": cfg.seed, "tokenizer": tokenizer.state_dict(),
        "optimizer": optimizer.state_dict(), "sampler": sampler.get_state(),
    }
    path = cfg.out / STATE_FILE
    torch.save(state, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)  # an interruption mid-write keeps the previous state


def resume(cfg: TokenizerTrainConfig, tokenizer: ConvAutoencoder, optimizer: AdamW, sampler: torch.Generator) -> int:
    """The step to start from: 0, or that of OUT/train_state.pt after loading it."""
    path = cfg.out / STATE_FILE
    if not path.is_file():
        return 0
    state = torch.load(path, map_location="cpu", weights_only=True)
    if (state["preset"], state["seed"]) != (cfg.preset, cfg.seed):
        raise ValueError(
            f"{path} is a run with preset {state['preset']!r} and seed {state['seed']}, not {cfg.preset!r} and "
            f"{cfg.seed}: use another --out or the same settings"
        )
    tokenizer.load_state_dict(state["tokenizer"])
    optimizer.load_state_dict(state["optimizer"])
    sampler.set_state(state["sampler"])
    return state["step"]


def train(cfg: TokenizerTrainConfig) -> dict[str, Any]:
    """Train, save OUT/tokenizer.safetensors and OUT/metrics.json; returns the metrics."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    datasets = [open_tokenizer_dataset(folder) for folder in cfg.datasets]
    train_frames, held_out = load_frames(datasets, cfg)
    cfg.out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(cfg.seed)
    tokenizer = build_tokenizer(cfg.model_config.foresight).to(device)
    untrained = psnr_per_camera(tokenizer, held_out)
    optimizer = AdamW(tokenizer.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sampler = torch.Generator().manual_seed(cfg.seed)
    start = resume(cfg, tokenizer, optimizer, sampler)

    tokenizer.train()
    progress = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc="tokenizer", unit="step")
    for step in progress:
        index = torch.randint(len(train_frames), (cfg.batch_size,), generator=sampler)
        loss = reconstruction_loss(tokenizer, train_frames[index].to(device).float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        progress.set_postfix(l1=f"{loss.item():.4f}")
        if (step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps:
            save_state(cfg, step + 1, tokenizer, optimizer, sampler)

    save_conv_weights(tokenizer, cfg.out)
    metrics = {
        "preset": cfg.preset,
        "steps": max(start, cfg.steps),
        "image_size": cfg.model_config.foresight.image_size,
        "datasets": [str(d) for d in cfg.datasets],
        "held_out_episodes": {str(folder): d.meta.total_episodes - 1 for folder, d in zip(cfg.datasets, datasets)},
        "train_frames": len(train_frames),
        "held_out_frames": {camera: len(images) for camera, images in held_out.items()},
        "psnr_db": psnr_per_camera(tokenizer, held_out),
        "psnr_db_untrained": untrained,
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items() if k != "datasets"},
    }
    (cfg.out / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    return metrics


def format_table(metrics: dict[str, Any]) -> str:
    lines = [f"{'camera':<16} {'frames':>6} {'PSNR dB':>8} {'untrained':>9}"]
    for camera, value in metrics["psnr_db"].items():
        frames, before = metrics["held_out_frames"][camera], metrics["psnr_db_untrained"][camera]
        lines.append(f"{camera:<16} {frames:>6} {value:>8.2f} {before:>9.2f}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> TokenizerTrainConfig:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, action="append", required=True, help="LeRobot dataset folder (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (tokenizer.safetensors, metrics.json, train_state.pt)")
    parser.add_argument("--preset", help="model preset whose conv tokenizer is trained (default tiny)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--max-frames", type=int, help="training time steps decoded (default 2000)")
    parser.add_argument("--lr", type=float)
    args = vars(parser.parse_args(argv))
    datasets, out = tuple(args.pop("dataset")), args.pop("out")
    return TokenizerTrainConfig(datasets, out, **{k: v for k, v in args.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    try:
        metrics = train(parse_args(argv))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(metrics))
    print(f"saved {metrics['config']['out']}/{CONV_WEIGHTS_FILE} and {METRICS_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
