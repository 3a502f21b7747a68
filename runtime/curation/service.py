"""The console's dataset desk: list the episodes of any dataset under the dataset roots (and of
the one the session records into), show their pictures, flag, delete, relabel, export, merge, undo.

Only folders inside the configured roots are read or written (runtime/dataset_roots.py). One edit
runs at a time. Edits never change a dataset in place: runtime/curation/safe_edit.py builds the
result beside it and swaps it in, keeping the old version as a backup that `undo` restores. The
session's own dataset is edited only between episodes, with the recording writer letting go of
it for the duration (RecordingWorker.released); while an episode is being recorded, edits of it
are refused with that reason. Listing and pictures read only what the recorder has sealed.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from runtime.control.recording import DatasetBusy
from runtime.curation import operations, safe_edit
from runtime.curation.catalog import CatalogError, EpisodeTable, episode_table
from runtime.curation.flags import read_flags, write_flags
from runtime.curation.media import EpisodeMedia
from runtime.curation.safe_edit import EditError
from runtime.dataset_roots import container_folders, dataset_folders, inside_roots, resolve_roots

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # a new dataset's folder name: no paths, not hidden


class EditBusy(EditError):
    """An edit was asked for while another runs."""


class LiveDataset(Protocol):
    """The dataset the session records into (runtime/control/recording.py's RecordingWorker)."""

    @property
    def root(self) -> Path: ...

    @property
    def active(self) -> bool: ...

    def released(self) -> contextlib.AbstractContextManager[None]: ...


@dataclass
class CurationConfig:
    roots: tuple[Path, ...]

    def __post_init__(self) -> None:
        self.roots = resolve_roots(self.roots)


@dataclass(frozen=True)
class DatasetEntry:
    path: Path
    episodes: int  # -1 when unreadable
    problem: str  # why it cannot be curated ("" when it can)
    live: bool  # the session records into it
    backups: int  # earlier versions kept by edits


@dataclass(frozen=True)
class EditResult:
    number: int  # counts edits submitted since the start, so a page can tell a new result
    ok: bool
    message: str
    seconds: float  # how long the edit took


class CurationService:
    def __init__(self, config: CurationConfig, live: LiveDataset | None = None) -> None:
        self.config = config
        self._live = live
        self._live_root = live.root.expanduser().resolve() if live is not None else None
        self.media = EpisodeMedia()
        self._edit_lock = threading.Lock()
        self._editing = ""
        self._submitted = 0
        self.last: EditResult | None = None  # the latest submitted edit's outcome
        self.recovered = [line for folder in self._parents() for line in safe_edit.recover(folder)]

    # --- reading ------------------------------------------------------------------------------
    def datasets(self) -> list[DatasetEntry]:
        """Every dataset under the roots, and the session's own (even before its first episode)."""
        paths = list(dataset_folders(self.config.roots))
        if self._live_root is not None and self._live_root not in paths:
            paths.insert(0, self._live_root)
        entries = []
        for path in paths:
            try:
                count, problem = len(episode_table(path).episodes), ""
            except CatalogError as err:
                count, problem = (0, "no episodes recorded yet") if not path.exists() else (-1, str(err))
            entries.append(DatasetEntry(path, count, problem, path == self._live_root, len(safe_edit.backups(path))))
        return entries

    def table(self, dataset: str | Path) -> EpisodeTable:
        """The episode list of a dataset; OutsideRoots or CatalogError (both ValueErrors) when it cannot be read."""
        path = self.allowed(dataset)
        if path == self._live_root and not path.exists():
            raise CatalogError(f"{path.name}: no episodes recorded yet")
        return episode_table(path)

    def is_live(self, dataset: str | Path) -> bool:
        return self.allowed(dataset) == self._live_root

    @property
    def recording(self) -> bool:
        """An episode is being recorded into the session's dataset now."""
        return self._live is not None and self._live.active

    @property
    def editing(self) -> str:
        """The edit running now, in words ("" when none)."""
        return self._editing

    def thumbnail(self, dataset: str | Path, episode: int) -> np.ndarray:
        return self.media.thumbnail(self.table(dataset), episode)

    def frame(self, dataset: str | Path, episode: int, camera: str, position: int) -> np.ndarray:
        return self.media.frame(self.table(dataset), episode, camera, position)

    def allowed(self, dataset: str | Path) -> Path:
        """The dataset folder, resolved, if it lies inside the roots (or is the session's own)."""
        path = Path(dataset).expanduser().resolve()
        if path == self._live_root:
            return path
        return inside_roots(path, self.config.roots)

    # --- edits --------------------------------------------------------------------------------
    def flag(self, dataset: str | Path, episode: int, flagged: bool) -> str:
        """Flag or unflag an episode (a note in meta/curation_flags.json; the recorder never touches it)."""
        table = self.table(dataset)
        (episode,) = operations.check_episodes(table, [episode])
        marks = read_flags(table.root)
        marks = marks | {episode} if flagged else marks - {episode}
        write_flags(table.root, marks)
        return f"Episode {episode} {'flagged' if flagged else 'unflagged'}."

    def delete(self, dataset: str | Path, episodes: list[int]) -> str:
        def edit(table: EpisodeTable, out: Path) -> str:
            operations.delete(table, episodes, out)
            gone = operations.check_episodes(table, episodes)
            return f"Deleted {_episodes(gone)}: {len(table.episodes) - len(gone)} left"

        return self._replace(dataset, f"deleting {_episodes(episodes)}", edit)

    def relabel(self, dataset: str | Path, episode: int, task: str) -> str:
        def edit(table: EpisodeTable, out: Path) -> str:
            operations.relabel(table, episode, task, out)
            return f"Episode {episode}'s task is now {task.strip()!r}"

        return self._replace(dataset, f"relabelling episode {episode}", edit)

    def undo(self, dataset: str | Path) -> str:
        with self._exclusive(f"restoring the previous version of {Path(dataset).name}"):
            path = self._in_place_target(dataset)
            with self._released(path):
                backup = safe_edit.restore_latest_backup(path)
            return f"Restored the previous version of {path.name}; the version before the undo is kept as {backup.name}."

    def export(self, dataset: str | Path, episodes: list[int], name: str) -> str:
        with self._exclusive(f"exporting {_episodes(episodes)}"):
            source = self.allowed(dataset)
            target = self._new_dataset(source, name)
            with self._released(source):
                table = self.table(source)
                self._build(lambda out: operations.export(table, episodes, out), target)
            return f"Exported {_episodes(operations.check_episodes(table, episodes))} to {target.name}."

    def merge(self, dataset: str | Path, other: str | Path, name: str) -> str:
        with self._exclusive("merging datasets"):
            first, second = self.allowed(dataset), self.allowed(other)
            if first == second:
                raise EditError(f"refused: {first.name} cannot be merged with itself")
            target = self._new_dataset(first, name)
            with self._released(first), self._released(second):
                tables = self.table(first), self.table(second)
                self._build(lambda out: operations.merge(*tables, out), target)
            count = sum(len(t.episodes) for t in tables)
            return f"Merged {first.name} and {second.name} into {target.name} ({count} episodes)."

    def submit(self, edit: Callable[[], str]) -> int:
        """Run an edit (a bound method of this service with its arguments, e.g. functools.partial)
        on its own thread; its message or error becomes `last`. Returns its number; EditBusy when
        an edit runs. A console killed meanwhile leaves a staging folder, which the next start removes."""
        if self._edit_lock.locked():
            raise EditBusy(f"another edit is running ({self._editing}): try again when it is done")
        self._submitted += 1
        number = self._submitted
        threading.Thread(target=self._run, args=(number, edit), name="curation-edit", daemon=True).start()
        return number

    def _run(self, number: int, edit: Callable[[], str]) -> None:
        started = time.monotonic()
        try:
            ok, message = True, edit()
        except ValueError as err:  # EditError, OutsideRoots, CatalogError: the reason, for the page
            ok, message = False, str(err)
        except Exception as err:  # noqa: BLE001 - whatever went wrong must reach the page
            ok, message = False, f"{type(err).__name__}: {err}"
        self.last = EditResult(number, ok, message, time.monotonic() - started)

    # --- machinery ----------------------------------------------------------------------------
    def _replace(self, dataset: str | Path, what: str, edit: Callable[[EpisodeTable, Path], str]) -> str:
        """Run `edit(table, out)` into a staging folder, then swap the result in (the old kept as a backup)."""
        with self._exclusive(f"{what} of {Path(dataset).name}"):
            path = self._in_place_target(dataset)
            with self._released(path):
                table = self.table(path)
                staging = safe_edit.staging_folder(path)
                message = self._guarded(lambda: edit(table, staging), staging)
                backup = safe_edit.replace(staging, path)
            return f"{message}. The previous version is kept as {backup.name} (Undo restores it)."

    def _build(self, write: Callable[[Path], None], target: Path) -> None:
        """Write a new dataset into a staging folder, then give it its name."""
        staging = safe_edit.staging_folder(target)
        self._guarded(lambda: write(staging), staging)
        safe_edit.publish_new(staging, target)

    @staticmethod
    def _guarded(write: Callable[[], str | None], staging: Path) -> str | None:
        """`write()`; on any failure the staging folder is removed and the error is an EditError."""
        try:
            return write()
        except EditError:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        except Exception as err:  # noqa: BLE001 - LeRobot's tools and the disk fail in many ways; all are this edit's
            shutil.rmtree(staging, ignore_errors=True)
            raise EditError(f"the edit failed and nothing was changed: {type(err).__name__}: {err}") from err

    def _in_place_target(self, dataset: str | Path) -> Path:
        path = self.allowed(dataset)
        if path in self.config.roots:
            raise EditError(f"{path} is a dataset root itself: its backup would land outside the roots; export it instead")
        safe_edit.recover(path.parent)  # an edit killed mid-commit is finished before the next starts
        if not path.is_dir():
            raise EditError(f"{path.name} does not exist")
        return path

    def _new_dataset(self, source: Path, name: str) -> Path:
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
            raise EditError(f"{name!r} is not a dataset name: use letters, digits, '_', '-', '.', starting with a "
                            "letter or digit (it becomes a folder beside the source)")
        target = source.parent / name  # the source's folder was checked; the name cannot leave it
        if target.exists():
            raise EditError(f"{target.name} already exists beside {source.name}: choose another name")
        return target

    @contextlib.contextmanager
    def _exclusive(self, what: str) -> Iterator[None]:
        if not self._edit_lock.acquire(blocking=False):
            raise EditBusy(f"another edit is running ({self._editing}): try again when it is done")
        self._editing = what
        try:
            yield
        finally:
            self._editing = ""
            self._edit_lock.release()

    @contextlib.contextmanager
    def _released(self, path: Path) -> Iterator[None]:
        """The session's recorder lets go of `path` for the block, when `path` is its dataset."""
        with contextlib.ExitStack() as stack:
            if self._live is not None and path == self._live_root:
                try:
                    stack.enter_context(self._live.released())
                except DatasetBusy as err:
                    raise EditError(f"refused: {err}") from err
            yield

    def _parents(self) -> list[Path]:
        folders = list(container_folders(self.config.roots))
        if self._live_root is not None and self._live_root.parent not in folders:
            folders.append(self._live_root.parent)
        return [f for f in folders if f.is_dir()]


def _episodes(indices: list[int]) -> str:
    indices = sorted(set(indices))
    return f"episode {indices[0]}" if len(indices) == 1 else f"episodes {indices}"
