"""The episode list of one LeRobot v3.0 dataset: task, length, outcome, operator share, flag.

Read from the recorder's journal when the dataset has one (robot_io/datasets/journal.py): it is
replaced atomically after each saved episode, so it is consistent even while the console records
into the dataset, and one small file is all there is to read. Other datasets are read from
meta/info.json, meta/episodes (task, length) and, when they have our features, the
`episode_outcome` / `intervention` columns of their data files. Either way the result is cached
until the files it came from change (`version`), so the page can poll cheaply.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

from robot_io.datasets.journal import JOURNAL_PATH
from robot_io.datasets.parquet_reads import UnreadableParquetError, read_episode_rows, read_parquet
from robot_io.datasets.schema import (
    EPISODE_OUTCOMES, EPISODES_DIR, IMAGE_PREFIX, INFO_PATH, INTERVENTION_KEY, OUTCOME_KEY, EpisodeSummary,
)
from runtime.curation.flags import FLAGS_PATH, read_flags

V30 = "v3.0"
UNKNOWN_OUTCOME = "unknown"


class CatalogError(ValueError):
    """The dataset's episodes cannot be listed; the message names the dataset and the problem."""


@dataclass(frozen=True)
class EpisodeTable:
    root: Path
    fps: int
    robot_type: str | None
    cameras: tuple[str, ...]  # video cameras, without the "observation.images." prefix
    features: dict  # meta/info.json's feature dict, for comparing datasets before a merge
    video_path: str  # meta/info.json's video file pattern
    episodes: tuple[EpisodeSummary, ...]  # oldest first; intervention_frames -1 when not known
    flagged: frozenset[int]
    journaled: bool  # written by our recorder (its journal holds the summaries)
    version: str  # changes whenever anything listed here changes


def episode_table(root: Path) -> EpisodeTable:
    """The dataset's episodes (cached while its files are unchanged); CatalogError when unreadable."""
    root = Path(root)
    version = _version(root)
    with _cache_lock:
        cached = _cache.get(root)
    if cached is not None and cached.version == version:
        return cached
    table = _read_table(root, version)
    with _cache_lock:
        _cache[root] = table
    return table


_cache: dict[Path, EpisodeTable] = {}
_cache_lock = threading.Lock()


def _version(root: Path) -> str:
    """Size and time of the files the table is read from (the journal, else info.json), and the flags."""
    parts = []
    for relative in (JOURNAL_PATH, INFO_PATH, FLAGS_PATH):
        try:
            stat = (root / relative).stat()
            parts.append(f"{stat.st_mtime_ns}:{stat.st_size}")
        except OSError:
            parts.append("-")
    return "/".join(parts)


def _read_table(root: Path, version: str) -> EpisodeTable:
    journal = _read_json(root / JOURNAL_PATH)
    summaries = None
    if journal is not None and len(journal.get("summaries", [])) == journal.get("episodes"):
        info = journal["info"]  # info.json itself may be mid-write while the recorder saves
        summaries = [EpisodeSummary(**row) for row in journal["summaries"]]
    else:
        info = _read_json(root / INFO_PATH)
        if info is None:
            raise CatalogError(f"{root}: {INFO_PATH} is missing or unreadable")
    version_name = str(info.get("codebase_version"))
    if version_name != V30:
        raise CatalogError(f"{root} is a LeRobot {version_name} dataset: curation edits {V30} datasets "
                           "(open it in the replay panel once to get a converted copy)")
    features = info.get("features") or {}
    if summaries is None:
        summaries = _summaries_from_files(root, info)
    return EpisodeTable(
        root=root,
        fps=int(info["fps"]),
        robot_type=info.get("robot_type"),
        cameras=tuple(k.removeprefix(IMAGE_PREFIX) for k, ft in features.items() if ft.get("dtype") == "video"),
        features=features,
        video_path=str(info.get("video_path") or ""),
        episodes=tuple(summaries),
        flagged=frozenset(read_flags(root)),
        journaled=journal is not None,
        version=version,
    )


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _summaries_from_files(root: Path, info: dict) -> list[EpisodeSummary]:
    """Task and length from meta/episodes; outcome and operator frames from the data files when
    the dataset has those features (ours), else "unknown" and -1."""
    try:
        rows = read_episode_rows(root)
    except UnreadableParquetError as err:
        raise CatalogError(str(err)) from err
    if [row["episode_index"] for row in rows] != list(range(info.get("total_episodes", -1))):
        raise CatalogError(f"{root}: {EPISODES_DIR} lists {len(rows)} episodes, {INFO_PATH} says {info.get('total_episodes')}")
    outcomes, operator = _per_episode_columns(root, info)
    return [
        EpisodeSummary(
            index=row["episode_index"],
            task=", ".join(row["tasks"] or []),
            frames=int(row["length"]),
            outcome=outcomes.get(row["episode_index"], UNKNOWN_OUTCOME),
            intervention_frames=operator.get(row["episode_index"], -1),
        )
        for row in rows
    ]


def _per_episode_columns(root: Path, info: dict) -> tuple[dict[int, str], dict[int, int]]:
    features = info.get("features") or {}
    columns = [key for key in (OUTCOME_KEY, INTERVENTION_KEY) if key in features]
    if not columns:
        return {}, {}
    import pyarrow as pa

    tables = []
    for path in sorted((root / "data").glob("*/*.parquet")):
        try:
            tables.append(read_parquet(path, ["episode_index", *columns]))
        except Exception as err:  # noqa: BLE001 - ArrowInvalid / OSError: truncated or not parquet
            raise CatalogError(f"{root}: {path.relative_to(root)} is unreadable: {err}") from err
    if not tables:
        return {}, {}
    table = pa.concat_tables(tables, promote_options="default").to_pandas()
    outcomes, operator = {}, {}
    if OUTCOME_KEY in columns:
        codes = table.groupby("episode_index")[OUTCOME_KEY].first()
        outcomes = {int(i): EPISODE_OUTCOMES[int(_scalar(c))] if 0 <= int(_scalar(c)) < len(EPISODE_OUTCOMES)
                    else UNKNOWN_OUTCOME for i, c in codes.items()}
    if INTERVENTION_KEY in columns:
        table["_operator"] = table[INTERVENTION_KEY].map(lambda v: bool(_scalar(v)))
        operator = {int(i): int(n) for i, n in table.groupby("episode_index")["_operator"].sum().items()}
    return outcomes, operator


def _scalar(value):
    """A (1,)-shaped feature value as LeRobot stores it (an array of one) -> that one value."""
    try:
        return value[0]
    except (TypeError, IndexError):
        return value
