"""Recording throughput (prints figures; not a test): frames/s that `EpisodeRecorder` accepts
with 3 cameras at 224x224 and streaming encoding, and how long saving an episode takes.

    .venv/bin/python -m bench.bench_recording --frames 300 --episodes 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from robot_io.datasets.recorder import EpisodeRecorder

CAMERAS = ("head", "wrist", "side")
JOINTS = [f"joint_{i}.pos" for i in range(1, 7)] + ["gripper.pos"]
SIZE = 224
FPS = 15


def synthetic_observation(t: int, rng: np.random.Generator) -> dict:
    # Moving gradients plus noise: compressible like camera images, never identical frames.
    ramp = (np.arange(SIZE)[None, :, None] + 3 * t) % 256
    frame = np.broadcast_to(ramp, (SIZE, SIZE, 3)).astype(np.uint8)
    frame = np.clip(frame + rng.integers(0, 8, frame.shape), 0, 255).astype(np.uint8)
    return {**{k: float(np.sin(t / 10 + i)) for i, k in enumerate(JOINTS)}, **{c: frame for c in CAMERAS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=300, help="frames per episode")
    parser.add_argument("--episodes", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    observations = [synthetic_observation(t, rng) for t in range(args.frames)]
    features = {**{k: float for k in JOINTS}, **{c: (SIZE, SIZE, 3) for c in CAMERAS}}

    with tempfile.TemporaryDirectory() as tmp:
        recorder = EpisodeRecorder(Path(tmp) / "bench", FPS, features, {k: float for k in JOINTS})
        for episode in range(args.episodes):
            recorder.start_episode("pick up the red block and put it in the bin")
            add_ms = []
            started = time.perf_counter()
            for obs in observations:
                t0 = time.perf_counter()
                recorder.add_frame(obs, {k: obs[k] for k in JOINTS}, intervention=False, source="policy")
                add_ms.append((time.perf_counter() - t0) * 1e3)
            added = time.perf_counter() - started
            t0 = time.perf_counter()
            recorder.save_episode()
            save_s = time.perf_counter() - t0
            print(f"episode {episode}: {args.frames / added:.1f} frames/s accepted ({args.frames / (added + save_s):.1f} "
                  f"including save); add_frame p50 {np.percentile(add_ms, 50):.2f} ms, p99 {np.percentile(add_ms, 99):.2f} ms; "
                  f"save {save_s:.2f} s")
        recorder.finalize()
    print(f"real time needs {FPS} frames/s with {len(CAMERAS)} cameras at {SIZE}x{SIZE}")


if __name__ == "__main__":
    main()
