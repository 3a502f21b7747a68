"""Durability of a dataset being recorded: the recorder's journal, and the repair after a kill.

A SIGKILL at any moment loses at most the episode in progress. LeRobot keeps its data and
episode-metadata parquet writers open across episodes (footers only at rotation or `finalize()`),
buffers up to 10 episodes' metadata in memory, and writes info.json, stats.json and tasks.parquet
in place (a kill mid-write truncates them). So the recorder seals every saved episode in files of
its own (robot_io/datasets/recorder.py) and then records the dataset's metadata here, in a
journal, `meta/recorder_journal.json`, replaced atomically. Reopening a dataset restores the
metadata files from the journal and moves every file no journaled episode refers to (the killed
episode's half-written files) to a folder beside the dataset, never deleting anything
(`repair_from_journal`). A dataset without journal (recorded before it existed, or by another
tool) whose writer never finalized is repaired from what is readable (`recover_unfinalized`).

Nothing here writes before the caller asked to record: the checks (`check_recordable`) read only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from robot_io.datasets.parquet_reads import read_episode_rows, read_parquet
from robot_io.datasets.schema import EPISODES_DIR, INFO_PATH, TASKS_PATH, EpisodeSummary, RecorderError, dataset_features, feature_differences

logger = logging.getLogger(__name__)

JOURNAL_PATH = "meta/recorder_journal.json"
JOURNAL_VERSION = 1


def check_writable(root: Path) -> None:
    """Fail early, naming the path, when `root` cannot be created or written.

    os.access is used rather than a probe file so nothing is left behind; note it reports True
    for root (uid 0) on any directory, except on read-only filesystems.
    """
    probe = root
    while not probe.exists():
        if probe.parent == probe:
            raise RecorderError(f"Cannot record to {root}: no existing parent folder.")
        probe = probe.parent
    if not probe.is_dir():
        raise RecorderError(f"Cannot record to {root}: {probe} is not a folder.")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RecorderError(f"Cannot record to {root}: {probe} is not writable.")


def read_journal(root: Path) -> dict | None:
    """The recorder's journal of the dataset at `root` (see the module docstring), or None."""
    path = Path(root) / JOURNAL_PATH
    if not path.is_file():
        return None
    try:
        journal = json.loads(path.read_text())
    except ValueError as err:  # cannot happen by a kill (atomic replace); someone edited it
        raise RecorderError(f"{path} is not valid JSON: {err}") from err
    if journal.get("version") != JOURNAL_VERSION:
        raise RecorderError(f"{path} has version {journal.get('version')}, expected {JOURNAL_VERSION}.")
    return journal


def check_existing_dataset(root: Path, fps: int, features: dict[str, dict]) -> dict:
    """The info of the dataset at `root`, or a RecorderError naming every way it differs from
    `features` (and fps) or why it is no dataset. Reads only metadata: callers can check a
    dataset before recording starts, and nothing is ever written."""
    root = Path(root)
    info_path = root / INFO_PATH
    journal = read_journal(root)
    if not info_path.is_file() and journal is None:
        raise RecorderError(f"{root} is not empty and holds no LeRobot dataset (no meta/info.json).")
    if not os.access(root, os.W_OK | os.X_OK):
        raise RecorderError(f"Cannot record to {root}: it is not writable.")
    if journal is not None:
        info = journal["info"]  # info.json itself may be half-written by a killed process
    else:
        try:
            info = json.loads(info_path.read_text())
        except ValueError as err:
            raise RecorderError(f"{info_path} is not valid JSON: {err}") from err
    diffs = feature_differences(features, info.get("features", {}))
    if info.get("fps") != fps:
        diffs.append(f"fps: dataset has {info.get('fps')}, recorder has {fps}")
    if diffs:
        raise RecorderError(
            f"The dataset at {root} was recorded with different features; nothing was "
            "written. Differences:\n  " + "\n  ".join(diffs)
        )
    return info


def check_recordable(root: Path, fps: int, observation_features: dict, action_features: dict) -> None:
    """Everything that would make recording to `root` fail, checked before any recording starts:
    the folder writable, and an existing dataset there recorded with this robot's features."""
    check_writable(root)
    root = Path(root).expanduser()
    if root.exists() and not is_empty_dir(root):
        check_existing_dataset(root, int(fps), dataset_features(observation_features, action_features))


def is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` by `data` so a kill leaves either the old or the new content, never a mix.
    (Survives a killed process; surviving a power cut would also need fsync.)"""
    temporary = path.with_name(path.name + ".partial")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def write_tasks_atomically(path: Path, tasks: list[str]) -> None:
    """meta/tasks.parquet as LeRobot's `write_tasks` lays it out: index "task", column task_index."""
    import pandas as pd

    temporary = path.with_name(path.name + ".partial")
    pd.DataFrame({"task_index": range(len(tasks))}, index=pd.Index(tasks, name="task")).to_parquet(temporary)
    os.replace(temporary, path)


def json_or_none(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def parquet_readable(path: Path) -> bool:
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
        return True
    except Exception:  # noqa: BLE001 - ArrowInvalid / OSError: no footer, truncated
        return False




def read_info(root: Path) -> dict:
    return json.loads((root / INFO_PATH).read_text())


def read_tasks(root: Path) -> list[str] | None:
    """Tasks in task_index order; None when meta/tasks.parquet is missing or unreadable."""
    import pandas as pd

    try:
        tasks = pd.read_parquet(root / TASKS_PATH)
    except Exception:  # noqa: BLE001 - missing, or half-written by a killed process
        return None
    return [str(task) for task in tasks.sort_values("task_index").index]


def write_journal(root: Path, summaries: list[EpisodeSummary]) -> None:
    """Record the dataset's metadata files as they are now, all of its episodes being complete."""
    info = read_info(root)
    stats_path = root / "meta" / "stats.json"
    journal = {
        "version": JOURNAL_VERSION,
        "episodes": info["total_episodes"],
        "info": info,
        "stats": json.loads(stats_path.read_text()) if stats_path.is_file() else None,
        "tasks": read_tasks(root) or [],
        "summaries": [asdict(summary) for summary in summaries],
    }
    write_atomically(root / JOURNAL_PATH, json.dumps(journal).encode())


def journaled_summaries(root: Path, num_episodes: int) -> list[EpisodeSummary]:
    """The journal's episode summaries; for datasets journaled before summaries existed (or
    without a journal), what meta/episodes tells: task and length, outcome unknown (journaled then)."""
    journal = read_journal(root) or {}
    kept = [EpisodeSummary(**row) for row in journal.get("summaries", []) if row["index"] < num_episodes]
    if len(kept) == num_episodes:
        return kept
    summaries = [EpisodeSummary(row["episode_index"], ", ".join(row["tasks"]), int(row["length"]), "unknown", -1)
                 for row in read_episode_rows(root)[:num_episodes]]
    write_journal(root, summaries)
    return summaries


def creation_was_interrupted(root: Path) -> bool:
    """A kill while the dataset was being created leaves meta/ with no journal, maybe a half-written
    info.json, and no episode files. Such a folder holds nothing worth keeping."""
    if (root / JOURNAL_PATH).exists() or not (root / "meta").is_dir():
        return False
    with contextlib.suppress(OSError, ValueError):
        read_info(root)
        return False  # a readable info.json: the ordinary path handles it
    lerobot_entries = all(p.name in ("meta", "data", "videos", "images") or p.name.startswith("tmp") for p in root.iterdir())
    episode_files = any(p.suffix in (".parquet", ".mp4") for p in root.rglob("*") if p.is_file())
    return lerobot_entries and not episode_files


def repair_from_journal(root: Path, journal: dict) -> None:
    """Bring the folder back to the journal's state: the metadata files as journaled, the
    journaled episodes' files, nothing else.

    A kill mid-save can leave: info.json/stats.json/tasks.parquet half-written or counting
    the killed episode; a data or metadata parquet file without footer; finished or partial
    mp4s of the killed episode. Files no journaled episode refers to are moved to a folder
    beside the dataset (never deleted: a bug here must not destroy data). Idempotent, so a
    kill during the repair is repaired by the next open.
    """
    meta = root / "meta"
    restored = []
    if json_or_none(root / INFO_PATH) != journal["info"]:
        write_atomically(root / INFO_PATH, json.dumps(journal["info"], indent=4).encode())
        restored.append("info.json")
    stats_path = meta / "stats.json"
    if journal["stats"] is None and stats_path.exists():
        stats_path.unlink()
        restored.append("stats.json")
    elif journal["stats"] is not None and json_or_none(stats_path) != journal["stats"]:
        write_atomically(stats_path, json.dumps(journal["stats"], indent=4).encode())
        restored.append("stats.json")
    tasks_path = root / TASKS_PATH
    if not journal["tasks"] and tasks_path.exists():
        tasks_path.unlink()
        restored.append("tasks.parquet")
    elif journal["tasks"] and read_tasks(root) != journal["tasks"]:
        write_tasks_atomically(tasks_path, journal["tasks"])
        restored.append("tasks.parquet")

    count, info = journal["episodes"], journal["info"]
    keep = {tasks_path} if journal["tasks"] else set()
    kept_rows = []
    for path, rows in episode_rows(root, info).items():
        durable = [row for row in rows or [] if row["episode_index"] < count]
        if durable and len(durable) != len(rows):  # sealing never mixes them in one file
            raise RecorderError(f"The dataset at {root} is damaged: {path} mixes saved and unsaved episodes.")
        if durable:
            keep.add(path)
            kept_rows += durable
    if sorted(row["episode_index"] for row in kept_rows) != list(range(count)):
        raise RecorderError(
            f"The dataset at {root} is damaged: the journal lists {count} episodes but "
            f"meta/episodes holds {sorted(row['episode_index'] for row in kept_rows)}."
        )
    keep |= referenced_files(root, info, kept_rows)
    moved, aside = move_aside(root, keep)
    if restored or moved:
        logger.warning(
            "%s was not closed cleanly (the recorder was killed?): kept its %d saved episodes, "
            "restored %s from the journal, moved %d unusable files to %s.",
            root, count, restored or "nothing", moved, aside,
        )


def episode_rows(root: Path, info: dict) -> dict[Path, list[dict] | None]:
    """The rows of each meta/episodes parquet file (file references only); None: unreadable."""
    video_keys = [k for k, ft in info["features"].items() if ft.get("dtype") == "video"]
    columns = ["episode_index", "length", "data/chunk_index", "data/file_index"]
    columns += [f"videos/{k}/{c}" for k in video_keys for c in ("chunk_index", "file_index")]
    rows: dict[Path, list[dict] | None] = {}
    for path in sorted((root / EPISODES_DIR).glob("*/*.parquet")):
        try:
            rows[path] = read_parquet(path, columns).to_pylist()
        except Exception:  # noqa: BLE001 - ArrowInvalid / OSError: no footer, truncated
            rows[path] = None
    return rows


def referenced_files(root: Path, info: dict, rows: list[dict]) -> set[Path]:
    """The data and video files `rows` refer to; all must exist and data files be readable."""
    video_keys = [k for k, ft in info["features"].items() if ft.get("dtype") == "video"]
    files = set()
    for row in rows:
        files.add(root / info["data_path"].format(chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]))
        for key in video_keys:
            files.add(root / info["video_path"].format(
                video_key=key,
                chunk_index=row[f"videos/{key}/chunk_index"],
                file_index=row[f"videos/{key}/file_index"],
            ))
    missing = sorted(str(p) for p in files if not p.exists())
    unreadable = sorted(str(p) for p in files if p.suffix == ".parquet" and p.exists() and not parquet_readable(p))
    if missing or unreadable:
        raise RecorderError(
            f"The dataset at {root} is damaged beyond automatic repair: unreadable {unreadable}, missing {missing}."
        )
    return files


def move_aside(root: Path, keep: set[Path]) -> tuple[int, Path]:
    """Move every episode file not in `keep` to `<root>.unfinalized-<time>-<pid>/`."""
    aside = root.with_name(f"{root.name}.unfinalized-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    moved = 0
    for folder in ("data", "videos", EPISODES_DIR):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and path not in keep:
                target = aside / path.relative_to(root)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(path), str(target))
                moved += 1
    return moved, aside


def recover_unfinalized(root: Path) -> None:
    """Repair a dataset without journal (recorded before it existed, or by another tool)
    whose writer never finalized.

    Every episode whose metadata row is readable on disk is complete; the rest cannot be
    read. So: keep those, move every file they do not reference aside (never delete), and
    set info.json's counts to the kept episodes. stats.json keeps the lost episodes'
    contribution (it is a running aggregate), a small bias in normalisation stats.
    """
    info = read_info(root)
    by_file = episode_rows(root, info)
    rows = sorted((row for file_rows in by_file.values() for row in file_rows or []), key=lambda row: row["episode_index"])
    broken = [p for p, file_rows in by_file.items() if file_rows is None]
    broken += [p for p in (root / "data").glob("*/*.parquet") if not parquet_readable(p)]
    if not broken and len(rows) == info["total_episodes"]:
        return  # finalized cleanly

    if [row["episode_index"] for row in rows] != list(range(len(rows))):
        raise RecorderError(f"The dataset at {root} is damaged beyond automatic repair (episode gaps).")
    keep = {root / TASKS_PATH} | {p for p, file_rows in by_file.items() if file_rows is not None}
    keep |= referenced_files(root, info, rows)
    moved, aside = move_aside(root, keep)
    lost = info["total_episodes"] - len(rows)
    info["total_episodes"] = len(rows)
    info["total_frames"] = int(sum(row["length"] for row in rows))
    info["splits"] = {"train": f"0:{len(rows)}"}
    write_atomically(root / INFO_PATH, json.dumps(info, indent=4, ensure_ascii=False).encode())
    logger.warning(
        "%s was not finalized (the recorder was killed?): kept %d episodes, %d unreadable episodes "
        "lost; %d unusable files moved to %s.", root, len(rows), lost, moved, aside,
    )


def remove_stale_temporaries(root: Path) -> None:
    """Remove LeRobot's per-episode temporary folders (`root/tmpXXXX`, mkdtemp) that hold no
    more than partial mp4s: left by an interrupted or discarded episode (LeRobot only cleans a
    folder once its encoder has written a file). Only called when no episode is in progress."""
    for folder in root.glob("tmp*"):
        if folder.is_dir() and all(f.is_file() and f.suffix == ".mp4" for f in folder.iterdir()):
            logger.info("Removing leftover temporary folder %s", folder)
            shutil.rmtree(folder, ignore_errors=True)
    for partial in (root / "meta").glob("*.partial"):  # see write_atomically
        partial.unlink()
    # Without streaming encoding, PNGs are staged under root/images; LeRobot leaves the folders.
    images = root / "images"
    if images.is_dir() and not any(p.is_file() for p in images.rglob("*")):
        shutil.rmtree(images, ignore_errors=True)
