"""LeRobot 0.6.1's dataset tools, with their metadata look-ups made cheap while one edit runs.

`delete_episodes` and `split_dataset` (lerobot/datasets/dataset_tools.py) look episodes up in
ways that grow with the square of the episode count:

- `_copy_and_reindex_videos` scans every episode's row of `meta.episodes` for every video file,
  and `meta.episodes` is a Hugging Face Dataset whose row access decodes a row each time;
- `_copy_and_reindex_episodes_metadata` calls `_load_episode_with_stats` once per episode, which
  reads the whole meta/episodes parquet file holding that episode again.

`cheap_metadata_reads` gives the tools the same rows from memory for the duration of the edit:
`meta.episodes` as a list of row dicts (the tools only index it by episode and read keys), and
each meta/episodes file read once. The tools still do all the work and write what they would.
The edits run one at a time (runtime/curation/service.py's edit lock), so swapping the module's
function for the block is safe.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def cheap_metadata_reads(dataset: Any) -> Iterator[None]:
    """Within the block, LeRobot's dataset tools read `dataset`'s episode metadata from memory."""
    import pandas as pd
    from lerobot.datasets import dataset_tools
    from lerobot.datasets.utils import DEFAULT_EPISODES_PATH

    files: dict[Path, tuple[pd.DataFrame, dict[int, int]]] = {}

    def load_episode_with_stats(src_dataset: Any, episode_idx: int) -> dict:
        """`dataset_tools._load_episode_with_stats`, each meta/episodes file read once."""
        row = src_dataset.meta.episodes[episode_idx]
        path = src_dataset.root / DEFAULT_EPISODES_PATH.format(
            chunk_index=row["meta/episodes/chunk_index"], file_index=row["meta/episodes/file_index"]
        )
        if path not in files:
            table = pd.read_parquet(path)
            files[path] = table, {int(index): position for position, index in enumerate(table["episode_index"])}
        table, positions = files[path]
        return table.iloc[positions[episode_idx]].to_dict()

    original_rows, original_loader = dataset.meta.episodes, dataset_tools._load_episode_with_stats
    dataset.meta.episodes = original_rows.to_list()
    dataset_tools._load_episode_with_stats = load_episode_with_stats
    try:
        yield
    finally:
        dataset_tools._load_episode_with_stats = original_loader
        dataset.meta.episodes = original_rows
