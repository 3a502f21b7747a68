"""The dataset schema the console records and reads: LeRobot v3.0 (lerobot 0.6.1) features and their names.

Per frame a dataset of ours stores

- `observation.images.<cam>`  video per camera (H, W, 3) uint8
- `observation.state`         float32, names = the robot's scalar observation keys, in order
- `action`                    float32, names = the robot's action keys, in order
- `intervention`              bool (1,): True when the operator produced the action. Same name,
                              dtype and shape as lerobot 0.6.1's DAgger/HIL rollout
                              (`lerobot/rollout/strategies/dagger.py`, `rollout/context.py`).
- `actor`                     int64 (1,): index into `ACTION_SOURCES`; the list is stored as the
                              feature's `names` in meta/info.json so the codes explain themselves.
- `chunk_id`                  int64 (1,): the policy chunk the action came from, -1 when none
                              (operator, hold). Chunk ids count up within one console session.
- `inference_latency_ms`      float32 (1,): how long that chunk took to compute, -1 when none.
- `foresight_psnr_db`         float32 (1,): PSNR of the foresight judged at this tick (the
                              prediction made 15 ticks earlier against this frame, mean over
                              cameras), -1 on ticks where none was judged. (-1, not NaN, so
                              LeRobot's feature statistics stay finite.)
- `surprise_score`            float32 (1,): the calibrated surprise score of that judged foresight
                              (robot_io/surprise_calibration.py: its conformal p-value, small
                              = surprising, at or below the calibration's false-alarm rate = alarm),
                              -1 where none was judged or the session had no calibration.
- `intervention_segment`      int64 (1,): index into `INTERVENTION_SEGMENTS`: "none" on frames the
                              operator did not produce; within an intervention (as in RaC, arXiv
                              2509.07953) "recovery" while the operator brings the robot back to a
                              state the policy knows, then "correction" while they complete the task.
                              A device that cannot tell them apart reports every frame "correction".
- `episode_outcome`           int64 (1,): index into `EPISODE_OUTCOMES`, the same on every frame
                              of an episode; set when it is saved (operator's verdict or the
                              sim's detector).
- `task`                      the instruction, as LeRobot's `add_frame` expects it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SOURCE_POLICY, SOURCE_OPERATOR, SOURCE_HOLD = "policy", "operator", "hold"  # who produced a tick's action
ACTION_SOURCES: tuple[str, ...] = (SOURCE_POLICY, SOURCE_OPERATOR, SOURCE_HOLD)  # code = index; never reorder
EPISODE_OUTCOMES: tuple[str, ...] = ("failure", "success", "unknown")  # code = index; never reorder
SEGMENT_NONE, SEGMENT_RECOVERY, SEGMENT_CORRECTION = "none", "recovery", "correction"  # a frame's part of an intervention
INTERVENTION_SEGMENTS: tuple[str, ...] = (SEGMENT_NONE, SEGMENT_RECOVERY, SEGMENT_CORRECTION)  # code = index; never reorder
INTERVENTION_KEY = "intervention"  # lerobot 0.6.1's DAgger name for "the human produced this action"
ACTION_SOURCE_KEY = "actor"
CHUNK_KEY = "chunk_id"
LATENCY_KEY = "inference_latency_ms"
FORESIGHT_KEY = "foresight_psnr_db"
SURPRISE_KEY = "surprise_score"
SEGMENT_KEY = "intervention_segment"
OUTCOME_KEY = "episode_outcome"
UNKNOWN = -1  # chunk id, latency, PSNR and surprise score of frames that have none
STATE_KEY = "observation.state"
ACTION_KEY = "action"
IMAGE_PREFIX = "observation.images."
REPO_ID_PREFIX = "local/"  # a dataset's repo_id is "local/<folder name>": it only names the dataset, never the Hub
INFO_PATH = "meta/info.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
# LeRobot's default video codec (libsvtav1 via PyAV 15.1) kills the whole process with SIGFPE for
# frames 24 pixels wide or less (measured); refuse such cameras up front instead.
MIN_IMAGE_SIDE = 32
_LEROBOT_AUTO_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")


def local_repo_id(root: Path) -> str:
    """The repo_id LeRobot is given for the local dataset at `root`."""
    return REPO_ID_PREFIX + Path(root).name


class RecorderError(RuntimeError):
    """A recording request that cannot be honoured; the message names the key or path at fault."""


def dataset_features(observation_features: dict, action_features: dict) -> dict[str, dict]:
    """The LeRobot feature dict for a robot's `observation_features` / `action_features`."""
    state_names = [k for k, v in observation_features.items() if v is float]
    cameras = {k: v for k, v in observation_features.items() if isinstance(v, tuple)}
    unknown = [k for k in observation_features if k not in state_names and k not in cameras]
    if unknown:
        raise RecorderError(f"Observation features {unknown} are neither float nor an image shape.")
    bad_actions = [k for k, v in action_features.items() if v is not float]
    if bad_actions:
        raise RecorderError(f"Action features {bad_actions} must be float.")
    if not action_features:
        raise RecorderError("The robot declares no action features; there is nothing to record.")

    features: dict[str, dict] = {}
    for cam, shape in cameras.items():
        if len(shape) != 3 or shape[2] != 3 or min(shape) <= 0:
            raise RecorderError(f"Camera '{cam}' has shape {shape}; expected (height, width, 3).")
        if min(shape[:2]) < MIN_IMAGE_SIDE:
            raise RecorderError(
                f"Camera '{cam}' is {shape[0]}x{shape[1]}; the video encoder needs at least "
                f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}."
            )
        # Same layout lerobot's hw_to_dataset_features writes for an RGB camera.
        features[IMAGE_PREFIX + cam] = {
            "dtype": "video",
            "shape": tuple(int(s) for s in shape),
            "names": ["height", "width", "channels"],
            "info": {"is_depth_map": False},
        }
    if state_names:
        features[STATE_KEY] = {"dtype": "float32", "shape": (len(state_names),), "names": state_names}
    features[ACTION_KEY] = {"dtype": "float32", "shape": (len(action_features),), "names": list(action_features)}
    features[INTERVENTION_KEY] = {"dtype": "bool", "shape": (1,), "names": None}
    features[ACTION_SOURCE_KEY] = {"dtype": "int64", "shape": (1,), "names": list(ACTION_SOURCES)}
    features[CHUNK_KEY] = {"dtype": "int64", "shape": (1,), "names": None}
    features[LATENCY_KEY] = {"dtype": "float32", "shape": (1,), "names": None}
    features[FORESIGHT_KEY] = {"dtype": "float32", "shape": (1,), "names": None}
    features[SURPRISE_KEY] = {"dtype": "float32", "shape": (1,), "names": None}
    features[SEGMENT_KEY] = {"dtype": "int64", "shape": (1,), "names": list(INTERVENTION_SEGMENTS)}
    features[OUTCOME_KEY] = {"dtype": "int64", "shape": (1,), "names": list(EPISODE_OUTCOMES)}
    return features


@dataclass(frozen=True)
class EpisodeSummary:
    """One saved episode, as the console's episode list shows it."""

    index: int
    task: str
    frames: int
    outcome: str  # one of EPISODE_OUTCOMES
    intervention_frames: int  # frames the operator produced; -1 when not known (older datasets)


def feature_differences(expected: dict[str, dict], existing: dict[str, dict],
                        expected_name: str = "robot", existing_name: str = "dataset") -> list[str]:
    """Human-readable differences between two feature dicts (dtype, shape, names per key); the
    names say which side is which ("the dataset has ..., the robot has ...").

    Video encoder details in `info` (codec, pix_fmt, ...) are ignored: they are written by LeRobot
    after the first episode and do not change what a frame means.
    """
    diffs = []
    keys = [k for k in {**expected, **existing} if k not in _LEROBOT_AUTO_FEATURES]
    for key in keys:
        if key not in existing:
            diffs.append(f"'{key}' is missing from the {existing_name}")
            continue
        if key not in expected:
            diffs.append(f"'{key}' exists in the {existing_name} but the {expected_name} has no such feature")
            continue
        for field in ("dtype", "shape", "names"):
            want, have = expected[key].get(field), existing[key].get(field)
            if field == "shape":
                want, have = list(want or []), list(have or [])
            if want != have:
                diffs.append(f"'{key}' {field}: the {existing_name} has {have}, the {expected_name} has {want}")
    return diffs
