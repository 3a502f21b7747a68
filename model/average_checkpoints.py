"""Average the weights of checkpoints fine-tuned from one parent (a "model soup", Wortsman et al. 2022).

    python -m model.average_checkpoints --out DIR CHECKPOINT CHECKPOINT [CHECKPOINT ...]

Fine-tunings that start from the same weights stay in one basin, so their mean is a model too,
often better than each; averaging costs no training and keeps the size and speed. The sources must
agree on the model config, the normalisation stats and the robot layout they learned (each
difference is named); the optimizer settings and the sampling noise scale may differ (fine-tunings
at other learning rates average fine), and the result keeps the first source's. The result is an
ordinary checkpoint: its `train_config.json` keeps the first source's layout and names every source
under "average_of".
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from model.checkpoint import (
    TRAIN_CONFIG_FILE,
    CheckpointError,
    load_checkpoint,
    read_layout,
    save_checkpoint,
)
from model.config import ModelConfig

MIN_SOURCES = 2


def average_checkpoints(sources: list[Path], out: Path) -> Path:
    """Write the element-wise mean of the sources' weights to `out`; refuse sources that disagree."""
    if len(sources) < MIN_SOURCES:
        raise CheckpointError(f"averaging needs at least {MIN_SOURCES} checkpoints, got {len(sources)}")
    loaded = [load_checkpoint(folder) for folder in sources]
    first_model, first_stats = loaded[0]
    first_layout = read_layout(sources[0])
    for folder, (model, stats) in zip(sources[1:], loaded[1:]):
        differ = [
            name for name, same in (
                ("model config", _weights_config(model.config) == _weights_config(first_model.config)),
                ("normalisation stats", stats == first_stats),
                ("robot layout", read_layout(folder) == first_layout),
            ) if not same
        ]
        if differ:
            raise CheckpointError(f"{folder} cannot be averaged with {sources[0]}: its {', '.join(differ)} differ")

    states = [model.state_dict() for model, _ in loaded]
    mean = {
        # integer buffers (counters, indices) are not weights: every source holds the same
        name: torch.stack([s[name].float() for s in states]).mean(0).to(tensor.dtype)
        if tensor.is_floating_point() else tensor
        for name, tensor in states[0].items()
    }
    first_model.load_state_dict(mean)
    save_checkpoint(out, first_model, first_stats)
    train_config = _read_train_config(sources[0])
    train_config["average_of"] = [str(folder.resolve()) for folder in sources]
    (out / TRAIN_CONFIG_FILE).write_text(json.dumps(train_config, indent=2))
    return out


def _weights_config(config: ModelConfig) -> dict:
    """The config that shapes and means the weights: without the optimizer and the sampling noise scale."""
    shaping = config.to_dict()
    del shaping["optim"], shaping["flow"]["sample_noise_scale"]
    return shaping


def _read_train_config(folder: Path) -> dict:
    path = folder / TRAIN_CONFIG_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", type=Path, nargs="+", help="checkpoint folders fine-tuned from one parent")
    parser.add_argument("--out", type=Path, required=True, help="folder for the averaged checkpoint")
    args = parser.parse_args(argv)
    if args.out.resolve() in {folder.resolve() for folder in args.sources}:
        parser.error("--out must not be one of the sources")
    try:
        out = average_checkpoints(args.sources, args.out)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"average of {len(args.sources)} checkpoints: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
