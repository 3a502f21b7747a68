"""A recording's parquet files packed into LeRobot's many-episodes-per-file layout, for editing.

The recorder (robot_io/datasets/recorder.py) seals every episode in files of its own, so a kill
cannot damage an earlier episode. LeRobot 0.6.1's editing tools pay per file: loading the
metadata of a dataset with one parquet file per episode, and rewriting every data file on a
delete, grow with the number of files. So before such an edit the dataset's data and
episode-metadata parquet files are packed into a copy, `packed_copy`, laid out as LeRobot's own
writer does (episodes appended to one file until DEFAULT_DATA_FILE_SIZE_IN_MB, chunk/file
indices as `update_chunk_file_indices` counts them); its edit then writes a packed result.
Videos keep one file per episode and camera, hard-linked: LeRobot copies a video file that holds
only kept episodes and re-encodes one that mixes kept and deleted ones, so small files keep a
delete from re-encoding anything.

Rows and values are copied unchanged; only the file references in meta/episodes change
(`data/*`, `meta/episodes/*`). The frame `index` column is global, so `dataset_from_index` /
`dataset_to_index` stay valid.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from robot_io.datasets.journal import read_info
from robot_io.datasets.parquet_reads import read_parquet
from robot_io.datasets.schema import EPISODES_DIR

# A data file smaller than this on disk is taken for one LeRobot would have appended to; more
# than one of them means the dataset is worth packing. (A tenth of LeRobot's limit, which counts
# uncompressed bytes: a packed file compresses less than tenfold.)
SMALL_FILE_FRACTION = 0.1


def copy_dataset(source: Path, out: Path, leave_out: Iterable[str] = ()) -> None:
    """A copy of `source` at `out` LeRobot may edit in place: parquet and JSON files copied, videos
    hard-linked (no tool rewrites an mp4 in place; a filesystem without hard links gets copies).
    leave_out: folders, relative to `source`, not copied."""
    skipped = {source / folder for folder in leave_out}

    def link_or_copy(src: str, dst: str) -> None:
        if src.endswith(".mp4"):
            try:
                os.link(src, dst)
                return
            except OSError:
                pass
        shutil.copy2(src, dst)

    def ignore(folder: str, names: list[str]) -> list[str]:
        ignored = shutil.ignore_patterns("tmp*", "*.partial")(folder, names)
        return [*ignored, *(name for name in names if Path(folder) / name in skipped)]

    shutil.copytree(source, out, copy_function=link_or_copy, ignore=ignore)


def needs_packing(root: Path) -> bool:
    """More than one small data file: the dataset has the recorder's one-file-per-episode layout
    (in whole or in part, after more episodes were recorded into a packed one)."""
    from lerobot.datasets.utils import DEFAULT_DATA_FILE_SIZE_IN_MB

    small = DEFAULT_DATA_FILE_SIZE_IN_MB * SMALL_FILE_FRACTION * 1024**2
    return sum(1 for path in (root / "data").glob("*/*.parquet") if path.stat().st_size < small) > 1


def packed_copy(source: Path, out: Path) -> None:
    """Write `source` to the new folder `out` with its data and episode metadata packed."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from lerobot.datasets.utils import DEFAULT_CHUNK_SIZE, DEFAULT_DATA_FILE_SIZE_IN_MB, DEFAULT_EPISODES_PATH
    from lerobot.datasets.utils import update_chunk_file_indices

    info = read_info(source)
    episode_files = sorted((source / EPISODES_DIR).glob("*/*.parquet"))
    episodes = pa.concat_tables([read_parquet(path) for path in episode_files], promote_options="default")
    episodes = episodes.sort_by("episode_index")
    rows = episodes.select(["episode_index", "data/chunk_index", "data/file_index"]).to_pylist()

    copy_dataset(source, out, leave_out=("data", EPISODES_DIR))
    source_key, table = None, None  # the source data file being read: episodes come file by file
    chunk, file, group, group_bytes = 0, 0, [], 0
    data_chunk, data_file = [], []
    limit = DEFAULT_DATA_FILE_SIZE_IN_MB * 1024**2
    for row in rows:
        key = (row["data/chunk_index"], row["data/file_index"])
        if key != source_key:
            source_key, table = key, read_parquet(source / info["data_path"].format(chunk_index=key[0], file_index=key[1]))
        frames = table.filter(pc.equal(table["episode_index"], row["episode_index"]))
        if group and group_bytes + frames.nbytes > limit:
            _write(pa.concat_tables(group), out / info["data_path"].format(chunk_index=chunk, file_index=file))
            chunk, file = update_chunk_file_indices(chunk, file, DEFAULT_CHUNK_SIZE)
            group, group_bytes = [], 0
        group.append(frames)
        group_bytes += frames.nbytes
        data_chunk.append(chunk)
        data_file.append(file)
    _write(pa.concat_tables(group), out / info["data_path"].format(chunk_index=chunk, file_index=file))

    references = {
        "data/chunk_index": data_chunk,
        "data/file_index": data_file,
        "meta/episodes/chunk_index": [0] * len(rows),
        "meta/episodes/file_index": [0] * len(rows),
    }
    for name, values in references.items():
        position = episodes.schema.get_field_index(name)
        episodes = episodes.set_column(position, name, pa.array(values, episodes.schema.field(name).type))
    _write(episodes, out / DEFAULT_EPISODES_PATH.format(chunk_index=0, file_index=0))


def _write(table, path: Path) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="snappy")
