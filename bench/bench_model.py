"""Policy latency per call, split by stage (random weights: speed does not depend on them).

    python -m bench.bench_model [--calls 50] [--threads 1,2] [--skip-gpu] [--cosmos-dir DIR] [--json]

CPU: the `tiny` preset through the full InternVLAPolicy call (letterbox, 3 cameras, chunk of 50,
three decoded foresight pictures), once per torch thread count. Other processes on the machine
skew these figures a lot (two threads most): the load average before/after is printed with them. GPU (when CUDA is available): `a1-3b` in bf16 through the three
passes; the foresight tokenizer is Cosmos when --cosmos-dir holds its files, else a stand-in conv
autoencoder at 256x256 (labelled as such: Cosmos's decoder costs more). `a1-3b` on the CPU, one
call with a save/load check: python -m bench.bench_full_size.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import time

import numpy as np
import torch

from model.config import ModelConfig, a1_3b, tiny
from model.internvla import ModelInputs, build_model
from model.policy import InternVLAPolicy
from model.tokenizer import ConvAutoencoder

STATE_KEYS = [f"joint_{i}.pos" for i in range(1, 7)] + ["gripper.pos"]
CAMERAS = ["head", "wrist", "side"]
INSTRUCTION = "pick the red block and place it in the bin"
WARMUP_CALLS = 5


def percentiles(rows: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    return {
        stage: {"p50": float(np.percentile([r[stage] for r in rows], 50)), "p90": float(np.percentile([r[stage] for r in rows], 90))}
        for stage in rows[0]
    }


def unit_stats() -> dict:
    """Stats of robot type "sim" that leave state and actions as they are (mean 0, std 1)."""
    unit = {"mean": [0.0] * len(STATE_KEYS), "std": [1.0] * len(STATE_KEYS)}
    return {"sim": {"observation.state": unit, "action": unit}}


def random_observation(rng: np.random.Generator) -> dict:
    """A random state in [-1, 1] and a random 224x224 frame per camera."""
    obs = {k: float(v) for k, v in zip(STATE_KEYS, rng.uniform(-1, 1, len(STATE_KEYS)))}
    return obs | {cam: rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for cam in CAMERAS}


def bench_tiny_cpu(calls: int) -> dict:
    torch.manual_seed(0)
    model = build_model(tiny())
    policy = InternVLAPolicy(model, unit_stats(), state_keys=STATE_KEYS, action_keys=STATE_KEYS, camera_keys=CAMERAS, seed=0)
    rng = np.random.default_rng(0)
    rows = []
    load_before = os.getloadavg()[0]
    for i in range(WARMUP_CALLS + calls):
        out = policy.infer(random_observation(rng), INSTRUCTION)
        if i >= WARMUP_CALLS:
            rows.append(out.timings_ms)
    return {
        "device": "cpu",
        "preset": "tiny",
        "threads": torch.get_num_threads(),
        "calls": calls,
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "ms": percentiles(rows),
    }


def bench_three_passes(config: ModelConfig, calls: int, cosmos_dir: str | None, device: torch.device, dtype: torch.dtype) -> dict:
    """The model's three passes with foresight encode/decode, timed per stage (a1-3b on a GPU)."""
    torch.manual_seed(0)
    model = build_model(config, cosmos_dir, device, dtype)
    tokenizer_label = type(model.cosmos).__name__
    if model.cosmos is None:
        model.cosmos = ConvAutoencoder(config.foresight.latent_channels).to(device, dtype).eval()
        tokenizer_label = "ConvAutoencoder as a stand-in (no Cosmos files given)"
    x = random_inputs(config, device, dtype)
    frames = torch.rand(1, config.num_cameras, 2, 3, config.image_size, config.image_size, device=device, dtype=dtype) * 2 - 1
    clock = _Clock(device)
    rows = []
    with torch.inference_mode():
        for i in range(WARMUP_CALLS + calls):
            marks = [clock.now()]
            x = dataclasses.replace(x, history_latents=model.encode_frames(frames))
            layout, cache = model.prefill_prefix(x)
            marks.append(clock.now())
            cache, latents = model.prefill_generation(x, layout, cache)
            model.decode_latents(latents)
            marks.append(clock.now())
            model.denoise(x.state, layout, cache)
            marks.append(clock.now())
            if i >= WARMUP_CALLS:
                prefix, foresight, denoise = (1e3 * (b - a) for a, b in itertools.pairwise(marks))
                rows.append({"prefix": prefix, "foresight_encode_generate_decode": foresight, "denoise_10_steps": denoise, "total": prefix + foresight + denoise})
    ms = percentiles(rows)
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
        "preset": config.name,
        "dtype": str(dtype).removeprefix("torch."),
        "tokenizer": tokenizer_label,
        "calls": calls,
        "ms": ms,
        "calls_per_s_p50": 1e3 / ms["total"]["p50"],
        "peak_memory_gib": clock.peak_memory_gib(),
    }


class _Clock:
    """Wall time that waits for the GPU, and its peak memory since construction."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(device)

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def peak_memory_gib(self) -> float | None:
        return torch.cuda.max_memory_allocated() / 2**30 if self.cuda else None


def random_inputs(c: ModelConfig, device: torch.device, dtype: torch.dtype, batch: int = 1) -> ModelInputs:
    """Random model inputs with a 12-token instruction; history latents empty (callers set them)."""
    text_mask = torch.arange(c.text.max_tokens, device=device)[None].expand(batch, -1) < 12  # a 12-token instruction
    return ModelInputs(
        images=torch.rand(batch, c.num_cameras, 3, c.image_size, c.image_size, device=device, dtype=dtype) * 2 - 1,
        camera_mask=torch.ones(batch, c.num_cameras, dtype=torch.bool, device=device),
        text_tokens=torch.randint(0, c.text.vocab_size, (batch, c.text.max_tokens), device=device),
        text_mask=text_mask,
        history_latents=torch.empty(0, device=device),  # replaced per call, inside the timing
        state=torch.randn(batch, c.max_state_dim, device=device, dtype=dtype),
    )


def print_result(result: dict) -> None:
    header = {k: v for k, v in result.items() if k != "ms"}
    print(", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in header.items()))
    for stage, p in result["ms"].items():
        print(f"  {stage:<34} p50 {p['p50']:8.1f} ms   p90 {p['p90']:8.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--threads", default="1,2", help="comma-separated torch CPU thread counts for the tiny run")
    parser.add_argument("--skip-gpu", action="store_true")
    parser.add_argument("--cosmos-dir", default=None, help="folder with Cosmos-Tokenizer-CI8x8 encoder.jit / decoder.jit")
    parser.add_argument("--json", action="store_true", help="print one JSON object per benchmark")
    args = parser.parse_args()
    results = []
    for threads in (int(n) for n in args.threads.split(",")):
        torch.set_num_threads(threads)
        results.append(bench_tiny_cpu(args.calls))
    if torch.cuda.is_available() and not args.skip_gpu:
        results.append(bench_three_passes(a1_3b(), args.calls, args.cosmos_dir, torch.device("cuda"), torch.bfloat16))
    for result in results:
        if args.json:
            print(json.dumps(result))
        else:
            print_result(result)


if __name__ == "__main__":
    main()
