"""Pictures of saved episodes for the curation list and player: a thumbnail per episode, frames
in batches, decoded with LeRobot's own `decode_video_frames` at the timestamps LeRobot uses.

Where an episode's video lies comes from meta/episodes, read file by file and cached per file
(size and time), so a recorder adding files re-reads only the new ones. A file that cannot be read
is skipped: it is the one the recorder is writing, whose episode the journal does not list yet.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robot_io.datasets.parquet_reads import read_parquet
from robot_io.datasets.reader import DECODE_BATCH, TIMESTAMP_TOLERANCE_S
from robot_io.datasets.schema import EPISODES_DIR, IMAGE_PREFIX
from runtime.curation.catalog import EpisodeTable

CACHED_BATCHES = 64  # decoded frame batches kept for the player and thumbnails (small frames: a few MB)


class MediaError(ValueError):
    """An episode's pictures cannot be shown; the message says why."""


@dataclass(frozen=True)
class VideoSpan:
    path: Path
    start_s: float  # the episode's first frame in that file


class EpisodeMedia:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[Path, tuple[tuple[int, int], list[dict]]] = {}  # meta/episodes file -> (stat, rows)
        self._batches: OrderedDict[tuple, list[np.ndarray]] = OrderedDict()

    def thumbnail(self, table: EpisodeTable, episode: int) -> np.ndarray:
        """uint8 (H, W, 3): the middle frame of the episode's first camera."""
        if not table.cameras:
            raise MediaError(f"{table.root} has no camera videos")
        frames = self._summary(table, episode).frames
        return self.frame(table, episode, table.cameras[0], frames // 2)

    def frame(self, table: EpisodeTable, episode: int, camera: str, position: int) -> np.ndarray:
        """uint8 (H, W, 3): frame `position` of `camera` in the episode (decoded with its batch)."""
        summary = self._summary(table, episode)
        if camera not in table.cameras:
            raise MediaError(f"no camera {camera!r} in {table.root.name}; it has {list(table.cameras)}")
        if not 0 <= position < summary.frames:
            raise MediaError(f"episode {episode} has frames 0..{summary.frames - 1}, not {position}")
        span = self._span(table, episode, camera)
        first = position - position % DECODE_BATCH
        key = (span.path, span.path.stat().st_mtime_ns, span.start_s, first)
        with self._lock:
            batch = self._batches.get(key)
            if batch is not None:
                self._batches.move_to_end(key)
        if batch is None:
            batch = self._decode(span, table.fps, first, min(DECODE_BATCH, summary.frames - first))
            with self._lock:
                self._batches[key] = batch
                while len(self._batches) > CACHED_BATCHES:
                    self._batches.popitem(last=False)
        return batch[position - first]

    def _summary(self, table: EpisodeTable, episode: int):
        if not 0 <= episode < len(table.episodes):
            raise MediaError(f"episode {episode} is not in {table.root.name} (it holds episodes 0..{len(table.episodes) - 1})")
        return table.episodes[episode]

    def _span(self, table: EpisodeTable, episode: int, camera: str) -> VideoSpan:
        key = IMAGE_PREFIX + camera
        row = self._episode_rows(table.root, key).get(episode)
        if row is None:
            raise MediaError(f"{table.root.name}: meta/episodes has no readable row for episode {episode}")
        path = table.root / table.video_path.format(video_key=key, chunk_index=row["chunk"], file_index=row["file"])
        if not path.is_file():
            raise MediaError(f"{table.root.name}: the video of {camera!r} for episode {episode} ({path.name}) is missing")
        return VideoSpan(path, float(row["start"]))

    def _episode_rows(self, root: Path, video_key: str) -> dict[int, dict]:
        columns = {"chunk": f"videos/{video_key}/chunk_index", "file": f"videos/{video_key}/file_index",
                   "start": f"videos/{video_key}/from_timestamp"}
        rows: dict[int, dict] = {}
        for path in sorted((root / EPISODES_DIR).glob("*/*.parquet")):
            try:
                stat = path.stat()
            except OSError:
                continue
            signature = (stat.st_mtime_ns, stat.st_size)
            cache_key = (path, video_key)
            with self._lock:
                cached = self._rows.get(cache_key)
            if cached is None or cached[0] != signature:
                try:
                    table = read_parquet(path, ["episode_index", *columns.values()]).to_pylist()
                except Exception:  # noqa: BLE001 - being written by the recorder, or not a parquet file
                    continue
                cached = (signature, [{"episode": r["episode_index"], **{k: r[c] for k, c in columns.items()}} for r in table])
                with self._lock:
                    self._rows[cache_key] = cached
            rows.update({r["episode"]: r for r in cached[1]})
        return rows

    @staticmethod
    def _decode(span: VideoSpan, fps: int, first: int, count: int) -> list[np.ndarray]:
        from lerobot.datasets.video_utils import decode_video_frames

        timestamps = [span.start_s + (first + i) / fps for i in range(count)]
        try:
            batch = decode_video_frames(span.path, timestamps, TIMESTAMP_TOLERANCE_S, return_uint8=True)  # (N, 3, H, W)
        except Exception as err:  # noqa: BLE001 - a damaged or short video: name it
            raise MediaError(f"cannot decode {span.path.name} at {timestamps[0]:.3f}-{timestamps[-1]:.3f} s: "
                             f"{type(err).__name__}: {err}") from err
        return list(batch.permute(0, 2, 3, 1).numpy())  # each (H, W, 3)
