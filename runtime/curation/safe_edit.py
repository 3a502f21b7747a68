"""Edits that cannot lose a dataset: build the result beside it, then publish it by renaming.

Every curation edit writes a complete new dataset into a hidden staging folder next to its
target (`.<name>.staging-<stamp>`); dataset discovery never lists hidden folders, so a
half-written copy is never taken for a dataset. Publishing:

- a new dataset (export, merge): one rename of the staging folder to the free target name;
- a replacement (delete, relabel, undo): a commit record `.<name>.commit.json` is written
  atomically, then the old folder is renamed to `.<name>.backup-<stamp>` and the staging folder
  to the target, then the record is removed. A kill between the two renames leaves the target
  missing and the record naming both folders: `recover` finishes the commit.

`recover` also removes staging folders no commit record names: a kill while building left them
and the original was never touched. Only the newest BACKUPS_KEPT backups of a dataset are kept.
Renames stay inside one folder, so they are atomic on one filesystem.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

logger = logging.getLogger(__name__)

BACKUPS_KEPT = 3  # backups kept per dataset; "Undo" restores the newest
STAGING_MARK = ".staging-"
BACKUP_MARK = ".backup-"
COMMIT_SUFFIX = ".commit.json"


class EditError(ValueError):
    """An edit that cannot be done; the message says why. Nothing was changed."""


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 1_000_000_000:09d}"


def staging_folder(target: Path) -> Path:
    """A fresh hidden folder name beside `target` to build its next version in (not created)."""
    return target.with_name(f".{target.name}{STAGING_MARK}{_stamp()}")


def backups(target: Path) -> list[Path]:
    """The backups of `target`, newest first."""
    prefix = f".{target.name}{BACKUP_MARK}"
    found = [p for p in target.parent.glob(f"{prefix}*") if p.is_dir()]
    return sorted(found, key=lambda p: p.name, reverse=True)


def publish_new(staging: Path, target: Path) -> None:
    """Make the finished `staging` dataset appear as `target`, which must not exist."""
    if target.exists():
        raise EditError(f"{target} already exists: choose another name")
    os.rename(staging, target)


def replace(staging: Path, target: Path) -> Path:
    """Make the finished `staging` dataset the new `target`; the old one becomes a backup, returned."""
    backup = target.with_name(f".{target.name}{BACKUP_MARK}{_stamp()}")
    record = _commit_record(target)
    temporary = record.with_name(record.name + ".partial")
    temporary.write_text(json.dumps({"staging": staging.name, "backup": backup.name}))
    os.replace(temporary, record)
    os.rename(target, backup)
    os.rename(staging, target)
    record.unlink()
    _prune_backups(target)
    return backup


def restore_latest_backup(target: Path) -> Path:
    """Undo: the newest backup becomes `target` again, and the current one a backup (returned)."""
    found = backups(target)
    if not found:
        raise EditError(f"{target.name} has no backup to restore")
    return replace(found[0], target)  # the backup plays the staging folder: never removed by `recover`


def recover(parent: Path) -> list[str]:
    """Finish or clean up what killed edits left in `parent`; returns what was done, in words."""
    done = []
    records = {}
    for record in parent.glob(f".*{COMMIT_SUFFIX}"):
        try:
            records[record] = json.loads(record.read_text())
        except (OSError, ValueError):  # written atomically: unreadable means someone else's file
            continue
    for record, names in records.items():
        target = parent / record.name[1 : -len(COMMIT_SUFFIX)]
        staging, backup = parent / names["staging"], parent / names["backup"]
        if staging.is_dir():
            if target.exists() and not backup.exists():
                os.rename(target, backup)
            if not target.exists():
                os.rename(staging, target)
                done.append(f"finished an interrupted edit of {target.name} (the old version is kept as {backup.name})")
        record.unlink()
    named = {names["staging"] for names in records.values()}
    for staging in parent.glob(f".*{STAGING_MARK}*"):
        if staging.is_dir() and staging.name not in named:
            shutil.rmtree(staging, ignore_errors=True)
            done.append(f"removed {staging.name}, left by an interrupted edit (the dataset itself was not changed)")
    for line in done:
        logger.warning("%s: %s", parent, line)
    return done


def _commit_record(target: Path) -> Path:
    return target.with_name(f".{target.name}{COMMIT_SUFFIX}")


def _prune_backups(target: Path) -> None:
    for old in backups(target)[BACKUPS_KEPT:]:
        shutil.rmtree(old, ignore_errors=True)
