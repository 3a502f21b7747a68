"""The folders whose LeRobot datasets the page may read, curate or train on (--replay-root), and
how datasets are found in them: open-loop replay, curation and training from the browser share it.

A requested folder must lie inside one of the roots, so the page cannot make the console read or
write arbitrary paths. Folders whose name starts with "." are never datasets here: curation keeps
its unfinished copies and backups in such folders (runtime/curation/safe_edit.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from robot_io.datasets.reader import DatasetReadError, DatasetSummary, read_summary
from robot_io.datasets.schema import INFO_PATH

SCAN_DEPTH = 3  # folder levels below a root searched for datasets (root/owner/name/meta/info.json)
MAX_LISTED = 200  # datasets listed at most, so a huge folder cannot stall the page


class OutsideRoots(ValueError):
    """A folder the page asked for that is not a dataset folder inside the configured roots."""


@dataclass(frozen=True)
class DatasetListing:
    path: Path
    summary: DatasetSummary | None  # None when unreadable
    problem: str  # why it cannot be read ("" when it is readable)


def resolve_roots(roots: tuple[Path, ...] | list[Path]) -> tuple[Path, ...]:
    resolved = tuple(Path(r).expanduser().resolve() for r in roots)
    if not resolved:
        raise ValueError("at least one dataset root folder is needed (--replay-root)")
    return resolved


def inside_roots(folder: str | Path, roots: tuple[Path, ...]) -> Path:
    """`folder`, resolved (symlinks and '..' followed), if it lies inside one of `roots` and no
    part of it below the root is hidden; else OutsideRoots naming the roots."""
    path = Path(folder).expanduser().resolve()
    root = next((r for r in roots if path.is_relative_to(r)), None)
    if root is None:
        raise OutsideRoots(f"{folder} is outside the dataset roots {[str(r) for r in roots]} "
                           "(add a folder with --replay-root)")
    if any(part.startswith(".") for part in path.relative_to(root).parts):
        raise OutsideRoots(f"{folder} is a hidden folder (a curation backup or unfinished copy), not a dataset")
    return path


def list_datasets(roots: tuple[Path, ...]) -> list[DatasetListing]:
    """Every dataset folder under the roots, readable or not (then with the reason)."""
    listings = []
    for path in dataset_folders(roots):
        try:
            listings.append(DatasetListing(path, read_summary(path), ""))
        except DatasetReadError as err:
            listings.append(DatasetListing(path, None, str(err)))
    return listings


def dataset_label(path: Path, roots: tuple[Path, ...]) -> str:
    """The dataset as the page names it: its root's folder name, then the path inside."""
    for root in roots:
        if path.is_relative_to(root):
            inside = path.relative_to(root)
            return f"{root.name}/{inside}" if str(inside) != "." else root.name
    return str(path)


def dataset_folders(roots: tuple[Path, ...]) -> Iterator[Path]:
    """Folders with meta/info.json, at most SCAN_DEPTH levels below each root, not inside a
    dataset, not hidden; MAX_LISTED at most."""
    found = 0
    for folder, is_dataset in _walk(roots):
        if is_dataset:
            found += 1
            yield folder
            if found == MAX_LISTED:
                return


def container_folders(roots: tuple[Path, ...]) -> Iterator[Path]:
    """The other folders the same search visits: the roots and the folders that hold datasets."""
    return (folder for folder, is_dataset in _walk(roots) if not is_dataset)


def _walk(roots: tuple[Path, ...]) -> Iterator[tuple[Path, bool]]:
    """(folder, holds a dataset) breadth first below each root, hidden folders and datasets' insides skipped."""
    seen: set[Path] = set()
    frontier = [(root, 0) for root in roots if root.is_dir()]
    while frontier:
        folder, depth = frontier.pop(0)
        if folder in seen:
            continue
        seen.add(folder)
        if (folder / INFO_PATH).is_file():
            yield folder, True
            continue
        yield folder, False
        if depth == SCAN_DEPTH:
            continue
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            continue  # an unreadable folder lists nothing
        frontier.extend((child, depth + 1) for child in children)
