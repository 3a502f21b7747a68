"""Train InternVLA-A1 on a LeRobot v3.0 dataset: loss = L_act + W * L_gen, AdamW (0.9, 0.95).

    python -m model.train --preset tiny --dataset DIR --out DIR [--steps N] [--batch-size B]
        [--gen-loss-weight W] [--seed S] [--tokenizer DIR] [--device auto|cpu|cuda]
        [--lr LR] [--warmup-steps W] [--save-every K] [--threads T] [--cameras head,wrist,side] [--cache DIR]
        [--learn-from all|operator|successes] [--init-from CKPT] [--mix DIR] [--start-frames N --start-share S] [--mask-generation]
        [--recovery-weight W] [--surprise-weight W --surprise-window-s S --surprise-calibration FILE]
        [--ema-decay D]

The dataset is checked before anything else (cameras, dims, tasks, a resumed run's robot type).
Frames are decoded, letterboxed and encoded by the frozen image tokenizer once, into OUT/cache
(or --cache DIR, which runs on the same dataset and tokenizer can share: it is rebuilt when they differ).
The learning rate warms up linearly for --warmup-steps, then follows a cosine to 10% of it at --steps.
Checkpoints in the released layout go to OUT/checkpoints/step_NNNNNNN every --save-every steps
and at the end, with train_config.json and training_state.pt (optimizer, step, RNG, losses);
rerunning the same command resumes from the latest one. Loss curves: OUT/loss_curves.html.
OUT/progress.jsonl gets one JSON line per step (step, steps, lr, losses) and one per checkpoint
(step, checkpoint folder), appended as they happen: what a watcher (the console's Train panel) reads.

--ema-decay D (e.g. 0.999) keeps an exponential moving average of the weights (model/weight_ema.py)
and writes it as each checkpoint's weights, what the console and model.evaluate load; the weights
the optimizer is at are kept in training_state.pt for resuming. 0 (the default): no average.

--learn-from operator learns only the chunks of frames an operator drove, in a dataset recorded in
"attempts" mode (DAgger: the policy's own frames before a takeover are the history of the first
corrected ones, as they were when the operator saw them); --learn-from successes learns only the
episodes the policy finished alone and won (recorded by `runtime.collect_corrections --mode attempts
--no-operator`: filtered self-imitation); --mix datasets are learned whole.

--recovery-weight and --surprise-weight weigh frames in L_act by the context the console recorded
with them (model/frame_weights.py): the operator's recovery frames, and the frames up to
--surprise-window-s seconds after a surprise, a judged foresight that raised the alarm of the surprise
calibration (--surprise-calibration FILE, default the one beside --init-from). Weights of 1 (the
defaults) train as before; datasets recorded without those columns are not weighted by them.

--tokenizer: the frozen image tokenizer's folder, as build_model takes it: encoder.jit / decoder.jit
for `cosmos` presets, tokenizer.safetensors (from `python -m model.train_tokenizer`) for `conv` ones;
or a model checkpoint, whose trained tokenizer is taken (e.g. the shipped model's, for a run from scratch).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from model.checkpoint import (
    CONFIG_FILE,
    STATS_FILE,
    TRAIN_CONFIG_FILE,
    CheckpointError,
    Stats,
    load_checkpoint,
    load_config,
    load_stats,
    save_checkpoint,
    tokenizer_folder,
)
from model.config import PRESETS, FlowConfig, ModelConfig, preset
from model.frame_weights import FrameWeighting, describe, frame_weights, weighting_problems
from model.internvla import InternVLA, build_model
from model.train_data import (
    LEARN_FROM,
    DatasetArrays,
    DatasetError,
    TrainingData,
    build_cache,
    check_dataset,
    compute_stats,
    open_dataset,
    open_metadata,
    read_dataset,
    target_frames,
)
from model.train_step import make_optimizer, train_step, trainable_parameters
from model.weight_ema import WeightEMA, check_decay
from robot_io.sim.foresight_setting import read_setting
from robot_io.sim.scene import CAMERA_NAMES
from robot_io.surprise_calibration import CALIBRATION_FILE, CalibrationError, SurpriseCalibration

DEVICES = ("auto", "cpu", "cuda")
STATE_FILE = "training_state.pt"  # written last: a checkpoint folder without it is incomplete
PROGRESS_FILE = "progress.jsonl"  # in OUT: {"step", "steps", "lr", losses} per step, {"step", "checkpoint"} per checkpoint
CHECKPOINTS = "checkpoints"
# Settings a resumed run must share with the run it continues (steps may grow).
RESUME_KEYS = ("preset", "dataset", "batch_size", "gen_loss_weight", "seed", "lr", "warmup_steps", "cameras", "tokenizer",
               "init_from", "mix", "mix_fraction", "start_frames", "start_share", "learn_from", "mask_generation", "max_committed_steps",
               "recovery_weight", "surprise_weight", "surprise_window_s", "surprise_calibration", "ema_decay")
FINAL_LR_FRACTION = 0.1  # the cosine ends at this fraction of the peak learning rate
MIX_STREAM = 1  # the random stream choosing a step's dataset, apart from the one choosing frames
START_STREAM = 2  # the random stream choosing episode-start frames


class TrainError(ValueError):
    """The run folder holds a run with other settings."""


@dataclass
class TrainConfig:
    dataset: Path
    out: Path
    preset: str = "tiny"
    steps: int = 20_000
    batch_size: int = 32
    gen_loss_weight: float = 0.01
    seed: int = 0
    lr: float | None = None  # None: the preset's (5e-5, the paper's)
    warmup_steps: int = 200
    save_every: int = 500
    tokenizer: Path | None = None
    device: str = "auto"
    threads: int | None = None  # CPU threads for torch; None: torch's default
    cameras: tuple[str, ...] = CAMERA_NAMES  # model slot order; the policy's camera_keys
    cache: Path | None = None  # None: OUT/cache
    # Fine-tuning: start from this checkpoint's weights, config and normalisation stats (a fresh
    # optimizer); its stats are kept so the fine-tuned model reads the robot as the base one did.
    init_from: Path | None = None
    mix: Path | None = None  # a second dataset (e.g. the base demonstrations) mixed into training
    mix_fraction: float = 0.5  # share of steps whose batch comes from `mix`
    mix_cache: Path | None = None  # its frame/latent cache (None: OUT/cache_mix); may be shared
    # A share of every batch drawn from the first `start_frames` frames of episodes: where the
    # instruction decides what happens (later, the arm's motion so far gives it away).
    start_frames: int = 0
    start_share: float = 0.0
    learn_from: str = "all"  # one of LEARN_FROM: which of `dataset`'s frames have their chunks learned
    mask_generation: bool = False  # True: the action expert never reads the generation tokens (ModelConfig.action_reads_generation)
    # Train chunks given their first 0..N steps clean (FlowConfig.max_committed_steps); None: as the
    # checkpoint started from (or the preset) was.
    max_committed_steps: int | None = None
    # Per-frame weights of L_act from the recorded context (model/frame_weights.py); 1: unweighted.
    recovery_weight: float = 1.0
    surprise_weight: float = 1.0
    surprise_window_s: float = 1.0
    surprise_calibration: Path | None = None  # what counts as a surprise; None: the one beside init_from
    # Checkpoints hold an exponential moving average of the weights with this decay (model/weight_ema.py); 0: none.
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        self.dataset, self.out = _absolute(self.dataset), _absolute(self.out)  # compared when resuming
        self.cache = self.out / "cache" if self.cache is None else _absolute(self.cache)
        self.tokenizer = None if self.tokenizer is None else _absolute(self.tokenizer)
        self.init_from = None if self.init_from is None else _absolute(self.init_from)
        if self.surprise_calibration is None and self.surprise_weight != 1 and self.init_from is not None \
                and (self.init_from / CALIBRATION_FILE).is_file():
            self.surprise_calibration = self.init_from / CALIBRATION_FILE
        self.surprise_calibration = None if self.surprise_calibration is None else _absolute(self.surprise_calibration)
        self.mix = None if self.mix is None else _absolute(self.mix)
        self.mix_cache = self.out / "cache_mix" if self.mix_cache is None else _absolute(self.mix_cache)
        self.cameras = tuple(self.cameras)
        problems = []
        if self.preset not in PRESETS:
            problems.append(f"unknown preset {self.preset!r}; known: {', '.join(PRESETS)}")
        for name in ("steps", "batch_size", "save_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.gen_loss_weight < 0:
            problems.append(f"gen_loss_weight must be >= 0, got {self.gen_loss_weight}")
        if self.warmup_steps < 0:
            problems.append(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.lr is not None and self.lr <= 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if self.threads is not None and self.threads < 1:
            problems.append(f"threads must be >= 1, got {self.threads}")
        if self.device not in DEVICES:
            problems.append(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            problems.append("device 'cuda' asked for, but torch sees no CUDA device")
        if self.tokenizer is not None and not self.tokenizer.is_dir():
            problems.append(f"tokenizer folder {self.tokenizer} does not exist")
        if not self.cameras or len(set(self.cameras)) != len(self.cameras):
            problems.append(f"cameras must be distinct names, got {list(self.cameras)}")
        if self.init_from is not None and not (self.init_from / "config.json").is_file():
            problems.append(f"init_from {self.init_from} holds no checkpoint (no config.json)")
        if self.start_frames < 0 or not 0.0 <= self.start_share <= 1.0 or (self.start_share > 0 and self.start_frames == 0):
            problems.append(f"start_frames must be >= 1 and start_share in [0, 1] when used, got {self.start_frames}, {self.start_share}")
        if self.learn_from not in LEARN_FROM:
            problems.append(f"learn_from must be one of {', '.join(LEARN_FROM)}, got {self.learn_from!r}")
        if not 0.0 <= self.mix_fraction <= 1.0:
            problems.append(f"mix_fraction must be in [0, 1], got {self.mix_fraction}")
        if self.max_committed_steps is not None:
            try:  # the rule lives with the flow's config; the bound by the chunk size is checked with the model's
                FlowConfig(max_committed_steps=self.max_committed_steps)
            except ValueError as err:
                problems.append(str(err))
        if (problem := check_decay(self.ema_decay)) is not None:
            problems.append(problem)
        problems += weighting_problems(self.recovery_weight, self.surprise_weight, self.surprise_window_s)
        if self.surprise_weight != 1 and self.surprise_calibration is None:
            problems.append(f"surprise_weight needs a surprise calibration: --surprise-calibration FILE, or a "
                            f"{CALIBRATION_FILE} beside --init-from (python -m runtime.calibrate_surprise makes one)")
        elif self.surprise_calibration is not None and not self.surprise_calibration.is_file():
            problems.append(f"surprise calibration {self.surprise_calibration} does not exist")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {k: str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def _absolute(path: str | Path) -> Path:
    return Path(path).expanduser().absolute()


def train(cfg: TrainConfig) -> Path:
    """Train (or resume) to cfg.steps; returns the latest checkpoint folder."""
    device = cfg.torch_device
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    resume = latest_checkpoint(cfg.out)
    resumed_stats = load_stats(resume / "stats.json") if resume else None
    if resume:
        check_same_run(cfg, json.loads((resume / TRAIN_CONFIG_FILE).read_text())["train"])

    start = resume or cfg.init_from  # the checkpoint whose weights this run starts from, if any
    if start is None and cfg.tokenizer is None and preset(cfg.preset).foresight.tokenizer == "conv":
        print("warning: no --tokenizer given: foresight latents come from an untrained autoencoder", file=sys.stderr)
    base_config = _checkpoint_config(cfg, start) if start else None
    known_stats = resumed_stats or (load_stats(cfg.init_from / STATS_FILE) if cfg.init_from else None)
    model_config = model_config_for(cfg, base_config)
    info = check_dataset(open_metadata(cfg.dataset), model_config, list(cfg.cameras), known_stats, cfg.learn_from)  # before any work
    mix_info = check_dataset(open_metadata(cfg.mix), model_config, list(cfg.cameras), known_stats) if cfg.mix else None
    dataset = open_dataset(cfg.dataset)

    torch.manual_seed(cfg.seed)
    tokenizer = None if cfg.tokenizer is None else tokenizer_folder(cfg.tokenizer, cfg.out / "tokenizer")
    model = load_checkpoint(start, tokenizer, device)[0] if start else build_model(model_config, tokenizer, device)
    model.config = model_config  # this run's loss weight and learning rate
    optimizer = make_optimizer(model)
    ema = WeightEMA(trainable_parameters(model), cfg.ema_decay) if cfg.ema_decay > 0 else None
    arrays = read_dataset(dataset)
    targets = target_frames(arrays, cfg.learn_from)
    stats = compute_stats(arrays, info, model_config.chunk_size, targets) if known_stats is None else known_stats
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "stats.json").write_text(json.dumps(stats, indent=2))
    weighting = frame_weighting(cfg)
    data = TrainingData(info, arrays, build_cache(dataset, info, model, cfg.cache), stats, model.config, cfg.learn_from,
                        weights_for(dataset, arrays, weighting))
    mix_data = None
    if mix_info is not None:
        mix_dataset = open_dataset(cfg.mix)
        mix_cache = build_cache(mix_dataset, mix_info, model, cfg.mix_cache)
        mix_arrays = read_dataset(mix_dataset)
        mix_data = TrainingData(mix_info, mix_arrays, mix_cache, stats, model.config,
                                weights=weights_for(mix_dataset, mix_arrays, weighting))

    step, history = 0, []
    if resume:
        state = torch.load(resume / STATE_FILE, map_location="cpu", weights_only=False)
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and device.type == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        step, history = state["step"], state["history"]
        if ema is not None:  # the checkpoint's weights are the average; the optimizer's are in the state
            ema.resume(state["trained_weights"])
    extra = {"train": cfg.to_dict(), "dataset": dataclasses.asdict(info), "action_mode": "delta",
             "sim_setting": _recorded_setting(cfg.dataset), "mix_sim_setting": _recorded_setting(cfg.mix) if cfg.mix else None}

    peak_lr = model.config.optim.lr
    last = resume
    progress = tqdm(range(step, cfg.steps), initial=step, total=cfg.steps, desc="train", unit="step")
    for step in progress:
        source = data
        if mix_data is not None and np.random.default_rng([cfg.seed, step, MIX_STREAM]).random() < cfg.mix_fraction:
            source = mix_data
        draw = np.random.default_rng([cfg.seed, step]).integers(0, len(source.targets), cfg.batch_size)  # same batches on resume
        frames = source.targets[draw]
        if cfg.start_share > 0:
            starts = source.start_frame_indices(cfg.start_frames)
            count = round(cfg.start_share * cfg.batch_size)
            frames[:count] = np.random.default_rng([cfg.seed, step, START_STREAM]).choice(starts, count)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, peak_lr, cfg.warmup_steps, cfg.steps)
        losses = train_step(model, optimizer, source.batch(frames, device))
        if ema is not None:
            ema.update()
        history.append({"step": step + 1, "lr": optimizer.param_groups[0]["lr"], **losses})
        log_progress(cfg.out, {**history[-1], "steps": cfg.steps})
        progress.set_postfix(loss=f"{losses['loss']:.4f}", act=f"{losses['action_loss']:.4f}", gen=f"{losses['gen_loss']:.4f}")
        if (step + 1) % cfg.save_every == 0 or step + 1 == cfg.steps:
            last = save_training_checkpoint(cfg.out, model, stats, optimizer, step + 1, history, extra, ema)
            log_progress(cfg.out, {"step": step + 1, "checkpoint": str(last)})
    return last


def frame_weighting(cfg: TrainConfig) -> FrameWeighting:
    calibration = None if cfg.surprise_calibration is None else SurpriseCalibration.load(cfg.surprise_calibration)
    return FrameWeighting(cfg.recovery_weight, cfg.surprise_weight, cfg.surprise_window_s, calibration)


def weights_for(dataset: Any, arrays: DatasetArrays, weighting: FrameWeighting) -> np.ndarray | None:
    """Each frame's weight in L_act (None: all 1); what it did is printed."""
    if not weighting.active:
        return None
    weighted = frame_weights(arrays.context, arrays.episodes, dataset.meta.fps, weighting)
    print(f"{Path(dataset.root).name}: {describe(weighted, weighting, arrays.context)}", flush=True)
    return weighted.weights


def log_progress(out: Path, record: dict[str, Any]) -> None:
    """Append one line to OUT/progress.jsonl, closed at once so a watcher reads whole lines."""
    with (out / PROGRESS_FILE).open("a") as log:
        log.write(json.dumps(record) + "\n")


def learning_rate(step: int, peak: float, warmup: int, total: int) -> float:
    """Linear warmup to `peak`, then a cosine down to FINAL_LR_FRACTION * peak at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return peak * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * 0.5 * (1 + math.cos(math.pi * progress)))


def model_config_for(cfg: TrainConfig, base: ModelConfig | None = None) -> ModelConfig:
    """The preset's config (or a fine-tuned checkpoint's) with this run's loss weight, learning rate,
    committed steps and, with mask_generation, the action expert blind to the generation tokens."""
    config = dataclasses.replace(base or preset(cfg.preset), gen_loss_weight=cfg.gen_loss_weight)
    if cfg.mask_generation:
        config.action_reads_generation = False
    if cfg.max_committed_steps is not None:
        config = dataclasses.replace(config, flow=dataclasses.replace(config.flow, max_committed_steps=cfg.max_committed_steps))
    if cfg.lr is not None:
        config.optim = dataclasses.replace(config.optim, lr=cfg.lr)
    return config


def _checkpoint_config(cfg: TrainConfig, folder: Path) -> ModelConfig:
    """The config of the checkpoint a run starts from; it must be of the run's preset."""
    config = load_config(folder / CONFIG_FILE)
    if config.name != cfg.preset:
        raise TrainError(f"{folder} is a {config.name!r} checkpoint, not {cfg.preset!r}: pass --preset {config.name}")
    return config


def latest_checkpoint(out: Path) -> Path | None:
    done = sorted(p.parent for p in (out / CHECKPOINTS).glob(f"step_*/{STATE_FILE}"))
    return done[-1] if done else None


def check_same_run(cfg: TrainConfig, previous: dict[str, Any]) -> None:
    now = cfg.to_dict()
    # A setting the checkpoint predates had its default then.
    defaults = {f.name: TrainConfig.__dataclass_fields__[f.name].default for f in dataclasses.fields(TrainConfig)}
    was = {k: previous.get(k, defaults[k]) for k in RESUME_KEYS}
    differ = [f"{k}: checkpoint {was[k]!r}, now {now[k]!r}" for k in RESUME_KEYS if was[k] != now[k]]
    if differ:
        raise TrainError(f"{cfg.out} holds a run with other settings; use another --out or the same settings:\n  " + "\n  ".join(differ))


def save_training_checkpoint(
    out: Path, model: InternVLA, stats: Stats, optimizer: torch.optim.Optimizer, step: int,
    history: list[dict[str, float]], extra: dict[str, Any], ema: WeightEMA | None = None,
) -> Path:
    """The released layout (with the average's weights when there is one) and, last, the training state."""
    with nullcontext() if ema is None else ema.swapped_in() as trained:
        folder = save_checkpoint(out / CHECKPOINTS / f"step_{step:07d}", model, stats)
    (folder / TRAIN_CONFIG_FILE).write_text(json.dumps(extra | {"step": step}, indent=2))
    state = {
        "optimizer": optimizer.state_dict(), "step": step, "history": history,
        "torch_rng": torch.get_rng_state(),  # flow-matching noise and times: a resumed run draws what it would have
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "trained_weights": trained,  # the weights the optimizer is at, where the checkpoint holds the average
    }
    torch.save(state, folder / STATE_FILE)
    write_loss_curves(history, out / "loss_curves.html")
    return folder


def write_loss_curves(history: list[dict[str, float]], path: Path) -> None:
    import plotly.graph_objects as go

    steps = [h["step"] for h in history]
    figure = go.Figure([go.Scatter(x=steps, y=[h[name] for h in history], name=name) for name in ("loss", "action_loss", "gen_loss")])
    figure.update_layout(title="InternVLA-A1 training losses", xaxis_title="step", yaxis_title="loss", yaxis_type="log")
    figure.write_html(path, include_plotlyjs=True)  # self-contained: opens offline


def _recorded_setting(dataset: Path) -> dict | None:
    """The conveyor's foresight setting the dataset was collected in (robot_io/sim/foresight_setting.py),
    None for a dataset that does not say (the standard conveyor before the setting existed, another robot)."""
    setting = read_setting(dataset)
    return None if setting is None else setting.to_dict()


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    parser.add_argument("--dataset", type=Path, required=True, help="LeRobot v3.0 dataset folder")
    parser.add_argument("--out", type=Path, required=True, help="run folder: cache, checkpoints, loss curves")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps, help="total optimizer steps (resumed runs count on)")
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--gen-loss-weight", type=float, default=TrainConfig.gen_loss_weight, help="W in L_act + W * L_gen")
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--lr", type=float, default=None, help="AdamW learning rate (default: the preset's)")
    parser.add_argument("--warmup-steps", type=int, default=TrainConfig.warmup_steps, help="linear learning-rate warmup")
    parser.add_argument("--save-every", type=int, default=TrainConfig.save_every, help="checkpoint every K steps")
    parser.add_argument("--tokenizer", type=Path, default=None, help="image tokenizer folder (see above)")
    parser.add_argument("--device", default="auto", choices=DEVICES)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 was ~3x faster per step than 2 on 2 cores shared with other work)")
    parser.add_argument("--cameras", default=",".join(CAMERA_NAMES), help="comma-separated camera names, in model slot order")
    parser.add_argument("--cache", type=Path, default=None, help="frame/latent cache folder (default OUT/cache); runs may share one")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="fine-tune: start from this checkpoint's weights and keep its normalisation stats")
    parser.add_argument("--mix", type=Path, default=None, help="a second dataset mixed in (e.g. the base demonstrations)")
    parser.add_argument("--mix-fraction", type=float, default=TrainConfig.mix_fraction, help="share of steps drawn from --mix")
    parser.add_argument("--mix-cache", type=Path, default=None, help="--mix's frame/latent cache (default OUT/cache_mix)")
    parser.add_argument("--start-frames", type=int, default=0, help="episode-start frames (see --start-share)")
    parser.add_argument("--start-share", type=float, default=0.0,
                        help="share of each batch drawn from the first --start-frames frames of episodes")
    parser.add_argument("--learn-from", choices=LEARN_FROM, default=TrainConfig.learn_from,
                        help="operator: learn only the operator's frames of --dataset (recorded in 'attempts' mode), "
                             "the policy's earlier frames serving as their history; successes: only the episodes "
                             "the policy won alone")
    parser.add_argument("--mask-generation", action="store_true",
                        help="train the action expert blind to the generation tokens (the foresight ablation)")
    parser.add_argument("--max-committed-steps", type=int, default=None,
                        help="train each chunk given its first 0..N steps (the steps committed before it can take over "
                             "in the console); default: as the checkpoint of --init-from, else 0")
    add_weighting_flags(parser)
    add_ema_flag(parser)
    args = parser.parse_args(argv)
    try:
        return TrainConfig(
            dataset=args.dataset, out=args.out, preset=args.preset, steps=args.steps, batch_size=args.batch_size,
            gen_loss_weight=args.gen_loss_weight, seed=args.seed, lr=args.lr, warmup_steps=args.warmup_steps, save_every=args.save_every,
            tokenizer=args.tokenizer, device=args.device, threads=args.threads, cache=args.cache,
            init_from=args.init_from, mix=args.mix, mix_fraction=args.mix_fraction, mix_cache=args.mix_cache,
            start_frames=args.start_frames, start_share=args.start_share, learn_from=args.learn_from,
            mask_generation=args.mask_generation, max_committed_steps=args.max_committed_steps,
            cameras=tuple(c.strip() for c in args.cameras.split(",") if c.strip()), ema_decay=args.ema_decay,
            **weighting_options(args),
        )
    except ValueError as err:
        parser.error(str(err))


def add_weighting_flags(parser: argparse.ArgumentParser) -> None:
    """The per-frame weights of L_act (model/frame_weights.py); model.finetune takes them too."""
    parser.add_argument("--recovery-weight", type=float, default=TrainConfig.recovery_weight,
                        help="weight in L_act of the operator's recovery frames (default 1: unweighted)")
    parser.add_argument("--surprise-weight", type=float, default=TrainConfig.surprise_weight,
                        help="weight in L_act of the frames from a surprise to --surprise-window-s after it (default 1)")
    parser.add_argument("--surprise-window-s", type=float, default=TrainConfig.surprise_window_s,
                        help="seconds after a surprise whose frames weigh --surprise-weight (default 1)")
    parser.add_argument("--surprise-calibration", type=Path, default=None, metavar="FILE",
                        help=f"what counts as a surprise (default: {CALIBRATION_FILE} beside --init-from)")


def add_ema_flag(parser: argparse.ArgumentParser) -> None:
    """The weight average written to checkpoints; model.finetune takes it too."""
    parser.add_argument("--ema-decay", type=float, default=TrainConfig.ema_decay,
                        help="checkpoints hold an exponential moving average of the weights with this decay "
                             "(e.g. 0.999; default 0: the last step's weights)")


def weighting_options(args: argparse.Namespace) -> dict[str, Any]:
    """TrainConfig's fields from add_weighting_flags' flags."""
    return {"recovery_weight": args.recovery_weight, "surprise_weight": args.surprise_weight,
            "surprise_window_s": args.surprise_window_s, "surprise_calibration": args.surprise_calibration}


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    try:
        folder = train(cfg)
    except (DatasetError, CheckpointError, TrainError, CalibrationError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"checkpoint: {folder}\nloss curves: {cfg.out / 'loss_curves.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
