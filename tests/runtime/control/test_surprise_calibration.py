"""The calibrated surprise gauge: the conformal threshold, p-values, the file, and the session and
status bar using it."""

import json

import pytest

from runtime.control.commands import Mode, RunPolicy
from runtime.control.foresight_reckoning import ForesightPoint
from runtime.control.surprise import SurpriseConfig, foresight_surprise, surprise_gauge
from runtime.control.surprise_calibration import (CALIBRATION_FILE, CalibrationError, SurpriseCalibration,
                                                  calibration_for, conformal_threshold)
from tests.fakes import ForesightPolicy
from tests.session_support import wait_until
from ui.status_bar import render_status

# Nine successful predictions of 30, 31, ... 38 dB: scores -38 .. -30.
NINE = SurpriseCalibration.from_scores([-30.0 - k for k in range(9)], false_alarm=0.1, unit="prediction", episodes=3)


def point(psnr):
    return ForesightPoint("head", 0, 15, psnr, 25.0, None, None)


def test_the_threshold_is_the_finite_sample_conformal_quantile():
    scores = list(range(1, 20))  # n = 19: rank ceil(20 * 0.9) = 18
    assert conformal_threshold(scores, 0.1) == 18
    assert conformal_threshold(scores[::-1], 0.1) == 18  # order does not matter
    assert conformal_threshold(list(range(1, 10)), 0.1) == 9  # n = 9: rank 9, the largest
    with pytest.raises(CalibrationError, match="8 calibration scores are too few for a 0.1 false-alarm rate: it needs at least 9"):
        conformal_threshold(list(range(1, 9)), 0.1)
    with pytest.raises(CalibrationError, match="between 0 and 1"):
        conformal_threshold(scores, 1.5)


def test_the_false_alarm_rate_holds_on_new_scores_from_the_same_distribution():
    import numpy as np

    rng = np.random.default_rng(0)
    alarms = []
    for _ in range(400):
        scores = rng.normal(size=20)
        alarms.append(rng.normal() > conformal_threshold(scores, 0.2))
    assert 0.10 < np.mean(alarms) <= 0.2 + 0.05  # at most alpha (plus sampling noise), and not far below


def test_p_values_and_alarms():
    assert NINE.threshold_psnr_db == 30.0  # the worst of nine: at alpha 0.1 only worse than all of them alarms
    assert NINE.p_value(29.0) == pytest.approx(1 / 10)  # worse than every calibration score
    assert NINE.p_value(30.0) == pytest.approx(2 / 10)  # as bad as the worst one
    assert NINE.p_value(40.0) == pytest.approx(1.0)
    assert NINE.is_alarm(29.9) and not NINE.is_alarm(30.0)
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


def test_the_file_round_trips_and_bad_files_are_refused(tmp_path):
    path = tmp_path / "cal.json"
    NINE.save(path)
    assert SurpriseCalibration.load(path) == NINE
    assert json.loads(path.read_text())["threshold_psnr_db"] == 30.0
    assert not list(tmp_path.glob("*.tmp"))
    (tmp_path / "bad.json").write_text('{"hello": 1}')
    with pytest.raises(CalibrationError, match="is not a surprise calibration"):
        SurpriseCalibration.load(tmp_path / "bad.json")
    with pytest.raises(CalibrationError, match="cannot read"):
        SurpriseCalibration.load(tmp_path / "missing.json")
    few = {**json.loads(path.read_text()), "scores": [-31.0, -30.0]}
    (tmp_path / "few.json").write_text(json.dumps(few))
    with pytest.raises(CalibrationError, match="too few"):
        SurpriseCalibration.load(tmp_path / "few.json")


def test_the_calibration_beside_the_checkpoint_is_found_unless_a_flag_names_one(tmp_path):
    assert calibration_for(tmp_path) is None and calibration_for(None) is None
    NINE.save(tmp_path / CALIBRATION_FILE)
    assert calibration_for(tmp_path) == NINE
    other = SurpriseCalibration.from_scores([-20.0] * 19, 0.1, "episode", 19)
    other.save(tmp_path / "other.json")
    assert calibration_for(tmp_path, tmp_path / "other.json") == other


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
