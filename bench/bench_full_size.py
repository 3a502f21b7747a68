"""The full-size model end to end on the CPU: a1-3b with random weights, one call, save and reload.

    python -m bench.bench_full_size [--threads 2]

Builds `a1-3b` (3.15 B parameters) in bf16 on the CPU (about 6.3 GB) and runs one complete
`InternVLAPolicy.infer`: three 224x224 cameras, frames t-15 and t (15 earlier `observe` ticks), a
48-token instruction, through the Qwen3-VL vision tower and the three passes (prefix, generation,
10 denoising steps), and decodes the three foresight pictures. It prints the time of each stage,
the peak resident memory and the output shapes, and checks that they are finite. It then saves
the model in the released checkpoint layout to a temporary folder (about 6.3 GB on disk), frees
it, loads the checkpoint back strictly and runs the same call again (same frames, same noise
seed): actions, foresight latents and pictures must be identical. Exit status 1 when a check fails.

Two stand-ins, as nothing can be downloaded here: the foresight tokenizer is our conv autoencoder
with random weights, scripted to TorchScript `encoder.jit` / `decoder.jit` with Cosmos-Tokenizer-
CI8x8's interface (16 channels, 8x down), so the model loads it exactly as it loads Cosmos; the
instruction is tokenized byte by byte (`ByteTokenizer`) into ids of Qwen's vocabulary, 48 of them.

It prints what each part costs; the figures measured on a 2-core machine are in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gc
import resource
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from bench.bench_model import CAMERAS, STATE_KEYS, random_observation, unit_stats
from model.checkpoint import WEIGHTS_FILE, load_checkpoint, save_checkpoint
from model.config import ForesightConfig, ModelConfig, a1_3b
from model.internvla import InternVLA, build_model
from model.policy import InternVLAPolicy
from model.tokenizer import COSMOS_FILES, ConvAutoencoder
from model.understanding import ByteTokenizer
from robot_io.policy import PolicyOutput

DTYPE = torch.bfloat16
SEED = 0
# 69 bytes: cut to the 48 text tokens of a1-3b, every one of them real (none padding).
INSTRUCTION = "pick up the red block on the left and put it gently into the grey bin"
STAGES = {  # InternVLAPolicy's timings -> what each covers
    "prefix": "vision tower + prefix pass",
    "generation_decode": "encode t-15, t + generation pass + foresight decode",
    "denoise": "10 denoising steps",
    "total": "the whole infer call",
}


def write_stand_in_cosmos(folder: str | Path, foresight: ForesightConfig, seed: int = SEED) -> None:
    """encoder.jit / decoder.jit with Cosmos CI8x8's interface: our conv autoencoder, random weights."""
    torch.manual_seed(seed)
    tokenizer = ConvAutoencoder(foresight.latent_channels, foresight.conv_channels)
    if tokenizer.downsample != foresight.downsample:
        raise ValueError(f"conv_channels {foresight.conv_channels} downsample by {tokenizer.downsample}, not {foresight.downsample}")
    for part, name in zip((tokenizer.encoder, tokenizer.decoder), COSMOS_FILES):
        torch.jit.script(part).save(str(Path(folder) / name))


def observation_ticks(config: ModelConfig, seed: int = SEED) -> list[dict]:
    """history_steps + 1 random observations: frames t-15 ... t of every camera."""
    rng = np.random.default_rng(seed)
    return [random_observation(rng) for _ in range(config.foresight.history_steps + 1)]


def call_policy(model: InternVLA, ticks: list[dict]) -> PolicyOutput:
    """One infer on the last tick, the earlier ticks observed first (so t-15 is a real frame)."""
    policy = InternVLAPolicy(
        model, unit_stats(), state_keys=STATE_KEYS, action_keys=STATE_KEYS, camera_keys=CAMERAS,
        text_tokenizer=ByteTokenizer(model.config.text), seed=SEED,
    )
    for observation in ticks[:-1]:
        policy.observe(observation)
    return policy.infer(ticks[-1], INSTRUCTION)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def shapes(output: PolicyOutput) -> dict[str, Any]:
    first = CAMERAS[0]
    return {
        "actions": output.actions.shape,
        "foresight_pictures": (len(output.foresight), *output.foresight[first].shape),
        "foresight_latents": (len(output.foresight_latents), *output.foresight_latents[first].shape),
    }


def finite(output: PolicyOutput) -> bool:
    latents = np.stack(list(output.foresight_latents.values()))
    return bool(np.isfinite(output.actions).all() and np.isfinite(latents).all())


def identical(a: PolicyOutput, b: PolicyOutput) -> bool:
    same = np.array_equal(a.actions, b.actions) and a.foresight.keys() == b.foresight.keys()
    return same and all(
        np.array_equal(a.foresight[k], b.foresight[k]) and np.array_equal(a.foresight_latents[k], b.foresight_latents[k])
        for k in a.foresight
    )


def log_line(line: str) -> None:
    print(line, flush=True)  # a run takes minutes: show each stage as it ends


def run(config: ModelConfig, threads: int = 2, log: Callable[[str], None] = log_line) -> dict[str, Any]:
    """Build, call, save, reload, call again; log as it goes and return what was measured."""
    torch.set_num_threads(threads)
    ticks = observation_ticks(config)
    text_tokens = int(ByteTokenizer(config.text)([INSTRUCTION])[1].sum())
    result: dict[str, Any] = {"preset": config.name, "dtype": str(DTYPE).removeprefix("torch."), "threads": threads}
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    def lap(name: str, since: float) -> None:
        seconds[name] = time.perf_counter() - since
        log(f"{name:<28} {seconds[name]:8.1f} s   peak RSS so far {peak_rss_gib():6.2f} GiB")

    with tempfile.TemporaryDirectory(prefix=f"{config.name}-") as folder:
        write_stand_in_cosmos(folder, config.foresight)
        t = time.perf_counter()
        torch.manual_seed(SEED)
        model = build_model(config, folder, "cpu", DTYPE)  # Cosmos files are looked for beside the weights
        result["parameters"] = sum(p.numel() for p in model.parameters())
        log(f"{config.name}: {result['parameters']:,} parameters in {result['dtype']} on the CPU, {threads} torch threads; "
            f"{len(CAMERAS)} cameras at {config.image_size}x{config.image_size}, {text_tokens} text tokens, "
            f"frames t-{config.foresight.history_steps} and t")
        lap("build (random weights)", t)

        t = time.perf_counter()
        first = call_policy(model, ticks)
        lap("infer", t)
        result["timings_ms"] = dict(first.timings_ms)
        for stage, what in STAGES.items():
            log(f"  {stage:<18} {first.timings_ms[stage] / 1e3:8.1f} s   ({what})")
        result["shapes"], result["finite"] = shapes(first), finite(first)
        log(f"  shapes {result['shapes']}, finite: {result['finite']}")

        t = time.perf_counter()
        save_checkpoint(folder, model, unit_stats())
        lap("save", t)
        result["checkpoint_gb"] = Path(folder, WEIGHTS_FILE).stat().st_size / 1e9
        log(f"  {WEIGHTS_FILE} {result['checkpoint_gb']:.2f} GB")
        del model  # only one copy of the weights in memory at a time
        gc.collect()

        t = time.perf_counter()
        loaded, _ = load_checkpoint(folder, dtype=DTYPE)
        lap("load (strict)", t)
        t = time.perf_counter()
        second = call_policy(loaded, ticks)
        lap("infer again", t)

    result["identical"] = identical(first, second)
    result["peak_rss_gib"] = peak_rss_gib()
    result["seconds"] = seconds
    log(f"save -> load -> infer identical: {result['identical']}")
    log(f"peak RSS {result['peak_rss_gib']:.2f} GiB, wall {time.perf_counter() - started:.0f} s")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    result = run(a1_3b(), args.threads)
    if not (result["finite"] and result["identical"]):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
