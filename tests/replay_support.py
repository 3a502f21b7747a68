"""Small LeRobot datasets recorded with our own recorder, and a policy that keeps what it was shown
and what it answered, for open-loop replay tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robot_io.policy import Policy, PolicyOutput
from robot_io.datasets.recorder import EpisodeRecorder
from runtime.control.foresight_reckoning import foresight_horizon

G1_V21 = Path("/work/shared/datasets/g1_inspire_pick_bottle_v21")
G1_V30 = Path("/work/shared/datasets/g1_inspire_pick_bottle_v30")
TASK = "pick up the red block and put it in the bin"


def picture(shape: tuple[int, int, int], t: int, camera: int, episode: int) -> np.ndarray:
    """uint8 (H, W, 3): a ramp whose bright bar moves one column per frame, so frame t+H differs from frame t."""
    h, w, _ = shape
    image = np.empty(shape, np.uint8)
    image[:] = np.linspace(20, 120, w, dtype=np.uint8)[None, :, None]
    image[..., 2] = (40 * camera + 30 * episode) % 256  # any number of episodes
    image[:, (2 * t) % w : (2 * t) % w + 4] = 230
    return image


def record_dataset(root: Path, *, fps: int = 15, episodes: int = 2, frames: int = 24,
                   cameras: tuple[str, ...] = ("head", "wrist"), shape: tuple[int, int, int] = (32, 48, 3),
                   joints: tuple[str, ...] = ("joint_1.pos", "joint_2.pos", "gripper.pos"),
                   outcomes: tuple[str, ...] = (), operator_frames: int = 0, tasks: tuple[str, ...] = ()) -> Path:
    """A v3.0 dataset of `episodes` episodes: state walks with t, the action leads it by a step.
    outcomes / tasks: per episode (default "unknown" / TASK); the last `operator_frames` frames of
    each episode are the operator's."""
    observation_features = {**{j: float for j in joints}, **{c: shape for c in cameras}}
    recorder = EpisodeRecorder(root, fps, observation_features, {j: float for j in joints})
    for episode in range(episodes):
        recorder.start_episode(tasks[episode] if tasks else TASK)
        for t in range(frames):
            state = {j: 0.1 * episode + 0.02 * t * (i + 1) for i, j in enumerate(joints)}
            observation = {**state, **{c: picture(shape, t, i, episode) for i, c in enumerate(cameras)}}
            action = {j: v + 0.02 * (i + 1) for i, (j, v) in enumerate(state.items())}
            operator = t >= frames - operator_frames
            recorder.add_frame(observation, action, intervention=operator, source="operator" if operator else "policy")
        recorder.save_episode(outcomes[episode] if outcomes else "unknown")
    recorder.finalize()
    return root


class EchoPolicy(Policy):
    """A deterministic stand-in for a world model: the chunk walks on from the state (step k adds
    (k + 1) * `speed` to every joint), and the foresight of each camera is its frame t brightened
    by `brighten` (same size as the frame, so no fitting is involved)."""

    def __init__(self, state_keys, chunk: int = 5, horizon: int = 3, speed: float = 0.02, brighten: int = 12,
                 foresight: bool = True) -> None:
        self.state_keys, self.chunk, self.foresight_horizon = list(state_keys), chunk, horizon
        self.speed, self.brighten, self.foresight = speed, brighten, foresight
        self.resets = 0

    def infer(self, observation, instruction):
        state = np.array([observation[k] for k in self.state_keys], dtype=np.float32)  # (S,)
        steps = np.arange(1, self.chunk + 1, dtype=np.float32)[:, None] * self.speed  # (C, 1)
        pictures = None
        if self.foresight:
            pictures = {k: np.clip(v.astype(np.int16) + self.brighten, 0, 255).astype(np.uint8)
                        for k, v in observation.items() if isinstance(v, np.ndarray)}
        return PolicyOutput(actions=state[None, :] + steps, foresight=pictures)

    def reset(self) -> None:
        self.resets += 1


class RecordingPolicy(Policy):
    """Wraps a policy and keeps every observe / infer call and every output, in order."""

    def __init__(self, inner: Policy) -> None:
        self.inner = inner
        self.foresight_horizon = foresight_horizon(inner)
        self.calls: list[tuple[str, dict]] = []  # ("observe" | "infer", observation)
        self.outputs: list[PolicyOutput] = []
        self.instructions: list[str] = []

    def observe(self, observation):
        self.calls.append(("observe", observation))
        self.inner.observe(observation)

    def infer(self, observation, instruction):
        self.calls.append(("infer", observation))
        self.instructions.append(instruction)
        output = self.inner.infer(observation, instruction)
        self.outputs.append(output)
        return output

    def reset(self):
        self.inner.reset()


def read_with_lerobot(root: Path, episode: int, limit: int | None = None):
    """(frames {camera: (T, H, W, 3) uint8}, state (T, S), action (T, A), task) of one episode (its
    first `limit` frames), read through LeRobotDataset itself: the independent side of the replay
    tests' comparisons."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset(f"local/{root.name}", root=root, episodes=[episode])
    items = [dataset[i] for i in range(min(len(dataset), limit or len(dataset)))]
    cameras = [k.removeprefix("observation.images.") for k in dataset.meta.video_keys]
    frames = {c: np.stack([(item[f"observation.images.{c}"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                           for item in items]) for c in cameras}
    state = np.stack([item["observation.state"].numpy() for item in items])
    action = np.stack([item["action"].numpy() for item in items])
    return frames, state, action, items[0]["task"]
