"""The shared image helpers: letterbox, PSNR, latent L2."""

import numpy as np
import pytest

from robot_io.images import MAX_PSNR_DB, latent_l2, letterbox, psnr, psnr_db


def test_letterbox_keeps_aspect_and_centres_on_black():
    frame = np.full((100, 200, 3), 255, np.uint8)
    out = letterbox(frame, 224)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    assert (out[:56] == 0).all() and (out[-56:] == 0).all() and (out[56:168] == 255).all()
    same = np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    assert letterbox(same, 224) is same


def test_letterbox_rejects_non_images():
    with pytest.raises(ValueError, match="uint8"):
        letterbox(np.zeros((10, 10, 3), np.float32), 224)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        letterbox(np.zeros((10, 10, 4), np.uint8), 224)


def test_letterbox_fits_a_rectangle_as_the_policy_fits_a_square():
    frame = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    out = letterbox(frame, 96, 96)
    assert np.array_equal(out, letterbox(frame, 96))  # one transform for the policy and the judge
    wide = letterbox(frame, 60, 120)  # height-bound: 80 px wide, centred
    assert wide.shape == (60, 120, 3) and (wide[:, :20] == 0).all() and (wide[:, -20:] == 0).all()


def test_psnr_of_one_pair_and_of_a_batch_agree():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (2, 3, 16, 16, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (2, 3, 16, 16, 3), dtype=np.uint8)
    batch = psnr(a, b)
    assert batch.shape == (2, 3)
    assert batch[1, 2] == pytest.approx(psnr_db(a[1, 2], b[1, 2]))
    mse = ((a[0, 0].astype(np.float64) - b[0, 0]) ** 2).mean()
    assert batch[0, 0] == pytest.approx(10 * np.log10(255.0**2 / mse))
    assert psnr_db(a[0, 0], a[0, 0]) == MAX_PSNR_DB
    with pytest.raises(ValueError, match="one shape"):
        psnr_db(a[0, 0], b[0, 0, :8])


def test_latent_l2_is_per_element():
    assert latent_l2(np.zeros((4, 2, 2)), np.full((4, 2, 2), 3.0)) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="one shape"):
        latent_l2(np.zeros((4, 2, 2)), np.zeros((4, 2, 3)))
