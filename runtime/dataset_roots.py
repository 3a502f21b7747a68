"""Which LeRobot datasets the page may name: folders found under configured roots, and the check that
a requested folder lies inside one of them, so the page cannot make the console read arbitrary paths.
Open-loop replay and training from the browser share it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from robot_io.datasets.reader import DatasetReadError, DatasetSummary, read_summary
from robot_io.datasets.schema import INFO_PATH

SCAN_DEPTH = 3  # folder levels below a root searched for datasets (root/owner/name/meta/info.json)
MAX_LISTED = 200  # datasets listed at most, so a huge folder cannot stall the page


class OutsideRoots(ValueError):
    """A requested folder lies outside every root."""


@dataclass(frozen=True)
class DatasetListing:
    path: Path
    summary: DatasetSummary | None  # None when unreadable
    problem: str  # why it cannot be read ("" when it is readable)


def resolve_roots(roots) -> tuple[Path, ...]:
    return tuple(Path(r).expanduser().resolve() for r in roots)


def list_datasets(roots: tuple[Path, ...]) -> list[DatasetListing]:
    """Every folder holding meta/info.json under the roots, readable or not (then with the reason)."""
    listings = []
    for path in dataset_folders(roots):
        try:
            listings.append(DatasetListing(path, read_summary(path), ""))
        except DatasetReadError as err:
            listings.append(DatasetListing(path, None, str(err)))
        if len(listings) == MAX_LISTED:
            break
    return listings


def inside_roots(folder: str | Path, roots: tuple[Path, ...]) -> Path:
    """`folder`, resolved, if it lies inside a root; else OutsideRoots naming the roots."""
    path = Path(folder).expanduser().resolve()
    if not any(path.is_relative_to(root) for root in roots):
        raise OutsideRoots(f"{folder} is outside the dataset roots {[str(r) for r in roots]}")
    return path


def dataset_label(path: Path, roots: tuple[Path, ...]) -> str:
    """The dataset as the page names it: its root's folder name, then the path inside."""
    for root in roots:
        if path.is_relative_to(root):
            inside = path.relative_to(root)
            return f"{root.name}/{inside}" if str(inside) != "." else root.name
    return str(path)


def dataset_folders(roots: tuple[Path, ...]) -> Iterator[Path]:
    """Folders with meta/info.json, at most SCAN_DEPTH levels below each root, not inside a dataset."""
    seen: set[Path] = set()
    frontier = [(root, 0) for root in roots if root.is_dir()]
    while frontier:
        folder, depth = frontier.pop(0)
        if folder in seen:
            continue
        seen.add(folder)
        if (folder / INFO_PATH).is_file():
            yield folder
            continue
        if depth == SCAN_DEPTH:
            continue
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            continue  # an unreadable folder lists nothing
        frontier.extend((child, depth + 1) for child in children)
