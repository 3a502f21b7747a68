"""The calibrated surprise gauge in the console: the score of each judged prediction, the
calibrated threshold replacing the fixed one, and the session and status bar using them."""

import pytest

from runtime.control.commands import Mode, RunPolicy
from runtime.control.foresight_reckoning import ForesightPoint
from runtime.control.surprise import SurpriseConfig, foresight_surprise, surprise_gauge
from tests.fakes import ForesightPolicy
from tests.robot_io.test_surprise_calibration import NINE
from tests.session_support import wait_until
from ui.status_bar import render_status


def point(psnr):
    return ForesightPoint("head", 0, 15, psnr, 25.0, None, None)


def test_the_gauge_scores_the_predictions_judged_at_a_tick():
    gauge = surprise_gauge(NINE, 42, [point(28.0), point(30.0)])  # mean 29 dB
    assert (gauge.tick, gauge.psnr_db, gauge.alarm, gauge.false_alarm) == (42, 29.0, True, 0.1)
    assert surprise_gauge(None, 42, [point(28.0)]) is None and surprise_gauge(NINE, 42, []) is None


def test_a_calibration_replaces_the_fixed_threshold():
    fixed = SurpriseConfig(enabled=True, min_foresight_psnr_db=20.0)
    calibrated = SurpriseConfig(enabled=True, min_foresight_psnr_db=20.0, calibration=NINE)
    assert foresight_surprise(fixed, 15, [point(25.0)]) is None
    surprise = foresight_surprise(calibrated, 15, [point(25.0)])
    assert surprise.kind == "foresight_calibrated" and surprise.threshold == 30.0
    assert "below the calibrated threshold 30" in surprise.describe()
    assert foresight_surprise(calibrated, 15, [point(31.0)]) is None


def test_the_session_shows_the_calibrated_score_and_holds_on_it(make_session):
    # ForesightPolicy's pictures are exact (infinite PSNR) with no error; 60 grey levels off is ~12.5 dB.
    session, _ = make_session(ForesightPolicy(target=0.5, steps=50, error=60),
                              surprise=SurpriseConfig(enabled=True, min_foresight_psnr_db=5.0, calibration=NINE))
    session.submit(RunPolicy("go"))
    held = wait_until(lambda s: s.mode is Mode.PAUSED, session)
    assert held.last_surprise.kind == "foresight_calibrated"
    shown = wait_until(lambda s: s.surprise_gauge is not None, session)
    assert shown.surprise_gauge.alarm and shown.surprise_gauge.p_value == pytest.approx(0.1)
    bar = render_status(shown)
    assert "id='status-surprise'" in bar and "SURPRISE p 0.10" in bar and "alarm &lt; 30.0" in bar


def test_without_a_calibration_nothing_is_shown(make_session):
    session, _ = make_session(ForesightPolicy(target=0.5, steps=50, error=60), surprise=SurpriseConfig())
    session.submit(RunPolicy("go"))
    later = wait_until(lambda s: s.tick > 40, session)
    assert later.surprise_gauge is None and "status-surprise" not in render_status(later)
