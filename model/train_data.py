"""Training data for InternVLA-A1 from a LeRobot v3.0 dataset, built exactly as InternVLAPolicy builds
its inputs (letterbox, mean/std normalisation, delta actions, the same text tokenizer).

    check_dataset   -> DatasetInfo from the metadata alone, or a DatasetError naming every problem, before any work
    read_dataset    -> state, action, episode bounds and task of every frame
    compute_stats   -> stats.json in the InternVLA-A1 layout (delta-mode actions)
    build_cache     -> letterboxed frames and tokenizer latents, decoded/encoded once, on disk
    target_frames   -> the frames whose chunks are learned: all, only the operator's (DAgger attempts),
                       or only the policy's own successful episodes (filtered self-imitation)
    TrainingData    -> TrainBatch for frame indices: frames t-15, t; latent t+15; 50-step chunk from t
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from model.checkpoint import Stats
from model.config import ModelConfig
from model.frame_weights import FrameContext
from model.internvla import InternVLA, ModelInputs
from model.preprocess import (
    DeltaActions,
    Normalizer,
    pad_last_dim,
    to_model_images,
)
from model.train_step import TrainBatch
from model.understanding import build_text_tokenizer
from robot_io.images import letterbox
from robot_io.datasets.schema import (
    ACTION_KEY, ACTION_SOURCE_KEY, ACTION_SOURCES, EPISODE_OUTCOMES, FORESIGHT_KEY, IMAGE_PREFIX, INFO_PATH,
    INTERVENTION_SEGMENTS, OUTCOME_KEY, SEGMENT_KEY, SOURCE_OPERATOR, STATE_KEY, SURPRISE_KEY, local_repo_id,
)

CACHE_META = "meta.json"  # written last: a cache without it is incomplete and rebuilt
ENCODE_BATCH = 32  # frames per tokenizer call while building the cache
# Which frames' chunks a run learns. "operator": only the frames an operator drove, from datasets
# recorded in "attempts" mode with takeovers (the recorder's actor column); the policy's frames
# before a takeover are never learned from but give the first corrected frames their real frame
# t-15 (a correction recorded as its own episode would see its first frame repeated instead).
# "successes": only the episodes the policy finished alone and that ended in success, from datasets
# recorded in "attempts" mode (filtered self-imitation: the policy's own actions, as it ran them at
# its delay, where they worked); needs the actor and outcome columns.
LEARN_FROM = ("all", "operator", "successes")
# The recorder's columns each choice reads, each with the name it must list.
NEEDED_COLUMNS = {"all": {}, "operator": {ACTION_SOURCE_KEY: SOURCE_OPERATOR},
                  "successes": {ACTION_SOURCE_KEY: SOURCE_OPERATOR, OUTCOME_KEY: "success"}}


class DatasetError(ValueError):
    """The dataset cannot train this model; the message names every problem found."""


@dataclass(frozen=True)
class DatasetInfo:
    root: str
    robot_type: str
    cameras: list[str]  # camera names in model slot order (policy camera_keys)
    state_keys: list[str]
    action_keys: list[str]
    tasks: list[str]  # task_index -> instruction
    total_frames: int


@dataclass(frozen=True)
class DatasetArrays:
    state: np.ndarray  # (T, S) float32
    action: np.ndarray  # (T, A) float32, absolute
    episodes: np.ndarray  # (T, 2) int64: [start, end) of each frame's episode
    task_index: np.ndarray  # (T,) int64
    source: np.ndarray | None = None  # (T,) int64 index into ACTION_SOURCES; None when not recorded
    outcome: np.ndarray | None = None  # (T,) int64 index into EPISODE_OUTCOMES, its episode's; None when not recorded
    context: FrameContext = FrameContext()  # the recording's per-frame context, for model/frame_weights.py


def open_metadata(root: str | Path) -> Any:
    """A local dataset's metadata only (info, tasks, episodes): cheap, and enough for check_dataset."""
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata

    return _open_local(LeRobotDatasetMetadata, root)


def open_dataset(root: str | Path, **options: Any) -> Any:
    """A local LeRobotDataset (`options`: LeRobotDataset's, e.g. return_uint8=True)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return _open_local(LeRobotDataset, root, **options)


def _open_local(cls: type, root: str | Path, **options: Any) -> Any:
    """Never touches the Hub: the folder must hold the dataset."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    root = Path(root).expanduser().absolute()
    if not (root / INFO_PATH).is_file():
        raise DatasetError(f"{root} holds no LeRobot dataset (no {INFO_PATH})")
    try:
        return cls(local_repo_id(root), root=root, **options)
    except Exception as err:
        raise DatasetError(f"cannot read the LeRobot dataset at {root}: {type(err).__name__}: {err}") from err


def check_dataset(meta: Any, config: ModelConfig, cameras: list[str], stats: Stats | None = None,
                  learn_from: str = "all") -> DatasetInfo:
    """Everything training needs from a dataset's metadata, or a DatasetError listing every problem.

    stats: those of a checkpoint being resumed; the dataset must match its robot type and dims.
    learn_from: "operator" and "successes" need the recorder's columns of NEEDED_COLUMNS (see LEARN_FROM).
    """
    features = meta.features
    problems = []
    if learn_from not in LEARN_FROM:
        problems.append(f"learn_from must be one of {LEARN_FROM}, got {learn_from!r}")
    else:
        missing_columns = [key for key, name in NEEDED_COLUMNS[learn_from].items()
                           if name not in ((features.get(key) or {}).get("names") or [])]
        if missing_columns:
            problems.append(_missing_columns(learn_from, missing_columns))
    have = [key.removeprefix(IMAGE_PREFIX) for key in meta.video_keys]
    missing = [cam for cam in cameras if cam not in have]
    if missing:
        problems.append(f"missing cameras {missing} (the dataset has {have})")
    if len(cameras) > config.num_cameras:
        problems.append(f"{len(cameras)} cameras {cameras}, but the model takes at most {config.num_cameras}")
    state_keys = list((features.get(STATE_KEY) or {}).get("names") or [])
    action_keys = list((features.get(ACTION_KEY) or {}).get("names") or [])
    if not state_keys:
        problems.append(f"no {STATE_KEY!r} feature with names")
    elif len(state_keys) > config.max_state_dim:
        problems.append(f"state dimension {len(state_keys)} exceeds the model's max_state_dim {config.max_state_dim}")
    if not action_keys:
        problems.append(f"no {ACTION_KEY!r} feature with names")
    elif len(action_keys) > config.max_action_dim:
        problems.append(f"action dimension {len(action_keys)} exceeds the model's max_action_dim {config.max_action_dim}")
    if state_keys and action_keys:
        try:
            DeltaActions.by_name(action_keys, state_keys)
        except ValueError as err:
            problems.append(str(err))
    tasks = [] if meta.tasks is None else [str(t) for t in meta.tasks.sort_values("task_index").index]
    if not tasks or not all(t.strip() for t in tasks):
        problems.append(f"no tasks: every episode needs an instruction (tasks: {tasks})")
    if meta.total_frames == 0:
        problems.append("no frames")
    robot_type = meta.robot_type or "unknown"
    if stats is not None:
        problems += _stats_mismatch(stats, robot_type, len(state_keys), len(action_keys))
    if problems:
        raise DatasetError(f"cannot train on {meta.root}:\n  " + "\n  ".join(problems))
    return DatasetInfo(str(meta.root), robot_type, list(cameras), state_keys, action_keys, tasks, meta.total_frames)


def _missing_columns(learn_from: str, keys: list[str]) -> str:
    return (f"learning from {learn_from!r} needs the {' and '.join(map(repr, keys))} column(s) that the console's recorder "
            f"writes (who drove each frame, how each episode ended); this dataset lacks them")


def _stats_mismatch(stats: Stats, robot_type: str, state_dim: int, action_dim: int) -> list[str]:
    if robot_type not in stats:
        return [f"robot type mismatch: the dataset is {robot_type!r}, the checkpoint's stats are for {sorted(stats)}"]
    dims = {STATE_KEY: state_dim, ACTION_KEY: action_dim}
    return [
        f"{feature} dimension {dim} differs from the checkpoint's stats ({len(stats[robot_type][feature]['mean'])})"
        for feature, dim in dims.items()
        if len(stats[robot_type].get(feature, {}).get("mean", [])) != dim
    ]


def read_dataset(dataset: Any) -> DatasetArrays:
    """The arrays training reads; the optional columns (actor, the context) are None where the
    dataset has none (recorded before they existed, or by another tool)."""
    features = dataset.meta.features
    optional = [key for key in (ACTION_SOURCE_KEY, OUTCOME_KEY, SEGMENT_KEY, FORESIGHT_KEY, SURPRISE_KEY) if key in features]
    table = dataset.hf_dataset.select_columns([STATE_KEY, ACTION_KEY, "episode_index", "task_index", *optional]).with_format("numpy")[:]
    episode_index = table["episode_index"].astype(np.int64)  # (T,)
    bounds = {int(e["episode_index"]): (e["dataset_from_index"], e["dataset_to_index"]) for e in dataset.meta.episodes}

    def column(key: str, dtype: type) -> np.ndarray | None:  # (T,)
        return np.asarray(table[key]).reshape(-1).astype(dtype) if key in optional else None

    def ours(key: str, names: tuple[str, ...]) -> np.ndarray | None:
        """Codes as the dataset names them, mapped to ours (-1: a name we do not know)."""
        recorded = column(key, np.int64)
        return None if recorded is None else np.array([names.index(n) if n in names else -1 for n in features[key]["names"]])[recorded]

    return DatasetArrays(
        state=np.stack(table[STATE_KEY]).astype(np.float32),
        action=np.stack(table[ACTION_KEY]).astype(np.float32),
        episodes=np.array([bounds[int(e)] for e in episode_index], dtype=np.int64),
        task_index=table["task_index"].astype(np.int64),
        source=ours(ACTION_SOURCE_KEY, ACTION_SOURCES),
        outcome=ours(OUTCOME_KEY, EPISODE_OUTCOMES),
        context=FrameContext(segment=ours(SEGMENT_KEY, INTERVENTION_SEGMENTS), foresight_psnr_db=column(FORESIGHT_KEY, np.float32),
                             surprise_score=column(SURPRISE_KEY, np.float32)),
    )


def target_frames(arrays: DatasetArrays, learn_from: str) -> np.ndarray:
    """Indices (sorted) of the frames whose chunks are learned, by LEARN_FROM; DatasetError if none."""
    if learn_from == "all":
        return np.arange(len(arrays.state))
    read = {ACTION_SOURCE_KEY: arrays.source, OUTCOME_KEY: arrays.outcome}
    missing_columns = [key for key in NEEDED_COLUMNS[learn_from] if read[key] is None]
    if missing_columns:
        raise DatasetError(_missing_columns(learn_from, missing_columns))
    operator = arrays.source == ACTION_SOURCES.index(SOURCE_OPERATOR)  # (T,)
    if learn_from == "operator":
        frames = np.flatnonzero(operator)
        if len(frames) == 0:
            raise DatasetError("no frame of the dataset was driven by the operator: nothing to learn from")
        return frames
    episode = arrays.episodes[:, 0]  # (T,) each frame's episode start
    helped = np.isin(episode, episode[operator])  # (T,) frames of an episode the operator took over
    frames = np.flatnonzero((arrays.outcome == EPISODE_OUTCOMES.index("success")) & ~helped)
    if len(frames) == 0:
        raise DatasetError("no episode of the dataset ended in success with the policy alone: nothing to learn from")
    return frames


def chunk_indices(episodes: np.ndarray, frames: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices of the chunks starting at `frames` (B,) -> (indices (B, chunk), is_pad (B, chunk)).

    Steps past the episode end repeat its last frame (hold the final pose) and are flagged as padding.
    """
    steps = frames[:, None] + np.arange(chunk)  # (B, chunk)
    last = episodes[frames, 1][:, None] - 1  # (B, 1)
    return np.minimum(steps, last), steps > last


def compute_stats(arrays: DatasetArrays, info: DatasetInfo, chunk: int, starts: np.ndarray | None = None) -> Stats:
    """Mean/std of the state, and of the actions as the model sees them: every real (not padded) step
    of every chunk, in delta mode (joints relative to the chunk's start state, grippers absolute).
    starts: the frames whose chunks are learned (target_frames); None: all."""
    delta = DeltaActions.by_name(info.action_keys, info.state_keys)
    starts = np.arange(len(arrays.state)) if starts is None else starts
    index, is_pad = chunk_indices(arrays.episodes, starts, chunk)  # (T, chunk)
    count, total, squares = 0, 0.0, 0.0
    for k in range(chunk):  # accumulate per chunk offset: memory stays at one (T, A) array
        real = ~is_pad[:, k]
        actions = delta.to_delta(arrays.action[index[real, k]][:, None], arrays.state[starts[real]])[:, 0].astype(np.float64)
        count, total, squares = count + len(actions), total + actions.sum(0), squares + (actions**2).sum(0)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    state = arrays.state[starts].astype(np.float64)
    return {
        info.robot_type: {
            STATE_KEY: {"mean": state.mean(0).tolist(), "std": state.std(0).tolist()},
            ACTION_KEY: {"mean": mean.tolist(), "std": std.tolist()},
        }
    }


# ---- cached frames and latents ---------------------------------------------------------------


@dataclass(frozen=True)
class FrameCache:
    frames: np.ndarray  # (T, K, S, S, 3) uint8, letterboxed frame per camera (memory-mapped)
    latents: np.ndarray  # (T, K, C, h, w) float16, tokenizer latents (memory-mapped)


def build_cache(dataset: Any, info: DatasetInfo, model: InternVLA, folder: Path) -> FrameCache:
    """Decode every video frame once, letterbox it, encode it once; reuse the files while the dataset,
    cameras, image size and tokenizer weights are the same."""
    c, fs = model.config, model.config.foresight
    T, K, S = info.total_frames, len(info.cameras), c.image_size
    key = {
        "dataset": info.root, "frames": T, "cameras": info.cameras, "image_size": S,
        "tokenizer": _tokenizer_digest(model), "latent": [fs.latent_channels, fs.latent_size],
    }
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / CACHE_META
    shapes = {"frames": (T, K, S, S, 3), "latents": (T, K, fs.latent_channels, fs.latent_size, fs.latent_size)}
    dtypes = {"frames": np.uint8, "latents": np.float16}
    if meta_path.is_file() and json.loads(meta_path.read_text()) == key:
        return FrameCache(**{n: np.load(folder / f"{n}.npy", mmap_mode="r") for n in shapes})

    meta_path.unlink(missing_ok=True)
    _check_room(folder, sum(np.prod(shapes[n]) * np.dtype(dtypes[n]).itemsize for n in shapes))
    arrays = {n: np.lib.format.open_memmap(folder / f"{n}.npy", "w+", dtypes[n], shapes[n]) for n in shapes}
    device = next(model.parameters()).device
    episodes = tqdm(_decoded_episodes(dataset, info), total=dataset.meta.total_episodes, desc="cache frames + latents", unit="episode")
    for start, end, videos in episodes:
        for k, frames in enumerate(videos):  # (L, H, W, 3) uint8
            arrays["frames"][start:end, k] = np.stack([letterbox(f, S) for f in frames])
        for b in range(start, end, ENCODE_BATCH):
            images = to_model_images(np.asarray(arrays["frames"][b : b + ENCODE_BATCH]))  # (B, K, 3, S, S)
            with torch.inference_mode():
                latents = model.encode_frames(images[:, :, None].to(device))  # (B, K, 1, C, h, w)
            arrays["latents"][b : b + len(images)] = latents[:, :, 0].cpu().numpy()
    for array in arrays.values():
        array.flush()
    meta_path.write_text(json.dumps(key))
    return FrameCache(**{n: np.load(folder / f"{n}.npy", mmap_mode="r") for n in shapes})


def _check_room(folder: Path, needed: int) -> None:
    existing = sum(p.stat().st_size for p in folder.glob("*.npy"))  # replaced by the new files
    free = shutil.disk_usage(folder).free + existing
    if needed > free:
        raise DatasetError(f"the frame/latent cache needs {needed / 1e9:.1f} GB in {folder}, only {free / 1e9:.1f} GB are free")


def _decoded_episodes(dataset: Any, info: DatasetInfo):
    """-> (start, end, [frames (L, H, W, 3) uint8 per camera]) for each episode, decoded in one call per video."""
    from lerobot.datasets.video_utils import decode_video_frames

    timestamps = np.asarray(dataset.hf_dataset.with_format("numpy")["timestamp"], dtype=np.float64)
    for episode in dataset.meta.episodes:
        start, end = episode["dataset_from_index"], episode["dataset_to_index"]
        videos = []
        for cam in info.cameras:
            key = IMAGE_PREFIX + cam
            path = Path(dataset.root) / dataset.meta.get_video_file_path(episode["episode_index"], key)
            query = (timestamps[start:end] + episode[f"videos/{key}/from_timestamp"]).tolist()
            frames = decode_video_frames(path, query, dataset.tolerance_s, return_uint8=True)  # (L, 3, H, W)
            videos.append(frames.permute(0, 2, 3, 1).numpy())
        yield start, end, videos


def _tokenizer_digest(model: InternVLA) -> str:
    digest = hashlib.sha1()
    for name, tensor in sorted(model.cosmos.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()


# ---- batches ---------------------------------------------------------------------------------


class TrainingData:
    """TrainBatch for frame indices, normalised, delta-converted and padded as InternVLAPolicy does."""

    def __init__(self, info: DatasetInfo, arrays: DatasetArrays, cache: FrameCache, stats: Stats, config: ModelConfig,
                 learn_from: str = "all", weights: np.ndarray | None = None) -> None:
        """weights: (T,) each frame's weight in L_act (model/frame_weights.py); None: all 1."""
        self.info, self.arrays, self.cache, self.config, self.weights = info, arrays, cache, config, weights
        self.targets = target_frames(arrays, learn_from)  # (N,) the frames a batch is drawn from
        self.state_norm = Normalizer.from_stats(stats, info.robot_type, STATE_KEY, len(info.state_keys))
        self.action_norm = Normalizer.from_stats(stats, info.robot_type, ACTION_KEY, len(info.action_keys))
        self.delta = DeltaActions.by_name(info.action_keys, info.state_keys)
        self.text_tokens, self.text_mask = build_text_tokenizer(config.text)(info.tasks)  # (num_tasks, max_tokens)
        self._starts: dict[int, np.ndarray] = {}  # start_frame_indices, by count

    def start_frame_indices(self, count: int) -> np.ndarray:
        """Indices of the frames among the first `count` targets of their episode (with learn_from
        "operator": the first frames after a takeover)."""
        if count not in self._starts:
            episode = self.arrays.episodes[self.targets, 0]  # (N,) each target's episode start
            first = np.searchsorted(episode, episode)  # (N,) position of its episode's first target (targets are sorted)
            self._starts[count] = self.targets[np.arange(len(self.targets)) - first < count]
        return self._starts[count]

    def batch(self, frames: np.ndarray, device: torch.device | str = "cpu") -> TrainBatch:
        c, a = self.config, self.arrays
        history = c.foresight.history_steps
        start, end = a.episodes[frames, 0], a.episodes[frames, 1]
        past = np.maximum(frames - history, start)  # frame t-15, clamped at the episode start
        future = np.minimum(frames + history, end - 1)  # frame t+15, clamped at the episode end

        state = a.state[frames]  # (B, S)
        index, is_pad = chunk_indices(a.episodes, frames, c.chunk_size)  # (B, chunk); padding holds the last action
        actions = self.action_norm.normalize(self.delta.to_delta(a.action[index], state))  # (B, chunk, A)
        images = to_model_images(np.asarray(self.cache.frames[frames]))  # (B, K, 3, S, S)
        history_latents = np.stack([self.cache.latents[past], self.cache.latents[frames]], axis=2)  # (B, K, 2, C, h, w)
        target = np.asarray(self.cache.latents[future])  # (B, K, C, h, w)

        B, K = len(frames), len(self.info.cameras)
        slots = c.num_cameras - K  # unused camera slots: black frames, masked out as in the policy
        camera_mask = torch.arange(c.num_cameras).expand(B, -1) < K  # (B, N)
        tasks = torch.from_numpy(a.task_index[frames])
        inputs = ModelInputs(
            images=_pad_slots(images, slots, fill=-1.0),
            camera_mask=camera_mask,
            text_tokens=self.text_tokens[tasks],
            text_mask=self.text_mask[tasks],
            history_latents=_pad_slots(torch.from_numpy(history_latents).float(), slots),
            state=torch.from_numpy(pad_last_dim(self.state_norm.normalize(state), c.max_state_dim)),
        )
        batch = TrainBatch(
            inputs=inputs,
            actions=torch.from_numpy(pad_last_dim(actions, c.max_action_dim)),
            target_latents=_pad_slots(torch.from_numpy(target).float(), slots),
            action_mask=(torch.arange(c.max_action_dim) < len(self.info.action_keys)).expand(B, -1),
            action_is_pad=torch.from_numpy(is_pad),
            frame_weight=None if self.weights is None else torch.from_numpy(self.weights[frames]),
        )
        return _to_device(batch, device)


def _pad_slots(x: torch.Tensor, slots: int, fill: float = 0.0) -> torch.Tensor:
    """(B, K, ...) -> (B, K + slots, ...)."""
    if slots == 0:
        return x
    return torch.cat([x, torch.full((x.shape[0], slots, *x.shape[2:]), fill, dtype=x.dtype)], dim=1)


def _to_device(batch: TrainBatch, device: torch.device | str) -> TrainBatch:
    inputs = ModelInputs(**{name: value.to(device) for name, value in vars(batch.inputs).items()})
    masks = {name: getattr(batch, name).to(device) for name in ("action_mask", "action_is_pad")}
    weight = None if batch.frame_weight is None else batch.frame_weight.to(device)
    return TrainBatch(inputs, batch.actions.float().to(device), batch.target_latents.to(device), **masks, frame_weight=weight)
