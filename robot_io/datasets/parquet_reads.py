"""One parquet file read cheaply: our recorder writes a data and a metadata file per episode, so
listing or packing a recording reads hundreds of small files, where pyarrow's read_table (which
sets up a dataset discovery for each call) costs more than the rows themselves."""

from __future__ import annotations

from pathlib import Path


def read_parquet(path: Path, columns: list[str] | None = None):
    """The file's table (pyarrow.Table), only `columns` when given."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).read(columns=columns)
