"""Open-loop replay: a recorded episode plays as the cameras and the state; at every step (or
every `infer_every`) the policy is asked what it would do and what it expects to see H steps on,
and both are judged against what the recording holds. The robot is not involved.

A ReplayJob runs on its own thread (never the control thread), at lowered priority, one step at
a time, and stops at the next step when cancelled. It keeps at most H + 1 played frames per
camera, so memory stays bounded however long the episode. Readers (routes) take immutable
ReplayStatus snapshots, JSON-ready series and the final result under one lock.

What is compared. A step is a played frame; an episode recorded at a whole multiple of the
policy's rate is played every `stride`-th frame, so a step lasts one policy tick.
- Actions: step k of the chunk inferred at step s against the recorded action of step s + k
  (steps inside the episode only; chunk step k is for tick t + k, as in training).
  `action_mse` pools every such step of every chunk, in action units; `action_mse_executed`
  only the steps that run before the next inference (with infer_every = 1, the first step of
  each chunk): the "predicted" curve charted against the recorded one, per action dimension.
- Foresight: the picture predicted at step s against the recorded frame s + H, letterboxed to the
  picture's size and scored as the live reckoning does (robot_io/foresight.py), in PSNR,
  beside frame s copied ("nothing moves"). Episode figures are the mean of the per-step dB, as
  model/evaluate.py averages them.

Camera mapping: the policy's camera slots read the dataset cameras of the same names, unless a
mapping `{policy camera: dataset camera}` says otherwise (text form "head=cam_high,wrist=cam_left_wrist",
see parse_camera_mapping); slots left out of a mapping get no frame (a world-model policy masks
them). State and action are matched by name, in any order; the policy's every name must be in
the dataset.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from robot_io.datasets.schema import IMAGE_PREFIX
from robot_io.datasets.reader import DatasetReadError, DatasetSummary, EpisodeData, ReplayDataset, open_replay_dataset
from robot_io.datasets.conversion import V21
from robot_io.devices.name_mapping import parse_name_pairs
from robot_io.policy import Policy
from robot_io.devices.robot import Robot, camera_keys, state_keys
from robot_io.foresight import Reckoning, reckon
from runtime.control.commands import MAX_INSTRUCTION_CHARS
from runtime.control.foresight_reckoning import NO_FORESIGHT_MESSAGE, foresight_horizon, valid_foresight

DEFAULT_INFER_EVERY = 1  # "runs the model at each step"
REPLAY_NICENESS = 10  # the job thread yields the CPU to the control loop and the live policy
NOISE_SEED = 0  # flow-matching noise of a policy that takes a seed: the same figures on every replay


class ReplayError(ValueError):
    """A replay that cannot run as asked; the message names what does not match and both sides."""


@dataclass(frozen=True)
class PolicyLayout:
    """What the replayed policy reads and writes: the console robot's keys and control rate."""

    camera_keys: tuple[str, ...]
    state_keys: tuple[str, ...]
    action_keys: tuple[str, ...]
    fps: float

    @classmethod
    def for_robot(cls, robot: Robot, fps: float) -> PolicyLayout:
        return cls(tuple(camera_keys(robot)), tuple(state_keys(robot)), tuple(robot.action_features), float(fps))


@dataclass(frozen=True)
class ReplayConfig:
    dataset: Path
    episode: int = 0
    cameras: Mapping[str, str] = field(default_factory=dict)  # policy camera -> dataset camera; empty: same names
    infer_every: int = DEFAULT_INFER_EVERY  # steps between inferences (1: every step)
    max_steps: int | None = None  # played steps at most; None: the whole episode
    instruction: str = ""  # "": the episode's own task

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset", Path(self.dataset))
        object.__setattr__(self, "cameras", dict(self.cameras))
        if not isinstance(self.episode, int) or self.episode < 0:
            raise ReplayError(f"episode must be an index >= 0, got {self.episode!r}")
        if not isinstance(self.infer_every, int) or self.infer_every < 1:
            raise ReplayError(f"infer_every must be a whole number of steps >= 1, got {self.infer_every!r}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int) or self.max_steps < 1):
            raise ReplayError(f"max_steps must be >= 1 or None (the whole episode), got {self.max_steps!r}")
        if len(self.instruction) > MAX_INSTRUCTION_CHARS:
            raise ReplayError(f"the instruction has {len(self.instruction)} characters; at most {MAX_INSTRUCTION_CHARS}")
        for slot, camera in self.cameras.items():
            if not slot or not camera:
                raise ReplayError(f"a camera mapping pairs a policy camera with a dataset camera, got {slot!r}={camera!r}")


def parse_camera_mapping(text: str) -> dict[str, str]:
    """"head=cam_high, wrist=cam_left_wrist" -> {"head": "cam_high", "wrist": "cam_left_wrist"};
    "" -> {} (same names). A dataset camera may be written with its "observation.images." prefix."""
    try:
        pairs = parse_name_pairs(text, "camera", "policy_camera=dataset_camera")
    except ValueError as err:
        raise ReplayError(str(err)) from err
    return {slot: camera.removeprefix(IMAGE_PREFIX) for slot, camera in pairs.items()}


def format_camera_mapping(mapping: Mapping[str, str]) -> str:
    return ",".join(f"{slot}={camera}" for slot, camera in mapping.items())


def match_cameras(mapping: Mapping[str, str], policy_cameras: Sequence[str], dataset_cameras: Sequence[str]) -> dict[str, str | None]:
    """policy camera -> the dataset camera it reads (None: no frame), or a ReplayError naming both sides."""
    sides = f"the policy's cameras are {list(policy_cameras)}, the dataset's {list(dataset_cameras)}"
    if not mapping:
        missing = [c for c in policy_cameras if c not in dataset_cameras]
        if missing:
            example = format_camera_mapping(dict(zip(policy_cameras, dataset_cameras)))
            raise ReplayError(f"the dataset lacks the policy's cameras {missing}: {sides}; "
                              f"map them to the dataset's, e.g. {example!r}")
        return {c: c for c in policy_cameras}
    unknown_slots = [s for s in mapping if s not in policy_cameras]
    unknown_cameras = [c for c in mapping.values() if c not in dataset_cameras]
    if unknown_slots or unknown_cameras:
        wrong = [f"policy cameras {unknown_slots}"] * bool(unknown_slots) + [f"dataset cameras {unknown_cameras}"] * bool(unknown_cameras)
        raise ReplayError(f"the camera mapping names unknown {' and '.join(wrong)}: {sides}")
    return {c: mapping.get(c) for c in policy_cameras}


def match_names(what: str, dataset_names: Sequence[str] | None, policy_names: Sequence[str]) -> np.ndarray:
    """Indices into the dataset's vector for each policy name, in the policy's order: (len(policy_names),)."""
    if dataset_names is None:
        raise ReplayError(f"the dataset's {what} has no names, so it cannot be matched to the policy's {list(policy_names)}")
    missing = [n for n in policy_names if n not in dataset_names]
    if missing:
        extra = [n for n in dataset_names if n not in policy_names]
        unused = f"; the dataset has {extra}, which the policy does not use" if extra else ""
        raise ReplayError(f"the dataset's {what} does not match the policy's: the policy needs {missing}, "
                          f"which the dataset lacks{unused}")
    return np.array([list(dataset_names).index(n) for n in policy_names], dtype=np.int64)


def frame_stride(dataset_fps: int, policy_fps: float) -> int:
    """1 when the rates agree; k when the dataset runs k times faster (every k-th frame is played)."""
    ratio = dataset_fps / policy_fps
    stride = round(ratio)
    if stride < 1 or not math.isclose(ratio, stride, rel_tol=1e-6):
        raise ReplayError(f"the dataset is recorded at {dataset_fps} fps, the policy runs at {policy_fps:g} fps: "
                          f"only datasets at {policy_fps:g} fps or a whole multiple of it can be replayed")
    return stride


@dataclass(frozen=True)
class ReplayStatus:
    """What the replay panel shows; cheap to copy and to send as JSON."""

    version: int  # bumps with every change below
    phase: str  # "opening" (incl. converting, loading the policy), "running", then "done", "cancelled" or "failed"
    message: str  # what is happening, or why it failed
    dataset: str  # the folder chosen
    read_from: str  # where it is read (the converted copy of a v2.1 dataset)
    episode: int
    task: str
    instruction: str
    dataset_fps: int | None
    stride: int | None
    horizon: int | None
    cameras: Mapping[str, str | None]  # policy camera -> dataset camera
    step: int  # steps played
    total_steps: int
    inferences: int
    metrics: Mapping[str, Any]  # the figures so far (see ReplayJob.metrics)
    reckoning_ids: Mapping[str, int]  # camera -> id of its latest judged foresight (for picture URLs)


@dataclass
class _Plan:
    """A validated replay: which frames to play and how dataset columns feed the policy."""

    dataset: ReplayDataset
    episode: EpisodeData
    cameras: dict[str, str | None]
    state_index: np.ndarray  # (S,) dataset column of each policy state key
    action_index: np.ndarray  # (A,) dataset column of each policy action key
    stride: int
    positions: range  # episode frame of each step
    instruction: str


class ReplayJob:
    def __init__(
        self,
        load_policy: Callable[[], Policy],
        layout: PolicyLayout,
        config: ReplayConfig,
        cache_root: Path,
        dataset_summary: DatasetSummary | None = None,
    ) -> None:
        self.config = config
        self._load_policy = load_policy
        self._layout = layout
        self._cache_root = Path(cache_root)
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._version = 0
        self._phase = "opening"
        converting = dataset_summary is not None and dataset_summary.version == V21
        self._message = "converting the v2.1 dataset to v3.0 (once; cached)" if converting else "opening the dataset"
        self._plan: _Plan | None = None
        self._horizon: int | None = None
        self._step = 0
        self._recorded: np.ndarray | None = None  # (N, A) recorded actions, policy order
        self._predicted: np.ndarray | None = None  # (N, A) executed prediction, NaN before it exists
        self._chunk_sq_sum = 0.0  # sum of squared errors over every real chunk step
        self._chunk_sq_count = 0
        self._inference_steps: list[int] = []
        self._chunk_mse: list[float] = []  # per inference, over its real chunk steps
        self._foresight: dict[str, dict[str, list]] = {}  # camera -> step / psnr_db / baseline_psnr_db lists
        self._foresight_note = ""
        self._reckonings: dict[str, Reckoning] = {}
        self._next_id = 0
        self._thread = threading.Thread(target=self._run, name="open-loop-replay", daemon=True)

    # --- control ------------------------------------------------------------------------------
    def start(self) -> ReplayJob:
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Stop at the next step; the figures so far stay readable."""
        self._cancel.set()

    def join(self, timeout_s: float | None = None) -> bool:
        """True once the job has finished (done, cancelled or failed)."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    # --- readers (any thread) -----------------------------------------------------------------
    def status(self) -> ReplayStatus:
        with self._lock:
            plan = self._plan
            return ReplayStatus(
                version=self._version,
                phase=self._phase,
                message=self._message,
                dataset=str(self.config.dataset),
                read_from=str(plan.dataset.root) if plan else "",
                episode=self.config.episode,
                task=plan.episode.task if plan else "",
                instruction=plan.instruction if plan else self.config.instruction,
                dataset_fps=plan.dataset.summary.fps if plan else None,
                stride=plan.stride if plan else None,
                horizon=self._horizon,
                cameras=dict(plan.cameras) if plan else {},
                step=self._step,
                total_steps=len(plan.positions) if plan else 0,
                inferences=len(self._inference_steps),
                metrics=self._metrics(),
                reckoning_ids={c: r.id for c, r in self._reckonings.items()},
            )

    def series(self) -> dict[str, Any]:
        """Per-step figures for the charts, JSON-ready (NaN -> None), over the steps played so far."""
        with self._lock:
            plan = self._plan
            if plan is None or self._recorded is None:
                return {"action_keys": list(self._layout.action_keys), "steps": [], "frames": [], "recorded": [],
                        "predicted": [], "inference_steps": [], "chunk_mse": [], "foresight": {}}
            played = self._step
            return {
                "action_keys": list(self._layout.action_keys),
                "steps": list(range(played)),
                "frames": list(plan.positions[:played]),  # episode frame of each step
                "recorded": _rows(self._recorded[:played]),  # (played, A)
                "predicted": _rows(self._predicted[:played]),  # (played, A), None before the first chunk
                "inference_steps": list(self._inference_steps),
                "chunk_mse": list(self._chunk_mse),
                "foresight": {c: {k: list(v) for k, v in lists.items()} for c, lists in self._foresight.items()},
            }

    def result(self) -> dict[str, Any]:
        """Everything about this replay as one JSON-ready dict (the export): status, figures, series."""
        status = self.status()
        summary = {k: v for k, v in dataclasses.asdict(status).items() if k not in ("version", "reckoning_ids")}
        return {**summary, "action_keys": list(self._layout.action_keys), "infer_every": self.config.infer_every,
                "policy_fps": self._layout.fps, "series": self.series()}

    def reckoning(self, camera: str) -> Reckoning | None:
        with self._lock:
            return self._reckonings.get(camera)

    # --- the job thread -----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), REPLAY_NICENESS)
        except OSError:
            pass  # best effort: the replay still runs, only less politely
        policy = None
        try:
            plan = self._open()
            self._set(message="loading the policy")
            policy = self._load_policy()
            horizon = foresight_horizon(policy)
            policy.reset()
            seed = getattr(policy, "seed", None)
            if callable(seed):
                seed(NOISE_SEED)
            with self._lock:
                self._plan, self._horizon = plan, horizon
                self._recorded = plan.episode.action[np.asarray(plan.positions)][:, plan.action_index]  # (N, A)
                self._predicted = np.full_like(self._recorded, np.nan)
                self._foresight = {c: {"step": [], "psnr_db": [], "baseline_psnr_db": []} for c, d in plan.cameras.items() if d}
            self._set(phase="running", message=f"replaying {len(plan.positions)} steps")
            self._play(policy, plan, horizon)
            if self._cancel.is_set():
                self._set(phase="cancelled", message=f"stopped after {self._step} of {len(plan.positions)} steps")
            else:
                note = f" ({self._foresight_note})" if self._foresight_note else ""
                self._set(phase="done", message=f"replayed {self._step} steps{note}")
        except (ReplayError, DatasetReadError) as err:
            self._set(phase="failed", message=str(err))
        except Exception as err:  # noqa: BLE001 - a failing policy or decoder ends this replay, shown, not the console
            self._set(phase="failed", message=f"{type(err).__name__}: {err}")
        finally:
            if policy is not None:
                policy.reset()  # drop the replayed frames the policy kept

    def _open(self) -> _Plan:
        config, layout = self.config, self._layout
        dataset = open_replay_dataset(config.dataset, self._cache_root)
        summary = dataset.summary
        stride = frame_stride(summary.fps, layout.fps)
        cameras = match_cameras(config.cameras, layout.camera_keys, summary.cameras)
        state_index = match_names("observation.state", summary.state_names, layout.state_keys)
        action_index = match_names("action", summary.action_names, layout.action_keys)
        episode = dataset.episode(config.episode)
        positions = range(0, episode.length, stride)
        if config.max_steps is not None:
            positions = positions[: config.max_steps]
        instruction = config.instruction.strip() or episode.task
        if not instruction:
            raise ReplayError(f"episode {config.episode} has no task, and no instruction was given")
        return _Plan(dataset, episode, cameras, state_index, action_index, stride, positions, instruction)

    def _play(self, policy: Policy, plan: _Plan, horizon: int) -> None:
        readers = {slot: plan.dataset.frames(plan.episode, camera, plan.positions) for slot, camera in plan.cameras.items() if camera}
        kept: dict[int, dict[str, np.ndarray]] = {}  # step -> camera -> uint8 (H, W, 3), the last H + 1 steps
        pending: dict[int, tuple[int, dict[str, np.ndarray]]] = {}  # step judged -> (step made, camera -> picture)
        steps = len(plan.positions)
        for step, position in enumerate(plan.positions):
            if self._cancel.is_set():
                return
            frames = {slot: next(reader) for slot, reader in readers.items()}
            state = plan.episode.state[position, plan.state_index]  # (S,)
            observation: dict[str, Any] = dict(zip(self._layout.state_keys, map(float, state)))
            observation.update(frames)
            kept[step] = frames
            kept.pop(step - horizon - 1, None)
            try:
                policy.observe(observation)
                output = policy.infer(observation, plan.instruction) if step % self.config.infer_every == 0 else None
            except Exception as err:  # noqa: BLE001 - named with the step it failed at
                raise ReplayError(f"the policy failed at step {step} (episode frame {position}): "
                                  f"{type(err).__name__}: {err}") from err
            if output is not None:
                self._score_chunk(step, np.asarray(output.actions, dtype=np.float32), steps)
                pictures, _, problems = valid_foresight(output.foresight, None, list(self._layout.camera_keys))
                pictures = {c: p for c, p in pictures.items() if c in frames}  # unmapped slots have nothing to judge by
                self._note_foresight(output.foresight, problems)
                if pictures and step + horizon < steps:
                    pending[step + horizon] = (step, pictures)
            if step in pending:
                made, pictures = pending.pop(step)
                self._score_foresight(made, pictures, kept[made], frames)
            with self._lock:
                self._step = step + 1
                self._version += 1

    def _score_chunk(self, step: int, chunk: np.ndarray, steps: int) -> None:
        """chunk (C, A) inferred at `step` against the recorded actions of steps step .. step + C - 1."""
        action_dim = len(self._layout.action_keys)
        if chunk.ndim != 2 or chunk.shape[1] != action_dim or len(chunk) == 0:
            raise ReplayError(f"the policy returned actions of shape {chunk.shape}, expected (steps, {action_dim})")
        if len(chunk) < self.config.infer_every:
            raise ReplayError(f"infer_every is {self.config.infer_every} steps, but the policy's chunk holds only "
                              f"{len(chunk)}: steps in between would have no prediction")
        if not np.isfinite(chunk).all():
            raise ReplayError(f"the policy returned NaN or infinite actions at step {step}")
        real = chunk[: steps - step]  # (C', A): chunk steps that fall inside the episode
        squared = (real - self._recorded[step : step + len(real)]) ** 2  # (C', A)
        with self._lock:
            self._chunk_sq_sum += float(squared.sum())
            self._chunk_sq_count += squared.size
            self._inference_steps.append(step)
            self._chunk_mse.append(float(squared.mean()))
            executed = real[: self.config.infer_every]
            self._predicted[step : step + len(executed)] = executed

    def _score_foresight(self, made: int, pictures: dict[str, np.ndarray], then: dict[str, np.ndarray], now: dict[str, np.ndarray]) -> None:
        """Judge each predicted view against the recorded frame made + H (outside the lock)."""
        target = made + self._horizon
        judged = {camera: reckon(prediction, now[camera], then[camera], made, target) for camera, prediction in pictures.items()}
        with self._lock:
            for camera, reckoning in judged.items():
                lists = self._foresight[camera]
                lists["step"].append(made)
                lists["psnr_db"].append(reckoning.psnr_db)
                lists["baseline_psnr_db"].append(reckoning.baseline_psnr_db)
                self._reckonings[camera] = replace(reckoning, id=self._next_id)
                self._next_id += 1

    def _metrics(self) -> dict[str, Any]:
        """Caller holds the lock. Episode figures so far; None where nothing has been judged yet."""
        metrics: dict[str, Any] = {
            "action_mse": self._chunk_sq_sum / self._chunk_sq_count if self._chunk_sq_count else None,
            "action_mse_executed": None,
            "action_mse_executed_per_dim": {},
            "foresight": {},
        }
        if self._predicted is not None and self._step:
            errors = (self._predicted[: self._step] - self._recorded[: self._step]) ** 2  # (played, A), NaN before a chunk
            covered = ~np.isnan(errors[:, 0])
            if covered.any():
                metrics["action_mse_executed"] = float(errors[covered].mean())
                per_dim = errors[covered].mean(axis=0)  # (A,)
                metrics["action_mse_executed_per_dim"] = dict(zip(self._layout.action_keys, map(float, per_dim)))
        for camera, lists in self._foresight.items():
            judged = len(lists["step"])
            metrics["foresight"][camera] = {
                "judged": judged,
                "psnr_db": float(np.mean(lists["psnr_db"])) if judged else None,
                "baseline_psnr_db": float(np.mean(lists["baseline_psnr_db"])) if judged else None,
            }
        return metrics

    def _note_foresight(self, foresight: Mapping[str, Any] | None, problems: list[str]) -> None:
        """Why foresight figures are missing or partial, for the final message (latest inference's)."""
        note = NO_FORESIGHT_MESSAGE if not foresight else "; ".join(problems)
        with self._lock:
            self._foresight_note = note

    def _set(self, phase: str | None = None, message: str | None = None) -> None:
        with self._lock:
            if phase is not None:
                self._phase = phase
            if message is not None:
                self._message = message
            self._version += 1


def _rows(values: np.ndarray) -> list[list[float | None]]:
    """(N, A) float -> nested lists with NaN as None (JSON has no NaN)."""
    return [[None if math.isnan(v) else float(v) for v in row] for row in values.tolist()]
