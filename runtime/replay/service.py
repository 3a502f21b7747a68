"""The console's open-loop replay desk: which datasets may be replayed, the replay policy, one job at a time.

Datasets are found in configured roots only (recordings/ and folders named on the command line),
and a requested folder must lie inside one of them (runtime/dataset_roots.py). The replay runs its own policy instance, loaded at the first replay: the live
policy keeps the control loop's frame history, which a replay must not disturb.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from robot_io.datasets.conversion import default_cache_root
from robot_io.datasets.reader import read_summary
from robot_io.policy import Policy
from runtime.dataset_roots import DatasetListing, OutsideRoots, inside_roots, list_datasets, resolve_roots
from runtime.replay.open_loop import PolicyLayout, ReplayConfig, ReplayError, ReplayJob


class ReplayBusy(ReplayError):
    """A replay was asked for while another runs."""


@dataclass
class ReplayServiceConfig:
    roots: tuple[Path, ...]
    cache_root: Path = field(default_factory=default_cache_root)  # v3.0 copies of v2.1 datasets
    default_cameras: dict[str, str] = field(default_factory=dict)  # the page's initial camera mapping

    def __post_init__(self) -> None:
        self.roots = resolve_roots(self.roots)
        self.cache_root = Path(self.cache_root).expanduser().absolute()


class ReplayService:
    def __init__(self, config: ReplayServiceConfig, layout: PolicyLayout, policy_factory: Callable[[], Policy]) -> None:
        self.config = config
        self.layout = layout
        self._policy_factory = policy_factory
        self._policy: Policy | None = None
        self._policy_lock = threading.Lock()
        self._lock = threading.Lock()
        self._job: ReplayJob | None = None

    def datasets(self) -> list[DatasetListing]:
        return list_datasets(self.config.roots)

    def allowed(self, dataset: str | Path) -> Path:
        """The dataset folder, resolved, if it lies inside a root; else a ReplayError."""
        try:
            return inside_roots(dataset, self.config.roots)
        except OutsideRoots as err:
            raise ReplayError(str(err)) from err

    def start(self, config: ReplayConfig) -> ReplayJob:
        """Start a replay; a ReplayError when the folder is not allowed (ReplayBusy when a replay runs),
        a DatasetReadError when its meta/info.json is unreadable."""
        path = self.allowed(config.dataset)
        with self._lock:
            if self._job is not None and not self._job.join(0):
                raise ReplayBusy("a replay is running: stop it first")
            summary = read_summary(path)
            self._job = ReplayJob(self._load_policy, self.layout, dataclasses.replace(config, dataset=path),
                                  self.config.cache_root, summary).start()
            return self._job

    def stop(self) -> None:
        with self._lock:
            job = self._job
        if job is not None:
            job.cancel()

    @property
    def job(self) -> ReplayJob | None:
        """The running or latest replay."""
        with self._lock:
            return self._job

    def close(self, timeout_s: float = 10.0) -> None:
        self.stop()
        job = self.job
        if job is not None:
            job.join(timeout_s)

    def _load_policy(self) -> Policy:
        """Called on the job thread: the first replay pays for loading the model."""
        with self._policy_lock:
            if self._policy is None:
                self._policy = self._policy_factory()
            return self._policy

