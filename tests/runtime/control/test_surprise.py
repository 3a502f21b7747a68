"""Auto-hold on surprise: thresholds, and the session holding a policy whose foresight or chunk
switch surprised it."""

import pytest

from robot_io.chunks.blending import BlendConfig, Seam
from robot_io.chunks.schedule import ChunkConfig
from runtime.control.commands import Mode, RunPolicy
from runtime.control.foresight_reckoning import ForesightPoint
from runtime.control.surprise import SurpriseConfig, foresight_surprise, seam_surprise
from tests.fakes import ForesightPolicy, OffsetPolicy
from tests.session_support import wait_until

ON = SurpriseConfig(enabled=True, min_foresight_psnr_db=20.0, max_foresight_latent_l2=0.5, max_seam=0.2)


def point(psnr, l2=None):
    return ForesightPoint("head", 0, 15, psnr, 25.0, l2, None)


def test_thresholds():
    assert foresight_surprise(ON, 15, [point(30.0), point(8.0)]).kind == "foresight_psnr"  # mean 19 dB
    assert foresight_surprise(ON, 15, [point(30.0), point(14.0)]) is None  # mean 22 dB is fine
    assert foresight_surprise(ON, 15, [point(25.0, l2=0.9)]).kind == "foresight_latent_l2"
    assert foresight_surprise(ON, 15, []) is None
    assert foresight_surprise(SurpriseConfig(), 15, [point(1.0)]) is None  # off by default
    jump = Seam(tick=9, chunk_id=2, raw=0.3, blended=0.1, overlap=5)
    surprise = seam_surprise(ON, jump)
    assert (surprise.kind, surprise.tick, surprise.value) == ("seam", 9, 0.3)
    assert "chunk-switch jump 0.3 is above the threshold 0.2" in surprise.describe()
    assert seam_surprise(SurpriseConfig(enabled=True, max_seam=None), jump) is None
    with pytest.raises(ValueError, match="max_seam must be a positive number"):
        SurpriseConfig(max_seam=-1.0)


@pytest.fixture
def run(make_session):
    def start(policy, surprise, **config):
        session, _ = make_session(policy, surprise=surprise, **config)
        session.submit(RunPolicy("go"))
        return session

    return start


def test_a_wrong_foresight_holds_the_policy_and_asks_the_operator(run):
    session = run(ForesightPolicy(target=0.5, steps=50, error=60), SurpriseConfig(enabled=True, min_foresight_psnr_db=20.0))
    held = wait_until(lambda s: s.mode is Mode.PAUSED, session)
    assert held.last_surprise.kind == "foresight_psnr" and held.last_surprise.value < 20.0
    assert "take over to correct" in held.hint and "Surprise at tick" in held.last_error


def test_an_accurate_foresight_runs_on(run):
    session = run(ForesightPolicy(target=0.5, steps=50, error=0), SurpriseConfig(enabled=True, min_foresight_psnr_db=20.0))
    later = wait_until(lambda s: s.tick > 60, session)  # several predictions judged by now
    assert later.mode is Mode.RUNNING and later.last_surprise is None


def test_a_jumping_chunk_is_held_before_it_moves_the_arm(run):
    session = run(OffsetPolicy(low=0.0, high=0.5, steps=20), SurpriseConfig(enabled=True, max_seam=0.2),
                  chunks=ChunkConfig(blend=BlendConfig(mode="none")), max_step_per_tick=1.0)
    held = wait_until(lambda s: s.mode is Mode.PAUSED, session)
    assert held.last_surprise.kind == "seam" and held.last_surprise.value == pytest.approx(0.5)
    ticks, sources, commands = session.sent_commands.since(0)
    assert commands[:, 0].max() < 0.5  # the 0.5 chunk never reached the robot
