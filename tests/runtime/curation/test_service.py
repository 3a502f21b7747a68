"""CurationService on small datasets made with our recorder: the episode list, LeRobot's tools
doing the edits, backups and undo, and every bad input refused with its reason and nothing written.

Small on purpose (2 shared CPU cores): 2-3 episodes of 6 frames, 32x32 cameras.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from runtime.curation import safe_edit
from runtime.curation.safe_edit import EditError
from runtime.curation.service import CurationConfig, CurationService
from runtime.dataset_roots import OutsideRoots, dataset_folders
from tests.replay_support import record_dataset

FRAMES = 6


def small(root: Path, **kwargs) -> Path:
    kwargs = {"episodes": 3, "frames": FRAMES, "cameras": ("head",), "shape": (32, 32, 3),
              "outcomes": ("success", "failure", "success"), "operator_frames": 2,
              "tasks": ("pick red", "pick blue", "pick green"), **kwargs}
    return record_dataset(root, **kwargs)


def loadable(root: Path) -> int:
    """Episodes LeRobot's own loader finds in the dataset (it reads every data and metadata file)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset("local/" + root.name, root=root)
    assert len(dataset) == dataset.meta.total_frames
    return dataset.meta.total_episodes


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    return small(tmp_path_factory.mktemp("recorded") / "demo")


@pytest.fixture
def roots(tmp_path, recorded) -> Path:
    import shutil

    root = tmp_path / "recordings"
    root.mkdir()
    shutil.copytree(recorded, root / "demo")
    return root


def test_lists_episodes_with_outcome_operator_share_and_flags(roots):
    service = CurationService(CurationConfig((roots,)))
    table = service.table(roots / "demo")
    assert [(e.index, e.task, e.frames, e.outcome, e.intervention_frames) for e in table.episodes] == [
        (0, "pick red", FRAMES, "success", 2), (1, "pick blue", FRAMES, "failure", 2), (2, "pick green", FRAMES, "success", 2)]
    assert table.cameras == ("head",)
    before = table.version
    assert service.flag(roots / "demo", 1, True) == "Episode 1 flagged."
    table = service.table(roots / "demo")
    assert table.flagged == {1} and table.version != before
    thumb = service.thumbnail(roots / "demo", 2)
    assert thumb.shape == (32, 32, 3) and thumb.dtype.name == "uint8"
    frame = service.frame(roots / "demo", 0, "head", FRAMES - 1)
    assert frame.shape == (32, 32, 3)
    [entry] = service.datasets()
    assert (entry.path, entry.episodes, entry.problem, entry.live, entry.backups) == (roots / "demo", 3, "", False, 0)


def test_delete_writes_a_new_dataset_keeps_a_backup_and_undo_restores_it(roots):
    service = CurationService(CurationConfig((roots,)))
    service.flag(roots / "demo", 2, True)
    original = snapshot(roots / "demo")
    message = service.delete(roots / "demo", [1])
    assert message.startswith("Deleted episode 1: 2 left.") and "Undo restores it" in message
    table = service.table(roots / "demo")
    assert [(e.index, e.task, e.outcome) for e in table.episodes] == [(0, "pick red", "success"), (1, "pick green", "success")]
    assert table.flagged == {1}  # episode 2 became 1, its flag with it
    assert loadable(roots / "demo") == 2
    [backup] = safe_edit.backups(roots / "demo")
    assert snapshot(backup) == original
    assert list(dataset_folders((roots,))) == [roots / "demo"]  # the backup is hidden
    service.undo(roots / "demo")
    assert snapshot(roots / "demo") == original
    assert len(service.table(roots / "demo").episodes) == 3


def test_relabel_export_and_merge(roots, tmp_path):
    service = CurationService(CurationConfig((roots,)))
    service.relabel(roots / "demo", 0, "  pick the red block  ")
    assert [e.task for e in service.table(roots / "demo").episodes] == ["pick the red block", "pick blue", "pick green"]
    assert loadable(roots / "demo") == 3

    assert service.export(roots / "demo", [2, 0], "demo_ok") == "Exported episodes [0, 2] to demo_ok."
    exported = service.table(roots / "demo_ok")
    assert [(e.task, e.outcome) for e in exported.episodes] == [("pick the red block", "success"), ("pick green", "success")]
    assert loadable(roots / "demo_ok") == 2

    message = service.merge(roots / "demo", roots / "demo_ok", "both")
    assert message == "Merged demo and demo_ok into both (5 episodes)."
    merged = service.table(roots / "both")
    assert [e.task for e in merged.episodes] == ["pick the red block", "pick blue", "pick green", "pick the red block", "pick green"]
    assert loadable(roots / "both") == 5


def test_bad_requests_are_refused_with_the_reason_and_change_nothing(roots, tmp_path):
    service = CurationService(CurationConfig((roots,)))
    service.delete(roots / "demo", [0, 1])
    original = snapshot(roots / "demo")
    with pytest.raises(EditError, match="would leave demo with no episodes"):
        service.delete(roots / "demo", [0])
    with pytest.raises(EditError, match=r"episodes \[7\] are not in demo \(it holds episodes 0..0\)"):
        service.delete(roots / "demo", [7])
    with pytest.raises(EditError, match="must be 1 to"):
        service.relabel(roots / "demo", 0, "   ")
    for name in ("../escape", ".hidden", "a/b", "", "x" * 200):
        with pytest.raises(EditError, match="is not a dataset name"):
            service.export(roots / "demo", [0], name)
    with pytest.raises(EditError, match="already exists"):
        service.export(roots / "demo", [0], "demo")
    outside = small(tmp_path / "elsewhere", episodes=2)
    with pytest.raises(OutsideRoots, match="outside the dataset roots"):
        service.delete(outside, [0])
    with pytest.raises(OutsideRoots, match="outside the dataset roots"):
        service.table(roots / ".." / "elsewhere")
    [backup] = safe_edit.backups(roots / "demo")
    with pytest.raises(OutsideRoots, match="hidden folder"):
        service.delete(backup, [0])
    with pytest.raises(EditError, match="cannot be merged with itself"):
        service.merge(roots / "demo", roots / "demo", "twice")
    assert snapshot(roots / "demo") == original
    assert sorted(p.name for p in roots.iterdir()) == sorted(["demo", backup.name])


def test_merging_datasets_with_other_fps_or_features_is_refused_with_the_reason(roots):
    small(roots / "fast", episodes=1, fps=30)
    small(roots / "two_cameras", episodes=1, cameras=("head", "wrist"))
    service = CurationService(CurationConfig((roots,)))
    with pytest.raises(EditError, match="fps: demo runs at 15, fast at 30"):
        service.merge(roots / "demo", roots / "fast", "mixed")
    with pytest.raises(EditError, match="'observation.images.wrist' exists in the dataset two_cameras but the dataset demo has no such feature"):
        service.merge(roots / "demo", roots / "two_cameras", "mixed")
    assert not (roots / "mixed").exists()


class FakeLive:
    """The session's recorder, as curation sees it: refuses to let go while an episode records."""

    def __init__(self, root: Path) -> None:
        self.root, self.active, self.releases = root, False, 0

    def released(self):
        import contextlib

        from runtime.control.recording import DatasetBusy

        if self.active:
            raise DatasetBusy(f"an episode is being recorded into {self.root.name}: save or discard it first.")
        self.releases += 1
        return contextlib.nullcontext()


def test_the_live_dataset_is_edited_only_between_episodes(roots):
    live = FakeLive(roots / "demo")
    service = CurationService(CurationConfig((roots,)), live=live)
    live.active = True
    with pytest.raises(EditError, match="refused: an episode is being recorded into demo"):
        service.delete(roots / "demo", [0])
    assert service.flag(roots / "demo", 0, True) == "Episode 0 flagged."  # flags never touch the recorder's files
    live.active = False
    service.delete(roots / "demo", [0])
    assert live.releases == 1 and len(service.table(roots / "demo").episodes) == 2


def test_a_commit_killed_between_its_renames_is_finished_at_the_next_start(roots):
    service = CurationService(CurationConfig((roots,)))
    service.export(roots / "demo", [0], "kept")
    # What `replace` leaves when killed after moving the old folder aside: record + backup + staging.
    staging = safe_edit.staging_folder(roots / "demo")
    os.rename(roots / "kept", staging)
    backup = roots / ".demo.backup-20000101-000000-000000000"
    (roots / ".demo.commit.json").write_text(json.dumps({"staging": staging.name, "backup": backup.name}))
    os.rename(roots / "demo", backup)
    left_over = safe_edit.staging_folder(roots / "other")
    left_over.mkdir()  # a build killed half-way: no record names it
    service = CurationService(CurationConfig((roots,)))
    assert len(service.recovered) == 2
    assert len(service.table(roots / "demo").episodes) == 1
    assert sorted(p.name for p in roots.iterdir()) == [backup.name, "demo"]
