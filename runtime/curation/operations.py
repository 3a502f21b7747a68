"""Curation edits, done by LeRobot 0.6.1's own dataset tools (`lerobot.datasets.dataset_tools`).

Each operation checks its request against the episode table first (a clear EditError, nothing
written), then writes a complete new dataset into `out`, a folder that does not exist yet; the
source is only read. runtime/curation/safe_edit.py decides where `out` is and how the result is
published. What LeRobot's tools do not know about is carried over here: the flags
(runtime/curation/flags.py) and, for datasets our recorder wrote, its journal with each episode's
outcome and operator frames (robot_io/datasets/journal.py), so the recorder can append to the
result and the list keeps showing outcomes. Delete and export read a recording packed into
LeRobot's many-episodes-per-file layout and write a packed result: on the recorder's layout,
one file set per episode, LeRobot's tools cost minutes per few hundred episodes
(runtime/curation/packing.py, lerobot_reads.py).

    delete(table, episodes, out)     delete_episodes: every other episode, renumbered
    relabel(table, episode, task, out)  a copy (videos hard-linked), then modify_tasks on it
    export(table, episodes, out)     split_dataset with one split: the chosen episodes
    merge(first, second, out)        merge_datasets: first's episodes, then second's
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from robot_io.datasets import journal
from robot_io.datasets.schema import EpisodeSummary, feature_differences, local_repo_id
from runtime.curation.catalog import EpisodeTable
from runtime.curation.flags import remap, write_flags
from runtime.curation.lerobot_reads import cheap_metadata_reads
from runtime.curation.packing import copy_dataset, needs_packing, packed_copy
from runtime.curation.safe_edit import EditError

EXPORT_SPLIT = "subset"  # split_dataset writes its one split into out/<this>, moved up afterwards
MAX_TASK_CHARS = 500
PACKED_SUFFIX = ".packed"  # the packed copy an edit reads from: `out` + this


def check_episodes(table: EpisodeTable, episodes: list[int]) -> list[int]:
    """`episodes`, sorted and unique, if all are in the table; else an EditError naming the strays."""
    wanted = sorted({int(i) for i in episodes})
    if not wanted:
        raise EditError("no episodes chosen")
    stray = [i for i in wanted if not 0 <= i < len(table.episodes)]
    if stray:
        raise EditError(f"episodes {stray} are not in {table.root.name} (it holds episodes 0..{len(table.episodes) - 1})")
    return wanted


def delete(table: EpisodeTable, episodes: list[int], out: Path) -> None:
    doomed = check_episodes(table, episodes)
    if len(doomed) == len(table.episodes):
        raise EditError(f"refused: deleting {'episode' if len(doomed) == 1 else 'episodes'} {doomed} would leave "
                        f"{table.root.name} with no episodes, and a LeRobot dataset cannot be empty "
                        "(keep at least one, or remove the folder itself)")
    from lerobot.datasets.dataset_tools import delete_episodes

    with _source_for_tools(table.root, out) as source:
        delete_episodes(source, doomed, output_dir=out, repo_id=local_repo_id(out))
    kept = [i for i in range(len(table.episodes)) if i not in set(doomed)]
    _carry_over(out, [table], {old: new for new, old in enumerate(kept)})


def relabel(table: EpisodeTable, episode: int, task: str, out: Path) -> None:
    (episode,) = check_episodes(table, [episode])
    task = task.strip() if isinstance(task, str) else ""
    if not task or len(task) > MAX_TASK_CHARS:
        raise EditError(f"the new task must be 1 to {MAX_TASK_CHARS} characters of text")
    from lerobot.datasets.dataset_tools import modify_tasks

    copy_dataset(table.root, out)
    modify_tasks(_open(out), episode_tasks={episode: task})  # edits the copy in place
    identity = {i: i for i in range(len(table.episodes))}
    _carry_over(out, [table], identity, tasks={episode: task})


def export(table: EpisodeTable, episodes: list[int], out: Path) -> None:
    chosen = check_episodes(table, episodes)
    from lerobot.datasets.dataset_tools import split_dataset

    container = out.with_name(out.name + ".split")
    try:
        with _source_for_tools(table.root, out) as source:
            split_dataset(source, {EXPORT_SPLIT: chosen}, output_dir=container)
        os.rename(container / EXPORT_SPLIT, out)
    finally:
        shutil.rmtree(container, ignore_errors=True)
    _carry_over(out, [table], {old: new for new, old in enumerate(chosen)})


def merge_problems(first: EpisodeTable, second: EpisodeTable) -> list[str]:
    """Why the two datasets cannot be merged (empty: they can)."""
    problems = []
    if first.root == second.root:
        problems.append("a dataset cannot be merged with itself")
    if first.fps != second.fps:
        problems.append(f"fps: {first.root.name} runs at {first.fps}, {second.root.name} at {second.fps}")
    if first.robot_type != second.robot_type:
        problems.append(f"robot_type: {first.root.name} has {first.robot_type!r}, {second.root.name} has {second.robot_type!r}")
    problems += [f"features: {d}" for d in feature_differences(first.features, second.features,
                                                                 f"dataset {first.root.name}", f"dataset {second.root.name}")]
    return problems


def merge(first: EpisodeTable, second: EpisodeTable, out: Path) -> None:
    problems = merge_problems(first, second)
    if problems:
        raise EditError(f"refused: {first.root.name} and {second.root.name} cannot be merged:\n  " + "\n  ".join(problems))
    from lerobot.datasets.dataset_tools import merge_datasets

    merge_datasets([_open(first.root), _open(second.root)], local_repo_id(out), output_dir=out)
    count = len(first.episodes)
    _carry_over(out, [first, second], {i: i for i in range(count + len(second.episodes))})


@contextlib.contextmanager
def _source_for_tools(root: Path, out: Path) -> Iterator[Any]:
    """The dataset at `root` opened for delete_episodes / split_dataset writing to `out`, their
    metadata reads made cheap (runtime/curation/lerobot_reads.py). A dataset with the recorder's
    one-file-per-episode layout is read from a packed copy (runtime/curation/packing.py), removed
    after the block; its name extends `out`'s, so a kill mid-edit leaves it where
    safe_edit.recover removes `out`."""
    packed = out.with_name(out.name + PACKED_SUFFIX) if needs_packing(root) else None
    try:
        if packed is not None:
            packed_copy(root, packed)
        dataset = _open(packed or root)
        with cheap_metadata_reads(dataset):
            yield dataset
    finally:
        if packed is not None:
            shutil.rmtree(packed, ignore_errors=True)


def _open(root: Path):
    os.environ["HF_HUB_OFFLINE"] = "1"  # every file is local; LeRobot must never try the Hub
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(local_repo_id(root), root=root)


def _carry_over(out: Path, sources: list[EpisodeTable], mapping: dict[int, int], tasks: dict[int, str] | None = None) -> None:
    """Flags and journal of the new dataset at `out`. `mapping`: index in the sources, one after
    another, -> index in `out`."""
    combined = [summary for table in sources for summary in table.episodes]
    offsets, flagged = 0, set()
    for table in sources:
        flagged |= {offsets + i for i in table.flagged}
        offsets += len(table.episodes)
    flagged = remap(flagged, mapping)
    if flagged:
        write_flags(out, flagged)
    if all(table.journaled for table in sources):
        summaries = [None] * len(mapping)
        for old, new in mapping.items():
            task = (tasks or {}).get(old, combined[old].task)
            summaries[new] = dataclasses.replace(combined[old], index=new, task=task)
        journal.write_journal(out, [s for s in summaries if isinstance(s, EpisodeSummary)])
