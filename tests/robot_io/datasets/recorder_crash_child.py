"""Child process for test_recorder_crash.py: records small episodes into one dataset forever,
appending one line per event to a log (O_APPEND, one write per line: a kill never splits one).

Lines: "open <episodes>", "start <index>", "saving <index>", "saved <index> <frames>".
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import numpy as np

FPS = 15
CAMERAS = ("a", "b")
SHAPE = (32, 32, 3)  # the smallest the encoder accepts (recorder.MIN_IMAGE_SIDE)
OBS_FEATURES = {"episode": float, "t": float, **{c: SHAPE for c in CAMERAS}}
ACT_FEATURES = {"u": float}
MIN_FRAMES, MAX_FRAMES = 10, 30
FRAME_PERIOD_S = 0.01  # a little time per frame so kills land mid-episode too
TASKS = ("pick", "place", "push")


def grey(episode: int, t: int) -> int:
    """The flat grey level of frame t of `episode` (what the parent checks after decoding)."""
    return (40 + 7 * episode + 5 * t) % 200 + 20


def record_forever(root: str, log: str, seed: int) -> None:
    from robot_io.datasets.recorder import EpisodeRecorder

    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    def say(line: str) -> None:
        os.write(fd, (line + "\n").encode())

    rng = random.Random(seed)
    recorder = EpisodeRecorder(Path(root), FPS, OBS_FEATURES, ACT_FEATURES, resume=True)
    say(f"open {recorder.num_episodes}")
    while True:
        episode = recorder.num_episodes
        frames = rng.randint(MIN_FRAMES, MAX_FRAMES)
        say(f"start {episode}")
        recorder.start_episode(TASKS[episode % len(TASKS)])
        for t in range(frames):
            image = np.full(SHAPE, grey(episode, t), np.uint8)
            obs = {"episode": episode, "t": t, **{c: image for c in CAMERAS}}
            recorder.add_frame(obs, {"u": 0.5}, intervention=False, source="policy")
            time.sleep(FRAME_PERIOD_S)
        say(f"saving {episode}")
        assert recorder.save_episode() == episode
        say(f"saved {episode} {frames}")
