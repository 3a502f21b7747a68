"""One parquet file read cheaply: our recorder writes a data and a metadata file per episode, so
listing or packing a recording reads hundreds of small files, where pyarrow's read_table (which
sets up a dataset discovery for each call) costs more than the rows themselves."""

from __future__ import annotations

from pathlib import Path

from robot_io.datasets.schema import EPISODES_DIR


def read_parquet(path: Path, columns: list[str] | None = None):
    """The file's table (pyarrow.Table), only `columns` when given."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).read(columns=columns)


class UnreadableParquetError(ValueError):
    """A parquet file of a dataset that cannot be read (truncated, not parquet); names the file."""


def read_episode_rows(root: Path) -> list[dict]:
    """The dataset's meta/episodes rows (episode_index, tasks, length), by episode index.
    Raises UnreadableParquetError naming the file (relative to `root`) that cannot be read."""
    rows = []
    for path in sorted((root / EPISODES_DIR).glob("*/*.parquet")):
        try:
            rows += read_parquet(path, ["episode_index", "tasks", "length"]).to_pylist()
        except Exception as err:  # noqa: BLE001 - ArrowInvalid / OSError: truncated or not parquet
            raise UnreadableParquetError(f"{root}: {path.relative_to(root)} is unreadable: {err}") from err
    return sorted(rows, key=lambda row: row["episode_index"])
