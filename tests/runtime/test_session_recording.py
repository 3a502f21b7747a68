"""Recording through the session: episodes land in a LeRobot dataset that lerobot loads back."""


import pytest

from runtime.commands import DiscardRecording, RunPolicy, StartRecording, StopRecording, TakeOver, TeleopKeys
from robot_io.recorder import RecorderError, check_writable
from runtime.session import Session, SessionConfig
from tests.session_support import wait_until
from tests.fakes import ConstantPolicy, FakeRobot



def load(root):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset("local/" + root.name, root=root)


def test_episodes_saved_discarded_and_saved_at_close(tmp_path):
    root = tmp_path / "episodes"
    session = Session(FakeRobot(), ConstantPolicy(target=0.5, steps=100), SessionConfig(fps=30, record_root=root))
    session.start()
    try:
        session.submit(RunPolicy("pick up the red block"))
        session.submit(StartRecording())
        start = wait_until(lambda s: s.recording.active, session, timeout_s=60)
        wait_until(lambda s: s.tick > start.tick + 12, session)
        session.submit(TakeOver())
        session.submit(TeleopKeys(frozenset({"KeyW"})))
        wait_until(lambda s: s.action_source == "operator", session)
        session.submit(StopRecording())
        wait_until(lambda s: s.recording.saved_episodes == 1 and s.recording.backlog == 0, session, timeout_s=60)

        session.submit(StartRecording())
        wait_until(lambda s: s.recording.episode_frames > 5, session)
        session.submit(DiscardRecording())
        wait_until(lambda s: not s.recording.active and "Discarded" in s.recording.last_message, session, timeout_s=60)

        session.submit(StartRecording())  # left running: close() must save it
        wait_until(lambda s: s.recording.episode_frames > 5, session)
    finally:
        session.close()

    ds = load(root)
    assert ds.meta.total_episodes == 2
    first = ds.meta.episodes[0]
    frames = [ds[i] for i in range(first["dataset_from_index"], first["dataset_to_index"])]
    interventions = [bool(f["intervention"].item()) for f in frames]
    assert interventions[0] is False and interventions[-1] is True  # the operator's frames are tagged
    assert frames[0]["task"] == "pick up the red block"


def test_recording_without_a_dataset_folder_says_so():
    session = Session(FakeRobot(), ConstantPolicy(), SessionConfig(fps=30))
    session.start()
    try:
        session.submit(StartRecording())
        wait_until(lambda s: "Recording is disabled" in s.last_error, session)
    finally:
        session.close()


def test_unwritable_recordings_folder_fails_before_anything_starts(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(RecorderError, match="not a folder"):
        check_writable(blocker / "episodes")
    with pytest.raises(RecorderError, match="not a folder"):
        Session(FakeRobot(), ConstantPolicy(), SessionConfig(record_root=blocker / "episodes"))
