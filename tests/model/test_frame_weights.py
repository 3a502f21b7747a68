"""Per-frame weights of L_act from the recorded context: recovery frames, the frames after a surprise."""

import numpy as np
import pytest

from model.frame_weights import FrameContext, FrameWeighting, describe, frame_weights
from robot_io.datasets.schema import INTERVENTION_SEGMENTS
from robot_io.surprise_calibration import SurpriseCalibration

FPS = 10
# Alarm below 30 dB (nine successful predictions of 30..38 dB at alpha 0.1); a score of 0.1 is an alarm.
CALIBRATION = SurpriseCalibration.from_scores([-30.0 - k for k in range(9)], false_alarm=0.1, unit="prediction", episodes=3)
EPISODES = np.array([[0, 12]] * 12 + [[12, 20]] * 8)  # (20, 2): frames 0-11, then 12-19
NONE, RECOVERY, CORRECTION = (INTERVENTION_SEGMENTS.index(s) for s in ("none", "recovery", "correction"))


def context(segment=None, psnr=None, score=None):
    def column(values, dtype):
        if values is None:
            return None
        full = np.full(len(EPISODES), -1, dtype=dtype)
        for frame, value in values.items():
            full[frame] = value
        return full

    return FrameContext(column(segment, np.int64), column(psnr, np.float32), column(score, np.float32))


def test_the_defaults_weigh_nothing():
    weighted = frame_weights(context({3: RECOVERY}, {2: 5.0}), EPISODES, FPS, FrameWeighting())
    assert weighted.weights is None and not FrameWeighting().active


def test_recovery_frames_weigh_the_recovery_weight():
    segments = {f: NONE for f in range(12)} | {12: RECOVERY, 13: RECOVERY, 14: CORRECTION}
    weighted = frame_weights(context(segments), EPISODES, FPS, FrameWeighting(recovery_weight=3.0))
    expected = np.ones(20, np.float32)
    expected[[12, 13]] = 3.0
    np.testing.assert_array_equal(weighted.weights, expected)
    assert weighted.recovery == 2


def test_frames_after_a_surprise_weigh_the_surprise_weight_within_its_episode():
    # A score that raised the alarm at frame 2; a PSNR below the threshold at frame 10 (recorded
    # without a calibration: no score); a PSNR and score that did not at frame 5.
    weighting = FrameWeighting(surprise_weight=2.0, surprise_window_s=0.3, calibration=CALIBRATION)
    weighted = frame_weights(context(psnr={2: 12.0, 5: 33.0, 10: 25.0}, score={2: 0.1, 5: 0.5}), EPISODES, FPS, weighting)
    expected = np.ones(20, np.float32)
    expected[[2, 3, 4, 5, 10, 11]] = 2.0  # 3 frames (0.3 s at 10 fps) after each; episode 0 ends at frame 11
    np.testing.assert_array_equal(weighted.weights, expected)
    assert (weighted.surprises, weighted.after_surprise) == (2, 6)
    # The score alone decides where the PSNR column is missing.
    only_score = frame_weights(context(score={2: 0.1, 5: 0.5}), EPISODES, FPS, weighting)
    assert np.flatnonzero(only_score.weights != 1).tolist() == [2, 3, 4, 5]


def test_a_recovery_frame_after_a_surprise_weighs_the_product():
    weighting = FrameWeighting(recovery_weight=3.0, surprise_weight=2.0, surprise_window_s=0.1, calibration=CALIBRATION)
    weighted = frame_weights(context({12: NONE, 13: RECOVERY}, {12: 20.0}), EPISODES, FPS, weighting)
    assert weighted.weights[12] == 2.0 and weighted.weights[13] == 6.0 and weighted.weights[14] == 1.0


def test_a_dataset_without_the_columns_is_not_weighted_and_says_so():
    weighting = FrameWeighting(recovery_weight=3.0, surprise_weight=2.0, calibration=CALIBRATION)
    weighted = frame_weights(FrameContext(), EPISODES, FPS, weighting)
    assert weighted.weights is None
    said = describe(weighted, weighting, FrameContext())
    assert "no intervention_segment column" in said and "no surprise_score or foresight_psnr_db column" in said


@pytest.mark.parametrize("options, message", [
    ({"recovery_weight": -1.0}, "recovery_weight must be a finite number >= 0"),
    ({"surprise_window_s": float("nan")}, "surprise_window_s must be a finite number >= 0"),
    ({"surprise_weight": 2.0}, "needs a surprise calibration"),
])
def test_bad_settings_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        FrameWeighting(**options)
