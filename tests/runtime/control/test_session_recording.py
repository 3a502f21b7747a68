"""Recording through the session: episodes land in a LeRobot dataset that lerobot loads back."""


import numpy as np
import pytest

from runtime.control.commands import DiscardRecording, RunPolicy, StartRecording, StopRecording, TakeOver, TeleopKeys
from robot_io.datasets.schema import INTERVENTION_SEGMENTS, RecorderError
from robot_io.datasets.journal import check_writable
from runtime.control.session import Session, SessionConfig
from tests.session_support import wait_until
from tests.fakes import ConstantPolicy, FakeRobot
from tests.runtime.control.test_operator_control import FakeLeader



def load(root):
    import os

    os.environ["HF_HUB_OFFLINE"] = "1"  # a missing file must fail here, not send LeRobot to the Hub
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


def test_corrections_mode_records_each_takeover_as_an_episode_with_tags_and_outcomes(tmp_path):
    from robot_io.datasets.schema import EPISODE_OUTCOMES
    from runtime.control.commands import Release, SetRecordingMode
    from tests.fakes import ForesightPolicy

    root = tmp_path / "corrections"
    session = Session(FakeRobot(), ForesightPolicy(target=0.5, steps=100),
                      SessionConfig(fps=30, record_root=root, recording_mode="corrections"))
    session.start()
    try:
        session.submit(RunPolicy("pick up the red block"))
        wait_until(lambda s: s.action_source == "policy", session)
        assert not session.snapshot().recording.active  # the policy alone is not recorded in this mode
        for correction in range(2):
            session.submit(TakeOver())
            wait_until(lambda s: s.recording.active, session, timeout_s=60)
            session.submit(TeleopKeys(frozenset({"KeyW"})))
            wait_until(lambda s: s.action_source == "operator" and s.recording.episode_frames > 4, session)
            session.submit(Release())  # hand back: the correction is saved
            wait_until(lambda s: s.recording.saved_episodes == correction + 1 and s.mode.value == "running", session,
                       timeout_s=60)
        # Full attempts again: an explicit stop with the operator's verdict.
        session.submit(SetRecordingMode("attempts"))
        session.submit(StartRecording())
        wait_until(lambda s: s.recording.active and s.recording.episode_frames > 20, session, timeout_s=60)
        session.submit(StopRecording(outcome="success"))
        done = wait_until(lambda s: s.recording.saved_episodes == 3 and s.recording.backlog == 0, session, timeout_s=60)
    finally:
        session.close()

    assert [e.outcome for e in done.recording.episodes] == ["failure", "failure", "success"]  # FakeRobot: gripper open
    assert all(e.intervention_frames == e.frames for e in done.recording.episodes[:2])
    ds = load(root)
    assert ds.meta.total_episodes == 3
    hf = ds.hf_dataset
    episode = [int(e) for e in hf["episode_index"]]
    interventions = [bool(v) for v in hf["intervention"]]
    assert all(interventions[i] for i, e in enumerate(episode) if e < 2)  # corrections: all operator frames
    third = [i for i, e in enumerate(episode) if e == 2]
    chunk_ids = [int(hf["chunk_id"][i]) for i in third]
    latencies = [float(hf["inference_latency_ms"][i]) for i in third]
    assert all(c >= 1 for c in chunk_ids) and all(v > 0 for v in latencies)  # policy frames carry their chunk
    psnrs = [float(v) for v in hf["foresight_psnr_db"]]
    assert any(v > 0 for v in psnrs) and all(v > 0 or v == -1 for v in psnrs)  # judged foresight, else -1
    assert all(float(v) == -1 for v in hf["surprise_score"])  # no calibration: no score
    segments = [INTERVENTION_SEGMENTS[int(v)] for v in hf["intervention_segment"]]
    assert all(segments[i] == ("correction" if e < 2 else "none") for i, e in enumerate(episode))  # the keys: no recovery
    assert [EPISODE_OUTCOMES[int(hf["episode_outcome"][i])] for i in third] == ["success"] * len(third)


class RecoveringLeader(FakeLeader):
    """A leader arm whose operator says which part of the intervention they are in."""

    def __init__(self) -> None:
        super().__init__()
        self.segment = "recovery"

    def intervention_segment(self) -> str:
        return self.segment


def test_a_takeover_records_its_recovery_and_correction_segments_and_the_surprise_score(tmp_path):
    from runtime.control.surprise import SurpriseConfig
    from tests.fakes import ForesightPolicy
    from tests.robot_io.test_surprise_calibration import NINE

    root = tmp_path / "context"
    leader = RecoveringLeader()
    # 60 grey levels off: ~12.5 dB, worse than every calibration score (p-value 0.1); auto-hold off.
    session = Session(FakeRobot(), ForesightPolicy(target=0.5, steps=100, error=60),
                      SessionConfig(fps=30, record_root=root, surprise=SurpriseConfig(calibration=NINE)), leader)
    session.start()
    try:
        session.submit(RunPolicy("pick up the red block"))
        session.submit(StartRecording())
        wait_until(lambda s: s.recording.active and s.recording.episode_frames > 40, session, timeout_s=60)
        leader.joints["joint_2.pos"] = 0.3  # the operator grabs the leader: recovering first
        taken = wait_until(lambda s: s.mode.value == "takeover", session)
        wait_until(lambda s: s.tick > taken.tick + 5, session)
        leader.segment = "correction"
        wait_until(lambda s: s.tick > taken.tick + 10, session)
        session.submit(StopRecording())
        wait_until(lambda s: s.recording.saved_episodes == 1 and s.recording.backlog == 0, session, timeout_s=60)
    finally:
        session.close()

    hf = load(root).hf_dataset
    interventions = [bool(v) for v in hf["intervention"]]
    segments = [INTERVENTION_SEGMENTS[int(v)] for v in hf["intervention_segment"]]
    takeover = interventions.index(True)
    assert takeover > 40 and all(interventions[takeover:]) and set(segments[:takeover]) == {"none"}
    operator = segments[takeover:]
    switch = operator.index("correction")
    assert switch >= 5 and set(operator[:switch]) == {"recovery"} and set(operator[switch:]) == {"correction"}
    psnrs, scores = [float(v) for v in hf["foresight_psnr_db"]], [float(v) for v in hf["surprise_score"]]
    judged = [i for i, p in enumerate(psnrs) if p != -1]
    assert judged and all(scores[i] == pytest.approx(0.1) for i in judged)  # every judged prediction scored
    assert all(scores[i] == -1 for i in range(len(scores)) if i not in judged)


def test_rerecord_puts_the_scene_back_and_starts_again(tmp_path):
    from runtime.control.commands import RerecordEpisode, ResetScene

    session = Session(FakeRobot(), ConstantPolicy(), SessionConfig(fps=30, record_root=tmp_path / "again"))
    session.start()
    try:
        session.submit(ResetScene(seed=42))
        session.submit(StartRecording())
        wait_until(lambda s: s.recording.episode_frames > 5, session, timeout_s=60)
        session.submit(RerecordEpisode())
        again = wait_until(lambda s: sum("New scene: seed 42" in e for e in s.events) == 2 and s.recording.active,
                           session, timeout_s=60)
        assert again.scene.startswith("seed 42") and again.recording.saved_episodes == 0
        assert "Recording started" in again.events[-1]
        wait_until(lambda s: s.recording.episode_frames > 3, session)
    finally:
        session.close()
    assert load(tmp_path / "again").meta.total_episodes == 1  # the re-recorded one, saved at close


def test_a_dataset_of_another_robot_is_refused_before_recording_and_left_alone(tmp_path):
    from robot_io.datasets.recorder import EpisodeRecorder

    root = tmp_path / "other_robot"
    other = EpisodeRecorder(root, 30, {"x.pos": float, "cam": (32, 32, 3)}, {"x.pos": float})
    other.start_episode("push")
    for _ in range(3):
        other.add_frame({"x.pos": 0.0, "cam": np.zeros((32, 32, 3), np.uint8)}, {"x.pos": 0.0}, False, "policy")
    other.save_episode()
    other.finalize()
    before = sorted((p.relative_to(root), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file())
    with pytest.raises(RecorderError, match="recorded with different features") as err:
        Session(FakeRobot(), ConstantPolicy(), SessionConfig(fps=30, record_root=root))
    assert "'joint_1.pos'" in str(err.value)  # the differences are named
    after = sorted((p.relative_to(root), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file())
    assert after == before  # nothing overwritten
