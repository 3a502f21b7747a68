"""Foresight judged against reality: metrics against a direct numpy computation, the reckoning
exactly `horizon` ticks after the prediction, and a policy without foresight saying so."""

import threading
import time

import numpy as np
import pytest

from robot_io.policy import PolicyOutput
from runtime.control.commands import RunPolicy
from runtime.control.foresight_reckoning import (
    DEFAULT_HORIZON,
    NO_ENCODER_NOTE,
    NO_FORESIGHT_MESSAGE,
    NO_INFERENCE_MESSAGE,
    SEPARATOR_PX,
    ForesightReckoner,
    foresight_horizon,
)
from robot_io.images import MAX_PSNR_DB, letterbox, psnr_db
from runtime.control.policy_runner import InferenceResult
from runtime.control.session import Session, SessionConfig
from tests.fakes import ConstantPolicy, FakeRobot, ForesightPolicy

CAMERAS = ["head", "wrist"]
FRAME = (32, 32, 3)  # camera frames
PICTURE = (16, 16, 3)  # predicted pictures (smaller, as the tiny model's 128 px vs 224 px cameras)
ACTIONS = np.zeros((4, 3), dtype=np.float32)


def frames_for(tick: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed * 1000 + tick)
    return {c: rng.integers(0, 256, FRAME, dtype=np.uint8) for c in CAMERAS}


def result(obs_tick: int, pictures=None, latents=None) -> InferenceResult:
    return InferenceResult(PolicyOutput(ACTIONS, foresight=pictures, foresight_latents=latents), obs_tick, 1.0)


def direct_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def shrink(frame: np.ndarray) -> np.ndarray:
    return letterbox(frame, *PICTURE[:2])  # (16, 16, 3): as the policy fits its inputs


def test_reckoning_appears_exactly_after_the_horizon_with_numpy_metrics():
    reckoner = ForesightReckoner(CAMERAS)
    assert reckoner.horizon == DEFAULT_HORIZON == 15
    seen = {t: frames_for(t) for t in range(40)}
    rng = np.random.default_rng(7)
    pictures = {c: rng.integers(0, 256, PICTURE, dtype=np.uint8) for c in CAMERAS}
    for tick in range(4):
        reckoner.observe_tick(tick, seen[tick])
    reckoner.add_inference(result(3, pictures))
    assert reckoner.state().available is True and reckoner.state().cameras == tuple(CAMERAS)
    for tick in range(4, 3 + 15):
        reckoner.observe_tick(tick, seen[tick])
        assert reckoner.state().reckonings == {}, f"judged too early, at tick {tick}"
    reckoner.observe_tick(18, seen[18])
    points = reckoner.state().reckonings
    assert set(points) == set(CAMERAS)
    for camera in CAMERAS:
        point = points[camera]
        assert (point.obs_tick, point.target_tick) == (3, 18)
        actual = shrink(seen[18][camera])
        assert point.psnr_db == pytest.approx(direct_psnr(pictures[camera], actual), abs=1e-4)
        assert point.baseline_psnr_db == pytest.approx(direct_psnr(shrink(seen[3][camera]), actual), abs=1e-4)
        assert point.latent_l2 is None and point.baseline_latent_l2 is None
    assert reckoner.state().latent_note == NO_ENCODER_NOTE
    history = reckoner.history()
    assert history["inference_ticks"] == [3]
    assert history["cameras"]["head"]["target_tick"] == [18]
    assert history["cameras"]["head"]["latent_l2"] == [None]


def test_latent_l2_uses_the_policys_encoder():
    def encode(frames):  # uint8 (32, 32, 3) -> (3, 4, 4): mean over 8x8 blocks, in [0, 1]
        return {c: f.reshape(4, 8, 4, 8, 3).mean(axis=(1, 3)).transpose(2, 0, 1) / 255.0 for c, f in frames.items()}

    reckoner = ForesightReckoner(CAMERAS, horizon=2, encoder=encode)
    seen = {t: frames_for(t, seed=1) for t in range(3)}
    predicted = {c: np.full((3, 4, 4), 0.5, dtype=np.float32) for c in CAMERAS}
    pictures = {c: np.zeros(PICTURE, dtype=np.uint8) for c in CAMERAS}
    reckoner.observe_tick(0, seen[0])
    reckoner.add_inference(result(0, pictures, predicted))
    reckoner.observe_tick(1, seen[1])
    reckoner.observe_tick(2, seen[2])
    point = reckoner.state().reckonings["wrist"]
    actual, then = encode(seen[2])["wrist"], encode(seen[0])["wrist"]
    assert point.latent_l2 == pytest.approx(np.sqrt(np.mean((predicted["wrist"] - actual) ** 2)), rel=1e-5)
    assert point.baseline_latent_l2 == pytest.approx(np.sqrt(np.mean((then - actual) ** 2)), rel=1e-5)
    assert reckoner.state().latent_note == ""


def test_a_policy_without_foresight_says_so_and_nothing_is_judged():
    reckoner = ForesightReckoner(CAMERAS)
    assert reckoner.state().message == NO_INFERENCE_MESSAGE and reckoner.state().available is None
    reckoner.observe_tick(0, frames_for(0))
    reckoner.add_inference(result(0, pictures=None))
    for tick in range(1, 40):
        reckoner.observe_tick(tick, frames_for(tick))
    state = reckoner.state()
    assert state.available is False and state.message == NO_FORESIGHT_MESSAGE
    assert state.cameras == () and state.reckonings == {}
    assert reckoner.foresight_picture("head") is None and reckoner.reckoning_picture("head") is None
    assert reckoner.history()["inference_ticks"] == [0]  # the inference still shows on the chart


def test_reckoning_picture_is_prediction_actual_heat_map_built_on_request_once():
    reckoner = ForesightReckoner(CAMERAS, horizon=1)
    prediction = np.full(PICTURE, 100, dtype=np.uint8)
    reckoner.observe_tick(0, frames_for(0))
    reckoner.add_inference(result(0, {"head": prediction}))
    reckoner.observe_tick(1, frames_for(1))
    assert reckoner._pictures == {}  # nothing built per tick
    reckoning, picture = reckoner.reckoning_picture("head")
    h, w = PICTURE[:2]
    assert picture.shape == (h, 3 * w + 2 * SEPARATOR_PX, 3) and picture.dtype == np.uint8
    assert np.array_equal(picture[:, :w], prediction)
    assert np.array_equal(picture[:, w + SEPARATOR_PX : 2 * w + SEPARATOR_PX], shrink(frames_for(1)["head"]))
    again = reckoner.reckoning_picture("head")
    assert again[0] is reckoning and again[1] is picture  # cached, not rebuilt
    assert set(reckoner.state().reckonings) == {"head"}  # only the camera that was predicted


def test_an_inference_slower_than_the_horizon_is_judged_when_it_lands():
    reckoner = ForesightReckoner(CAMERAS, horizon=3)
    for tick in range(10):
        reckoner.observe_tick(tick, frames_for(tick))
    reckoner.add_inference(result(2, {c: np.zeros(PICTURE, np.uint8) for c in CAMERAS}))
    assert reckoner.state().reckonings["head"].target_tick == 5


def test_identical_pictures_are_capped_and_non_square_frames_are_letterboxed():
    same = np.full(PICTURE, 9, dtype=np.uint8)
    assert psnr_db(same, same) == MAX_PSNR_DB
    wide = np.full((32, 64, 3), 200, dtype=np.uint8)
    boxed = letterbox(wide, 16, 16)  # scaled to 8 x 16, centred on black
    assert boxed.shape == (16, 16, 3)
    assert (boxed[4:12] == 200).all() and (boxed[:4] == 0).all() and (boxed[12:] == 0).all()


def test_malformed_foresight_is_dropped_with_a_reason():
    reckoner = ForesightReckoner(CAMERAS)
    reckoner.observe_tick(0, frames_for(0))
    reckoner.add_inference(result(0, {"head": np.zeros((16, 16), np.float32), "wrist": np.zeros(PICTURE, np.uint8)}))
    state = reckoner.state()
    assert state.cameras == ("wrist",) and "head" in state.problem


def test_history_is_bounded_and_reset_forgets_pending_predictions():
    reckoner = ForesightReckoner(CAMERAS, horizon=1, history_points=5)
    for tick in range(20):
        reckoner.observe_tick(tick, frames_for(tick))
        reckoner.add_inference(result(tick, {"head": np.zeros(PICTURE, np.uint8)}))
    assert len(reckoner.history()["cameras"]["head"]["psnr_db"]) == 5
    reckoner.reset()
    reckoner.observe_tick(20, frames_for(20))
    assert reckoner.state().reckonings["head"].target_tick == 19  # the prediction for tick 20 was forgotten


def test_horizon_comes_from_the_policy_it_declares():
    assert foresight_horizon(ConstantPolicy()) == DEFAULT_HORIZON  # it names none
    policy = ConstantPolicy()
    policy.foresight_horizon = 7
    assert foresight_horizon(policy) == 7


def test_waiters_wake_when_foresight_lands():
    reckoner = ForesightReckoner(CAMERAS)
    reckoner.observe_tick(0, frames_for(0))
    version = reckoner.state().version
    woke = []
    waiter = threading.Thread(target=lambda: woke.append((reckoner.wait_for_version(version, 5.0), time.monotonic())))
    waiter.start()
    time.sleep(0.05)
    landed = time.monotonic()
    reckoner.add_inference(result(0, {"head": np.zeros(PICTURE, np.uint8)}))
    waiter.join(5)
    assert woke and woke[0][0] > version and woke[0][1] - landed < 0.05


@pytest.mark.parametrize("policy, available", [(ForesightPolicy(), True), (ConstantPolicy(), False)])
def test_a_running_session_feeds_the_reckoner(policy, available):
    session = Session(FakeRobot(), policy, SessionConfig(fps=60))
    session.start()
    try:
        session.submit(RunPolicy("pick up the red block"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            state = session.foresight.state()
            if state.available is not None and (not available or state.reckonings):
                break
            time.sleep(0.01)
        assert state.available is available
        if available:
            point = state.reckonings["head"]
            assert point.target_tick == point.obs_tick + ForesightPolicy.foresight_horizon
            # FakeRobot frames show their tick and the fake predicts exactly frame t+15's value
            # (at the frame's aspect, so no letterbox bars): right where copying frame t is not.
            assert point.psnr_db == MAX_PSNR_DB > point.baseline_psnr_db
        else:
            assert state.message == NO_FORESIGHT_MESSAGE
        assert session.snapshot().last_error == ""
    finally:
        session.close()
    assert session.loop_error is None
