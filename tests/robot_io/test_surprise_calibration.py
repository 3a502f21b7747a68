"""The surprise calibration: the conformal threshold, p-values, alarms and the file."""

import json

import pytest

from robot_io.surprise_calibration import (CALIBRATION_FILE, CalibrationError, SurpriseCalibration, calibration_for,
                                           conformal_threshold)

# Nine successful predictions of 30, 31, ... 38 dB: scores -38 .. -30.
NINE = SurpriseCalibration.from_scores([-30.0 - k for k in range(9)], false_alarm=0.1, unit="prediction", episodes=3)


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


def test_a_score_at_or_below_the_false_alarm_rate_is_exactly_an_alarm():
    import numpy as np

    scores = np.round(np.random.default_rng(1).normal(-25, 3, 59), 1)  # ties included
    others = [SurpriseCalibration.from_scores(scores[:n], alpha, "episode", n) for n, alpha in ((59, 0.2), (9, 0.3), (19, 0.05))]
    for calibration in (NINE, *others):
        for psnr in [*np.linspace(10, 45, 200), *(-calibration.scores[i] for i in range(len(calibration.scores)))]:
            score = calibration.p_value(psnr)
            assert calibration.score_is_alarm(score) == calibration.is_alarm(psnr), psnr
            assert calibration.score_is_alarm(float(np.float32(score))) == calibration.is_alarm(psnr), psnr  # as recorded


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
