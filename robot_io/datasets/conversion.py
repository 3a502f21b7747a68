"""LeRobot v2.1 -> v3.0, into a cache folder, with LeRobot 0.6.1's own converter; the source is never written.

LeRobot's `convert_dataset` works in place (it moves the v2.1 folder aside and the new one into
its place), which a read-only or shared dataset must not suffer. Its steps, though, each read
from one root and write to another, so they are called here with the source as the root and a
fresh folder in the cache as the target. The result is renamed into place only once complete
(a folder in the cache is always a whole dataset), and reused while the source is unchanged:
the cache folder's name carries a fingerprint of the source's path, file sizes and times.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

V21 = "v2.1"
FINGERPRINT_CHARS = 12  # of the sha1: enough to tell versions of one dataset apart
PARTIAL_SUFFIX = ".partial"  # a conversion in progress (or killed mid-way): never read, replaced


class ConversionError(RuntimeError):
    """The v2.1 dataset could not be converted; the message names the dataset and the cause."""


def default_cache_root() -> Path:
    """$XDG_CACHE_HOME/foresight_console/lerobot_v30 (~/.cache/... without XDG_CACHE_HOME)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "foresight_console" / "lerobot_v30"


def converted_path(source: Path, cache_root: Path) -> Path:
    """Where the v3.0 copy of `source` lives in `cache_root`, for the source as it is now."""
    source = source.resolve()
    digest = hashlib.sha1(str(source).encode())
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.relative_to(source)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return Path(cache_root) / f"{source.name}-{digest.hexdigest()[:FINGERPRINT_CHARS]}"


def convert_v21(source: Path, cache_root: Path) -> Path:
    """The v3.0 copy of the v2.1 dataset at `source`: converted now, or found from an earlier run."""
    target = converted_path(source, cache_root)
    if (target / "meta" / "info.json").is_file():
        return target
    from lerobot.datasets.utils import DEFAULT_DATA_FILE_SIZE_IN_MB, DEFAULT_VIDEO_FILE_SIZE_IN_MB
    from lerobot.scripts import convert_dataset_v21_to_v30 as converter

    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    root = source.resolve()
    try:
        converter.validate_local_dataset_version(root)
        # The body of converter.convert_dataset, minus its moves of the source folder.
        converter.convert_info(root, partial, DEFAULT_DATA_FILE_SIZE_IN_MB, DEFAULT_VIDEO_FILE_SIZE_IN_MB)
        converter.convert_tasks(root, partial)
        episodes = converter.convert_data(root, partial, DEFAULT_DATA_FILE_SIZE_IN_MB)
        videos = converter.convert_videos(root, partial, DEFAULT_VIDEO_FILE_SIZE_IN_MB)
        converter.convert_episodes_metadata(root, partial, episodes, videos)
    except Exception as err:
        shutil.rmtree(partial, ignore_errors=True)
        raise ConversionError(
            f"cannot convert the {V21} dataset at {source} to v3.0 with LeRobot's converter: {type(err).__name__}: {err}"
        ) from err
    shutil.rmtree(target, ignore_errors=True)  # a folder without info.json is a leftover
    partial.rename(target)
    return target
