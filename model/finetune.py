"""Fine-tune a checkpoint on recorded corrections, optionally mixed with the base demonstrations.

    python -m model.finetune --dataset recordings/console [--checkpoint DIR] [--base-dataset DIR]
        [--base-fraction 0.5] [--base-cache DIR] [--out DIR] [--steps 1000] [--lr 1e-4] [--batch-size 16]
        [--learn-from all|operator|successes] [--recovery-weight W] [--surprise-weight W --surprise-window-s S]
        [--surprise-calibration FILE] [--gen-loss-weight W] [--ema-decay D]

Starts from --checkpoint (default: the shipped model) with its weights, config and normalisation
stats, and a fresh optimizer; model.train does the work (progress bar, loss curves, checkpoints,
resume when rerun). Also writes the recordings dataset's own `stats.json` in the InternVLA-A1
layout (robot type -> feature -> mean/std, delta-mode actions) at the dataset's top level, so the
same data feeds the paper's fine-tuning flow for the 3B model. The console loads the result
without a restart: paste the printed checkpoint folder under "Model" and press Load.

Recordings made in "attempts" mode hold the policy's frames too: `--learn-from operator` learns only
the operator's takeovers, with the frames before each takeover as its history (model.train);
`--learn-from successes` only the episodes the policy won alone (filtered self-imitation).

The context recorded with each frame can weigh it in L_act (model/frame_weights.py, as model.train):
`--recovery-weight W` the operator's recovery frames, `--surprise-weight W --surprise-window-s S` the
frames up to S seconds after a surprise (by default by the calibration beside --checkpoint).
`--ema-decay D` writes an exponential moving average of the weights as each checkpoint (model.train).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from model.checkpoint import CONFIG_FILE, CheckpointError, load_config
from model.shipped import SHIPPED_CHECKPOINT
from model.train import TrainConfig, TrainError, add_ema_flag, add_weighting_flags, train, weighting_options
from model.train_data import LEARN_FROM, DatasetError, check_dataset, compute_stats, open_dataset, read_dataset
from robot_io.surprise_calibration import CalibrationError

DEFAULT_STEPS = 1000
DEFAULT_LR = 1e-4  # below the base run's 3e-4: small steps away from a model that already works
DEFAULT_WARMUP = 50
DATASET_STATS_FILE = "stats.json"  # at the dataset's top level; LeRobot's own are meta/stats.json


def write_dataset_stats(dataset_root: Path, cameras: list[str], checkpoint: Path) -> Path:
    """`<dataset>/stats.json` in the InternVLA-A1 layout, computed from that dataset alone."""
    config = load_config(checkpoint / CONFIG_FILE)
    dataset = open_dataset(dataset_root)
    info = check_dataset(dataset.meta, config, cameras)
    stats = compute_stats(read_dataset(dataset), info, config.chunk_size)
    path = Path(dataset_root) / DATASET_STATS_FILE
    path.write_text(json.dumps(stats, indent=2))
    return path


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, TrainConfig]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="the recordings (LeRobot v3.0) to learn from")
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT, help="the model to fine-tune")
    parser.add_argument("--base-dataset", type=Path, default=None, help="the base demonstrations, mixed in")
    parser.add_argument("--base-fraction", type=float, default=TrainConfig.mix_fraction, help="share of steps from --base-dataset")
    parser.add_argument("--base-cache", type=Path, default=None, help="the base demonstrations' frame/latent cache, if built before")
    parser.add_argument("--out", type=Path, default=None, help="run folder (default runs/finetune_<dataset name>)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--lr", type=float, default=DEFAULT_LR)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gen-loss-weight", type=float, default=TrainConfig.gen_loss_weight,
                        help="W in L_act + W * L_gen (0: the ablation without the generation loss)")
    parser.add_argument("--learn-from", choices=LEARN_FROM, default=TrainConfig.learn_from,
                        help="operator: learn only the operator's frames (recordings in 'attempts' mode); "
                             "successes: only the episodes the policy won alone")
    add_weighting_flags(parser)
    add_ema_flag(parser)
    args = parser.parse_args(argv)
    if not (args.checkpoint / CONFIG_FILE).is_file():
        parser.error(f"--checkpoint {args.checkpoint} holds no checkpoint (no {CONFIG_FILE})")
    out = args.out or Path("runs") / f"finetune_{args.dataset.name}"
    try:
        cfg = TrainConfig(
            dataset=args.dataset, out=out, preset=load_config(args.checkpoint / CONFIG_FILE).name, steps=args.steps,
            batch_size=args.batch_size, lr=args.lr, gen_loss_weight=args.gen_loss_weight, warmup_steps=DEFAULT_WARMUP,
            save_every=max(1, args.steps // 4),
            seed=args.seed, threads=args.threads, init_from=args.checkpoint, mix=args.base_dataset,
            mix_fraction=args.base_fraction, mix_cache=args.base_cache, learn_from=args.learn_from, ema_decay=args.ema_decay,
            **weighting_options(args),
        )
    except ValueError as err:
        parser.error(str(err))
    return args, cfg


def main(argv: list[str] | None = None) -> int:
    args, cfg = parse_args(argv)
    try:
        stats_path = write_dataset_stats(cfg.dataset, list(cfg.cameras), cfg.init_from)
        folder = train(cfg)
    except (DatasetError, CheckpointError, TrainError, CalibrationError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"dataset stats (InternVLA-A1 layout): {stats_path}")
    print(f"fine-tuned checkpoint: {folder}\nloss curves: {cfg.out / 'loss_curves.html'}")
    print("load it in the running console under Model (no restart), or: python app.py --checkpoint", folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
