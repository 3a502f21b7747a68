"""The dataset the session records into, curated while the console runs: edits are refused while
an episode records, done between episodes with the recording writer letting go of the dataset,
and recording goes on into the edited dataset afterwards."""

from __future__ import annotations

import pytest

from runtime.control.commands import RunPolicy, StartRecording, StopRecording
from runtime.control.session import Session, SessionConfig
from runtime.curation.safe_edit import EditError
from runtime.curation.service import CurationConfig, CurationService
from tests.fakes import ConstantPolicy, FakeRobot
from tests.runtime.curation.test_service import loadable
from tests.session_support import wait_until


def record_one(session: Session, saved: int) -> None:
    session.submit(StartRecording())
    wait_until(lambda s: s.recording.active and s.recording.episode_frames > 5, session, timeout_s=60)
    session.submit(StopRecording(outcome="success"))
    wait_until(lambda s: s.recording.saved_episodes == saved and s.recording.backlog == 0, session, timeout_s=60)


def test_the_recorded_dataset_is_edited_between_episodes(tmp_path):
    roots = tmp_path / "recordings"
    root = roots / "live"
    session = Session(FakeRobot(), ConstantPolicy(target=0.5, steps=100), SessionConfig(fps=30, record_root=root))
    curation = CurationService(CurationConfig((roots,)), live=session.recording_worker)
    session.start()
    try:
        session.submit(RunPolicy("pick up the red block"))
        record_one(session, 1)
        record_one(session, 2)
        assert [e.index for e in curation.table(root).episodes] == [0, 1]  # the list follows the recorder

        session.submit(StartRecording())
        wait_until(lambda s: s.recording.active and s.recording.episode_frames > 5, session, timeout_s=60)
        with pytest.raises(EditError, match="refused: an episode is being recorded into live"):
            curation.delete(root, [0])
        session.submit(StopRecording(outcome="failure"))
        wait_until(lambda s: s.recording.saved_episodes == 3 and s.recording.backlog == 0, session, timeout_s=60)

        assert curation.delete(root, [0]).startswith("Deleted episode 0: 2 left.")
        # The writer reopened the edited dataset: the page's episode list shows the edit ...
        wait_until(lambda s: s.recording.saved_episodes == 2, session, timeout_s=60)
        assert [e.outcome for e in session.snapshot().recording.episodes] == ["success", "failure"]
        record_one(session, 3)  # ... and recording goes on after it
    finally:
        session.close()
    assert [e.outcome for e in curation.table(root).episodes] == ["success", "failure", "success"]
    assert loadable(root) == 3
