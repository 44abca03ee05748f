import math

import numpy as np
import pytest

from pipeline.sr.basicsr_compat import import_basicsr
from pipeline.sr.quality import psnr_y, rgb_to_y, ssim_y


def test_identical_images_give_inf_and_one():
    img = np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    assert psnr_y(img, img) == math.inf
    assert ssim_y(img, img) == pytest.approx(1.0, abs=1e-12)


def test_psnr_of_known_mse():
    # A grey offset of d in all channels shifts Y by d * (65.481 + 128.553 + 24.966) / 255 = d * 219/255.
    ref = np.full((30, 30, 3), 100, np.uint8)
    img = ref + np.uint8(10)
    mse = (10 * 219 / 255) ** 2
    assert psnr_y(img, ref) == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-9)
    assert rgb_to_y(np.array([[[255, 255, 255]]]))[0, 0] == pytest.approx(235.0)


def test_border_is_cropped():
    ref = np.full((30, 30, 3), 100, np.uint8)
    img = ref.copy()
    img[:4] = 0  # damage only the 4-pixel border
    assert psnr_y(img, ref, crop=4) == math.inf
    assert psnr_y(img, ref, crop=0) < 30


def test_matches_basicsr_reference():
    import_basicsr()
    from basicsr.metrics.psnr_ssim import calculate_psnr, calculate_ssim

    rng = np.random.default_rng(1)
    ref = rng.integers(0, 256, (64, 56, 3), dtype=np.uint8)
    img = np.clip(ref.astype(int) + rng.integers(-20, 21, ref.shape), 0, 255).astype(np.uint8)
    bgr = (img[..., ::-1].astype(np.float64), ref[..., ::-1].astype(np.float64))  # basicsr takes BGR
    assert psnr_y(img, ref, 4) == pytest.approx(calculate_psnr(*bgr, crop_border=4, test_y_channel=True), abs=1e-6)
    assert ssim_y(img, ref, 4) == pytest.approx(calculate_ssim(*bgr, crop_border=4, test_y_channel=True), abs=1e-6)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr_y(np.zeros((20, 20, 3), np.uint8), np.zeros((20, 21, 3), np.uint8))
