"""A policy trained with LeRobot behind our Policy interface: any folder `lerobot-train` writes
(`outputs/train/NAME/checkpoints/last/pretrained_model`: ACT, Diffusion, SmolVLA, pi0, pi0.5 ...).

    layout = read_layout(folder)                       # config.json only: no torch, no weights
    check_layout(layout, state_keys=..., action_keys=..., camera_keys=..., folder=folder)
    policy = LeRobotPolicy(folder, state_keys=..., action_keys=..., camera_keys=...)

LeRobot's own classes do the work: `get_policy_class` builds the policy from its config.json and
weights, `make_pre_post_processors` loads the pre- and post-processors saved beside them
(normalisation, tokenising the instruction, relative actions ...). `infer` runs
`predict_action_chunk`, the whole chunk, not `select_action`'s one-step queue, so our ChunkSchedule
runs it; actions[0] is for the observation's own tick (the policy learned from a LeRobot dataset,
see robot_io/policy.py).

Names: a checkpoint reads `observation.images.<camera>` and `observation.state`, and writes
`action`, as the dataset it learned from named them (our recordings use the robot's names,
robot_io/datasets/schema.py). Its config.json keeps only their shapes; the names of the state and
action values come from the training dataset's meta/info.json when train_config.json points at one
that is still there, otherwise the robot's own order is assumed. A checkpoint whose features the
robot cannot supply (another camera, another number of joints, other joint names) is refused with
both lists. Camera frames of another size are resized to the size it learned, as LeRobot's own
async client does.

Policies that read several past observations (`n_obs_steps` > 1, Diffusion) get the last ones from
`observe`, which the session calls every tick.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robot_io.datasets.schema import ACTION_KEY, IMAGE_PREFIX, INFO_PATH, STATE_KEY
from robot_io.policy import Policy, PolicyOutput

CONFIG_FILE = "config.json"  # the policy's PreTrainedConfig, as lerobot-train saves it
WEIGHTS_FILE = "model.safetensors"
PREPROCESSOR_FILE = "policy_preprocessor.json"  # lerobot.utils.constants.POLICY_PREPROCESSOR_DEFAULT_NAME + .json
TRAIN_CONFIG_FILE = "train_config.json"
CHECKPOINT_FILES = (CONFIG_FILE, WEIGHTS_FILE, PREPROCESSOR_FILE)
INSTRUCTION_FEATURES = ("LANGUAGE",)  # inputs the instruction supplies, not the robot
RENAME_STEP = "rename_observations_processor"


class LeRobotPolicyError(ValueError):
    """A LeRobot checkpoint that cannot be read, or that does not fit the robot; the message says why."""


@dataclass(frozen=True)
class LeRobotLayout:
    """What a LeRobot checkpoint reads and writes, in the robot's terms (the preprocessor's renaming undone)."""

    policy_type: str
    cameras: dict[str, tuple[int, int, int]]  # camera -> (C, H, W) the policy was trained on
    state_dim: int  # 0: it reads no state
    action_dim: int
    state_names: list[str] | None  # None: the training dataset is not at hand to say
    action_names: list[str] | None
    n_obs_steps: int


def is_lerobot_checkpoint(folder: str | Path) -> bool:
    return all((Path(folder) / name).is_file() for name in CHECKPOINT_FILES)


def read_layout(folder: str | Path) -> LeRobotLayout:
    folder = Path(folder)
    missing = [name for name in CHECKPOINT_FILES if not (folder / name).is_file()]
    if missing:
        raise LeRobotPolicyError(f"{folder} is not a LeRobot checkpoint folder (lerobot-train's pretrained_model): "
                                 f"it lacks {missing}")
    config = _read_json(folder / CONFIG_FILE)
    features = {**config.get("input_features", {}), **config.get("output_features", {})}
    renamed = _rename_map(folder)  # robot key -> policy key
    robot_key = {policy_key: key for key, policy_key in renamed.items()}
    cameras, state_dim, action_dim, unusable = {}, 0, 0, []
    for policy_key, feature in features.items():
        key, kind, shape = robot_key.get(policy_key, policy_key), feature.get("type"), tuple(feature.get("shape", ()))
        if kind == "VISUAL" and key.startswith(IMAGE_PREFIX) and len(shape) == 3:
            cameras[key.removeprefix(IMAGE_PREFIX)] = shape
        elif kind == "STATE" and key == STATE_KEY and len(shape) == 1:
            state_dim = shape[0]
        elif kind == "ACTION" and key == ACTION_KEY and len(shape) == 1:
            action_dim = shape[0]
        elif kind not in INSTRUCTION_FEATURES:
            unusable.append(f"{key} ({kind} {list(shape)})")
    if unusable or not action_dim:
        raise LeRobotPolicyError(f"{folder}: the policy reads or writes features no robot here supplies: "
                                 f"{unusable or 'no action feature'} (it takes {list(features)})")
    state_names, action_names = _dataset_names(folder)
    return LeRobotLayout(str(config.get("type")), cameras, state_dim, action_dim, state_names, action_names,
                         int(config.get("n_obs_steps", 1)))


def check_layout(layout: LeRobotLayout, *, state_keys: Sequence[str], action_keys: Sequence[str],
                 camera_keys: Sequence[str], folder: str | Path) -> None:
    """Refuse a checkpoint whose features the robot cannot supply, naming both lists."""
    problems = []
    if missing := [camera for camera in layout.cameras if camera not in camera_keys]:
        problems.append(f"cameras {missing} are missing (the policy reads {list(layout.cameras)}, "
                        f"the robot has {list(camera_keys)})")
    if layout.state_names is not None and (missing := [k for k in layout.state_names if k not in state_keys]):
        problems.append(f"state keys {missing} are missing (the policy reads {layout.state_names}, "
                        f"the robot has {list(state_keys)})")
    elif layout.state_names is None and layout.state_dim not in (0, len(state_keys)):
        problems.append(f"the policy reads {layout.state_dim} state values, the robot has {len(state_keys)}: "
                        f"{list(state_keys)}")
    if layout.action_names is not None and sorted(layout.action_names) != sorted(action_keys):
        problems.append(f"action keys differ (the policy writes {layout.action_names}, "
                        f"the robot takes {list(action_keys)})")
    elif layout.action_names is None and layout.action_dim != len(action_keys):
        problems.append(f"the policy writes {layout.action_dim} action values, the robot takes {len(action_keys)}: "
                        f"{list(action_keys)}")
    if problems:
        raise LeRobotPolicyError(f"{folder} ({layout.policy_type}) was trained for another robot: "
                                 + "; ".join(problems) + " (map the robot's names with --camera-map / --joint-map)")


class LeRobotPolicy(Policy):
    """A LeRobot checkpoint for a robot with these keys (checked first: LeRobotPolicyError)."""

    chunk_starts_next_tick = False  # trained on a LeRobot dataset: actions[0] is for the observation's tick
    foresight_horizon = None  # it predicts no pictures

    def __init__(self, folder: str | Path, *, state_keys: Sequence[str], action_keys: Sequence[str],
                 camera_keys: Sequence[str], device: str = "cpu", robot_type: str = "") -> None:
        import torch
        from lerobot.configs import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors

        folder = Path(folder)
        self.layout = read_layout(folder)
        check_layout(self.layout, state_keys=state_keys, action_keys=action_keys, camera_keys=camera_keys, folder=folder)
        self.name = f"lerobot-{self.layout.policy_type}"
        self.robot_type = robot_type
        self.state_keys = self.layout.state_names or (list(state_keys) if self.layout.state_dim else [])
        self.cameras = list(self.layout.cameras)
        policy_order = self.layout.action_names or list(action_keys)
        self.action_columns = [policy_order.index(key) for key in action_keys]  # policy's columns in the robot's order
        self.device = torch.device(device)
        config = PreTrainedConfig.from_pretrained(folder, local_files_only=True)
        config.device = device
        self.policy = get_policy_class(config.type).from_pretrained(folder, config=config, local_files_only=True)
        self.policy.to(self.device).eval()
        devices = {"device_processor": {"device": device}}
        self.preprocessor, self.postprocessor = make_pre_post_processors(
            config, pretrained_path=str(folder), preprocessor_overrides=devices,
            postprocessor_overrides={"device_processor": {"device": "cpu"}})
        self._history: deque[dict[str, Any]] = deque(maxlen=max(1, self.layout.n_obs_steps))
        self._last_observed: dict[str, Any] | None = None
        self.infer(self._blank_observation(), "")  # torch's slow first call, paid while loading rather than at the first Run
        self.reset()

    def observe(self, observation: dict[str, Any]) -> None:
        """Keep the tick's observation (by reference: it is converted only when a chunk is asked for)."""
        if observation is self._last_observed:
            return
        self._last_observed = observation
        self._history.append(observation)

    def reset(self) -> None:
        self._history.clear()
        self._last_observed = None
        self.policy.reset()
        self.preprocessor.reset()
        self.postprocessor.reset()

    def infer(self, observation: dict[str, Any], instruction: str) -> PolicyOutput:
        import torch

        started = time.perf_counter()
        self.observe(observation)
        batch = self._batch(instruction)
        prepared = time.perf_counter()
        with torch.inference_mode():
            chunk = self.policy.predict_action_chunk(self.preprocessor(batch))  # (1, chunk, action_dim) normalised
            actions = self.postprocessor(chunk)
        done = time.perf_counter()
        actions = actions.reshape(-1, actions.shape[-1]).float().cpu().numpy()[:, self.action_columns]
        if not np.isfinite(actions).all():
            raise RuntimeError(f"{self.name} produced NaN or infinite actions; refusing to send them")
        return PolicyOutput(actions=actions.astype(np.float32), timings_ms={
            "prepare": (prepared - started) * 1e3, "model": (done - prepared) * 1e3, "total": (done - started) * 1e3})

    # ---- observation -> LeRobot batch -----------------------------------------------------------

    def _frame(self, observation: dict[str, Any]) -> dict[str, Any]:
        """One tick in the policy's terms: float32 (C, H, W) images in [0, 1] at its size, the state."""
        import torch
        import torch.nn.functional as F

        frame = {}
        for camera, shape in self.layout.cameras.items():
            picture = observation.get(camera)
            if not isinstance(picture, np.ndarray) or picture.ndim != 3:
                raise ValueError(f"camera {camera!r} gave no (H, W, 3) frame")
            image = torch.from_numpy(np.ascontiguousarray(picture)).permute(2, 0, 1).float().div_(255)  # (3, H, W)
            if tuple(image.shape) != shape:
                image = F.interpolate(image[None], size=shape[1:], mode="bilinear", align_corners=False)[0]
            frame[IMAGE_PREFIX + camera] = image
        if self.state_keys:
            missing = [key for key in self.state_keys if key not in observation]
            if missing:
                raise ValueError(f"observation lacks state keys {missing}")
            frame[STATE_KEY] = torch.tensor([float(observation[key]) for key in self.state_keys], dtype=torch.float32)
        return frame

    def _blank_observation(self) -> dict[str, Any]:
        frames = {camera: np.zeros((h, w, c), np.uint8) for camera, (c, h, w) in self.layout.cameras.items()}
        return frames | {key: 0.0 for key in self.state_keys}

    def _batch(self, instruction: str) -> dict[str, Any]:
        """A batch of one: (1, ...) per feature, or (1, n_obs_steps, ...) for a policy that reads
        several ticks (the oldest repeated until enough have been seen)."""
        import torch

        steps = [self._frame(observation) for observation in self._history]
        if self.layout.n_obs_steps > 1:
            steps = [steps[0]] * (self.layout.n_obs_steps - len(steps)) + steps
            batch = {key: torch.stack([step[key] for step in steps])[None] for key in steps[-1]}
        else:
            batch = {key: value[None] for key, value in steps[-1].items()}
        return batch | {"task": instruction, "robot_type": self.robot_type}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise LeRobotPolicyError(f"cannot read {path}: {err}") from err
    if not isinstance(data, dict):
        raise LeRobotPolicyError(f"{path} holds a {type(data).__name__}, not a JSON object")
    return data


def _rename_map(folder: Path) -> dict[str, str]:
    """The observation renaming the saved preprocessor applies (robot key -> policy key)."""
    for step in _read_json(folder / PREPROCESSOR_FILE).get("steps", []):
        if step.get("registry_name") == RENAME_STEP:
            return dict(step.get("config", {}).get("rename_map") or {})
    return {}


def _dataset_names(folder: Path) -> tuple[list[str] | None, list[str] | None]:
    """State and action names of the dataset the checkpoint learned from, when it is still at hand."""
    train_config = folder / TRAIN_CONFIG_FILE
    root = _read_json(train_config).get("dataset", {}).get("root") if train_config.is_file() else None
    info = Path(root) / INFO_PATH if root else None
    if info is None or not info.is_file():
        return None, None
    features = _read_json(info).get("features", {})
    names = [features.get(key, {}).get("names") for key in (STATE_KEY, ACTION_KEY)]
    return tuple(n if isinstance(n, list) and n and all(isinstance(x, str) for x in n) else None for n in names)
