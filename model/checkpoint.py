"""Checkpoints in the released InternVLA-A1 layout: a folder with

    model.safetensors   parameters named `model.qwen3_vl_with_expert.{und,gen,act}_expert.*`,
                        `model.cosmos.*`, `model.cosmos_in_proj.*`, `model.state_proj.*`, ...
    config.json         our ModelConfig (a released lerobot config, type "qwena1", maps to a1-3b)
    stats.json          normalisation stats: robot type -> feature -> {"mean": [...], "std": [...]}
    train_config.json   (ours, from model.train) the run's settings and the robot layout it learned:
                        robot type, camera slots, state and action names

Loading is strict and explains itself: every missing, unexpected or mis-shaped key is named.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from model.config import ModelConfig, a1_3b
from model.internvla import InternVLA, build_model
from model.tokenizer import CONV_WEIGHTS_FILE, CosmosTokenizer

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATS_FILE = "stats.json"
TRAIN_CONFIG_FILE = "train_config.json"
KEY_PREFIX = "model."  # the released checkpoint names everything under the policy's `model`
TOKENIZER_PREFIX = KEY_PREFIX + "cosmos."  # InternVLA keeps its image tokenizer as `cosmos`
RELEASED_CONFIG_TYPE = "qwena1"  # lerobot's registered name of the released 3B policy config

Stats = dict[str, dict[str, dict[str, list[float]]]]


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or disagrees with the model."""


def save_checkpoint(folder: str | Path, model: InternVLA, stats: Stats | None = None) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(_unique_tensors(model), str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    (folder / CONFIG_FILE).write_text(json.dumps(model.config.to_dict(), indent=2))
    (folder / STATS_FILE).write_text(json.dumps(stats or {}, indent=2))
    return folder


def load_checkpoint(
    folder: str | Path,
    tokenizer_folder: str | Path | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[InternVLA, Stats]:
    """(model in eval mode, stats). Cosmos files are looked for in `tokenizer_folder`, else in `folder`."""
    folder = Path(folder)
    config = load_config(folder / CONFIG_FILE)
    stats = load_stats(folder / STATS_FILE)
    if config.foresight.tokenizer == "cosmos" and tokenizer_folder is None:
        tokenizer_folder = folder
    model = build_model(config, tokenizer_folder, device, dtype)
    load_weights(model, folder / WEIGHTS_FILE)
    return model, stats


def tokenizer_folder(folder: str | Path, scratch: str | Path) -> Path:
    """`folder` as build_model's tokenizer folder. A model checkpoint (model.safetensors and no
    tokenizer.safetensors) lends its trained image tokenizer: its `model.cosmos.*` tensors are
    written to scratch/tokenizer.safetensors and `scratch` is returned; any other folder as it is."""
    folder, scratch = Path(folder), Path(scratch)
    if (folder / CONV_WEIGHTS_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        return folder
    try:
        with safe_open(str(folder / WEIGHTS_FILE), framework="pt") as weights:
            tensors = {key[len(TOKENIZER_PREFIX):]: weights.get_tensor(key)
                       for key in weights.keys() if key.startswith(TOKENIZER_PREFIX)}
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{folder / WEIGHTS_FILE} is corrupt or unreadable: {err}") from err
    if not tensors:
        raise CheckpointError(f"{folder / WEIGHTS_FILE} holds no image tokenizer weights ({TOKENIZER_PREFIX}*)")
    scratch.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(scratch / CONV_WEIGHTS_FILE), metadata={"format": "pt"})
    return scratch


@dataclass(frozen=True)
class RobotLayout:
    """What a policy reads and writes: the robot type, camera slots in order, state and action names."""

    robot_type: str
    cameras: list[str]
    state_keys: list[str]
    action_keys: list[str]


def read_layout(folder: str | Path) -> RobotLayout | None:
    """The layout a checkpoint was trained for (train_config.json), or None when it does not say."""
    path = Path(folder) / TRAIN_CONFIG_FILE
    if not path.is_file():
        return None
    dataset = _read_json(path).get("dataset") or {}
    try:
        return RobotLayout(**{name: dataset[name] for name in RobotLayout.__dataclass_fields__})
    except KeyError as err:
        raise CheckpointError(f"{path}: 'dataset' lacks {err}") from err


def check_layout(trained: RobotLayout, robot: RobotLayout, folder: str | Path) -> None:
    """Refuse a checkpoint trained for another robot layout, naming every difference."""
    differ = [
        f"{name}: checkpoint {getattr(trained, name)!r}, robot {getattr(robot, name)!r}"
        for name in RobotLayout.__dataclass_fields__
        if getattr(trained, name) != getattr(robot, name)
    ]
    if differ:
        raise CheckpointError(f"{folder} was trained for another robot layout:\n  " + "\n  ".join(differ))


def load_config(path: Path) -> ModelConfig:
    data = _read_json(path)
    try:
        if data.get("type") == RELEASED_CONFIG_TYPE:
            return _config_from_released(data)
        return ModelConfig.from_dict(data)
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from err


def _config_from_released(data: dict[str, Any]) -> ModelConfig:
    """The released lerobot config only varies what our a1-3b preset also names; shapes are fixed."""
    config = a1_3b()
    config.chunk_size = data.get("chunk_size", config.chunk_size)
    config.max_state_dim = data.get("max_state_dim", config.max_state_dim)
    config.max_action_dim = data.get("max_action_dim", config.max_action_dim)
    config.flow.denoise_steps = data.get("num_inference_steps", config.flow.denoise_steps)
    config.text.max_tokens = data.get("tokenizer_max_length", config.text.max_tokens)
    return ModelConfig.from_dict(config.to_dict())  # re-validated


def load_stats(path: Path) -> Stats:
    stats = _read_json(path)
    for robot, features in stats.items():
        if not isinstance(features, dict):
            raise CheckpointError(f"{path}: stats of robot type {robot!r} must map feature -> {{mean, std}}")
        for feature, entry in features.items():
            if not isinstance(entry, dict) or "mean" not in entry or "std" not in entry:
                raise CheckpointError(f"{path}: stats {robot!r} / {feature!r} need 'mean' and 'std'")
    return stats


def load_weights(model: InternVLA, path: Path) -> None:
    """Load model.safetensors strictly; raise CheckpointError naming every key that does not fit."""
    try:
        tensors = load_file(str(path), device="cpu")
    except FileNotFoundError as err:
        raise CheckpointError(f"checkpoint file not found: {path}") from err
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint file is corrupt or unreadable: {path}: {err}") from err

    expected = {KEY_PREFIX + k: v for k, v in model.state_dict().items()}
    tied = _tied_groups(model)
    # Cosmos weights come with its TorchScript files, so a checkpoint may leave them out.
    optional = TOKENIZER_PREFIX if isinstance(model.cosmos, CosmosTokenizer) else None
    missing = [
        k for k in expected
        if k not in tensors
        and not any(alias in tensors for alias in tied.get(k, ()))
        and not (optional and k.startswith(optional))
    ]
    unexpected = [k for k in tensors if k not in expected]
    mis_shaped = [
        f"{k}: checkpoint {tuple(tensors[k].shape)}, model {tuple(expected[k].shape)}"
        for k in tensors
        if k in expected and tensors[k].shape != expected[k].shape
    ]
    problems = [("missing", missing), ("unexpected", unexpected), ("mis-shaped", mis_shaped)]
    if any(keys for _, keys in problems):
        lines = [f"{path} does not fit the {model.config.name} model:"]
        for kind, keys in problems:
            if keys:
                lines.append(f"  {kind} ({len(keys)}):")
                lines.extend(f"    {k}" for k in keys)
        raise CheckpointError("\n".join(lines))
    model.load_state_dict({k[len(KEY_PREFIX):]: v for k, v in tensors.items()}, strict=False)


def _unique_tensors(model: InternVLA) -> dict[str, torch.Tensor]:
    """Prefixed state dict with tied tensors (e.g. Qwen's lm_head = embed_tokens) stored once."""
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() in seen and tensor.numel() > 0:
            continue
        seen.add(tensor.data_ptr())
        tensors[KEY_PREFIX + name] = tensor.detach().contiguous().cpu()
    return tensors


def _tied_groups(model: InternVLA) -> dict[str, tuple[str, ...]]:
    """Prefixed key -> the other keys sharing its parameter."""
    by_param: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        by_param.setdefault(id(param), []).append(KEY_PREFIX + name)
    return {k: tuple(n for n in names if n != k) for names in by_param.values() if len(names) > 1 for k in names}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise CheckpointError(f"checkpoint file not found: {path}") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"checkpoint file is not valid JSON: {path}: {err}") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"checkpoint file must hold a JSON object: {path}")
    return data
