"""PSNR and SSIM of uint8 pictures, against hand-computed values and their known properties."""

import numpy as np
import pytest

from model.image_metrics import ssim
from robot_io.images import MAX_PSNR_DB, psnr


def pictures(seed=0, shape=(2, 32, 32, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_psnr_matches_the_formula_per_picture():
    a = np.full((2, 16, 16, 3), 100, np.uint8)
    b = a.copy()
    b[0] += 10  # every pixel off by 10 -> MSE 100
    b[1, :8] += 20  # half the pixels off by 20 -> MSE 200
    np.testing.assert_allclose(psnr(b, a), [10 * np.log10(255**2 / 100), 10 * np.log10(255**2 / 200)])
    assert psnr(a, a).tolist() == [MAX_PSNR_DB, MAX_PSNR_DB]


def test_ssim_is_one_for_identical_pictures_and_falls_with_noise():
    clean = pictures()
    noisy = np.clip(clean.astype(int) + np.random.default_rng(1).normal(0, 40, clean.shape), 0, 255).astype(np.uint8)
    np.testing.assert_allclose(ssim(clean, clean), 1.0)
    scores = ssim(noisy, clean)
    assert scores.shape == (2,) and (scores < 0.9).all()
    np.testing.assert_allclose(ssim(clean, noisy), scores)  # symmetric


def test_ssim_sees_structure_that_psnr_does_not():
    """A brightness shift keeps the structure (high SSIM); noise of the same MSE destroys it."""
    base = np.tile(np.linspace(40, 200, 32, dtype=np.uint8)[None, :, None], (32, 1, 3))[None]
    shifted = base + 10
    noise = np.random.default_rng(2).choice([-10, 10], base.shape)
    noisy = (base.astype(int) + noise).astype(np.uint8)
    np.testing.assert_allclose(psnr(shifted, base), psnr(noisy, base))
    assert ssim(shifted, base)[0] > 0.95 > ssim(noisy, base)[0]


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="one shape"):
        psnr(pictures(shape=(1, 16, 16, 3)), pictures(shape=(1, 16, 17, 3)))
    with pytest.raises(ValueError, match="at least 11"):
        ssim(pictures(shape=(1, 8, 8, 3)), pictures(shape=(1, 8, 8, 3)))
