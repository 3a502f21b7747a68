"""Training step time per device, as `model.train` runs it (random weights and batches: speed does
not depend on them).

    python -m bench.bench_train [--steps 20] [--batch-size 16] [--threads 1] [--skip-gpu] [--gpu-preset-batch 4] [--json]

CPU: the `tiny` preset at --batch-size with --threads torch threads (model.train's default 1), the
way the shipped model was trained. GPU (when CUDA is available): `tiny` at the same batch, then
`a1-3b` at --gpu-preset-batch, both in fp32 as `model.train` builds them (AdamW states included in
the peak memory). Each step is forward, backward, gradient clip and AdamW step (model/train_step.py);
the data pipeline is left out, so these are the model's share of a training step.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import numpy as np
import torch

from bench.bench_model import print_result, random_inputs
from model.config import ModelConfig, a1_3b, tiny
from model.internvla import build_model
from model.train_step import TrainBatch, make_optimizer, train_step

WARMUP_STEPS = 3
REAL_ACTION_DIMS = 7  # the sim arm's 6 joints and gripper; the rest of max_action_dim is padding


def random_batch(c: ModelConfig, batch: int, device: torch.device, dtype: torch.dtype) -> TrainBatch:
    fs = c.foresight
    latent = (fs.latent_channels, fs.latent_size, fs.latent_size)
    history = torch.randn(batch, c.num_cameras, fs.num_frames, *latent, device=device, dtype=dtype)  # (B, N, 2, C, h, w)
    return TrainBatch(
        inputs=dataclasses.replace(random_inputs(c, device, dtype, batch), history_latents=history),
        actions=torch.randn(batch, c.chunk_size, c.max_action_dim, device=device, dtype=dtype),  # (B, chunk, A)
        target_latents=torch.randn(batch, c.num_cameras, *latent, device=device, dtype=dtype),  # (B, N, C, h, w)
        action_mask=(torch.arange(c.max_action_dim, device=device) < REAL_ACTION_DIMS).expand(batch, -1),
    )


def bench_steps(config: ModelConfig, batch: int, steps: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = build_model(config, None, device)
    optimizer = make_optimizer(model)
    data = random_batch(config, batch, device, torch.float32)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    load_before = os.getloadavg()[0]
    times = []
    for i in range(WARMUP_STEPS + steps):
        start = time.perf_counter()
        train_step(model, optimizer, data)  # .item() on the losses waits for the GPU
        if i >= WARMUP_STEPS:
            times.append(1e3 * (time.perf_counter() - start))
    return {
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "preset": config.name,
        "dtype": "float32",
        "batch": batch,
        "threads": None if cuda else torch.get_num_threads(),
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "steps_per_s_p50": 1e3 / float(np.percentile(times, 50)),
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
        "ms": {"train_step": {"p50": float(np.percentile(times, 50)), "p90": float(np.percentile(times, 90))}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16, help="the tiny preset's batch (model.train's default)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for the CPU run")
    parser.add_argument("--skip-gpu", action="store_true")
    parser.add_argument("--gpu-preset-batch", type=int, default=4, help="a1-3b batch on the GPU")
    parser.add_argument("--json", action="store_true", help="print one JSON object per benchmark")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runs = [(tiny(), args.batch_size, torch.device("cpu"))]
    if torch.cuda.is_available() and not args.skip_gpu:
        gpu = torch.device("cuda")
        runs += [(tiny(), args.batch_size, gpu), (a1_3b(), args.gpu_preset_batch, gpu)]
    for config, batch, device in runs:
        result = bench_steps(config, batch, args.steps, device)
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            print_result(result)


if __name__ == "__main__":
    main()
