"""Streaming SR: band-by-band output equals the previous whole-canvas result bit for bit, the
banded resizes equal PIL's whole-image resize, and banded quality equals whole-image quality."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.sr.infer import bicubic_bands, blend_profile, resize_bands, super_resolve_bands, tile_starts
from pipeline.sr.models import build_generator
from pipeline.sr.quality import QualityMeter, psnr_y, ssim_y


@pytest.fixture(scope="module")
def generator() -> torch.nn.Module:
    torch.manual_seed(0)
    g = build_generator(num_feat=8, num_block=1, scale=4)
    with torch.no_grad():
        for p in g.parameters():
            p.mul_(3.0)  # make the residual branch matter (basicsr initialises it at 0.1 scale)
    return g.eval()


@torch.no_grad()
def whole_canvas(model: torch.nn.Module, lr: np.ndarray, tile: int, overlap: int) -> np.ndarray:
    """The previous implementation: full-size float32 sum and weight canvases, one tile at a
    time in row-major order, then ``acc / wsum`` clamped and rounded to uint8."""
    s, (h, w) = int(model.upscale), lr.shape[:2]
    x = torch.from_numpy(lr).permute(2, 0, 1).float().div_(255)
    acc, wsum = torch.zeros(3, s * h, s * w), torch.zeros(1, s * h, s * w)
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    th, tw = min(tile, h), min(tile, w)
    for i, y in enumerate(ys):
        wy = blend_profile(s * th, s, overlap, i > 0, i < len(ys) - 1)
        for j, x0 in enumerate(xs):
            wx = blend_profile(s * tw, s, overlap, j > 0, j < len(xs) - 1)
            weight = wy[:, None] * wx[None, :]
            out = model(x[None, :, y:y + th, x0:x0 + tw])[0]
            acc[:, s * y:s * (y + th), s * x0:s * (x0 + tw)] += out * weight
            wsum[:, s * y:s * (y + th), s * x0:s * (x0 + tw)] += weight
    sr = (acc / wsum).clamp_(0, 1)
    return sr.mul(255).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def test_bands_equal_the_whole_canvas_result_bit_for_bit(generator):
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(45, 38), (23, 30), (16, 16)]]
    bands = list(super_resolve_bands(generator, imgs, tile=16, overlap=6, batch_size=5, device="cpu"))
    assert [b.image for b in bands] == sorted(b.image for b in bands)  # image after image
    assert len([b for b in bands if b.image == 0]) == len(tile_starts(45, 16, 6))  # one band per tile row
    for k, img in enumerate(imgs):
        mine = [b for b in bands if b.image == k]
        assert [b.y for b in mine] == list(np.cumsum([0] + [len(b.rows) for b in mine[:-1]]))
        assert mine[-1].last and not any(b.last for b in mine[:-1])
        out = np.concatenate([b.rows for b in mine])
        assert out.dtype == np.uint8 and np.array_equal(out, whole_canvas(generator, img, 16, 6))


@pytest.mark.parametrize(("src", "dst"), [((37, 29), (35, 31)), ((37, 29), (37, 27)), ((40, 30), (41, 30)),
                                          ((36, 40), (38, 43)), ((41, 39), (18, 15))])
def test_resize_bands_equal_the_whole_image_resize(src, dst):
    img = np.random.default_rng(1).integers(0, 256, (src[1], src[0], 3), dtype=np.uint8)
    ref = np.asarray(Image.fromarray(img).resize(dst, Image.Resampling.BICUBIC))
    cuts = [0, 1, 9, 10, 22, 26, src[1]]
    bands = (img[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True))
    out = list(resize_bands(bands, src, dst, rows=4))
    assert all(len(b) <= 4 for b in out) or src[1] == dst[1]
    assert np.array_equal(np.concatenate(out), ref)


def test_bicubic_bands_equal_the_whole_image_upscale():
    lr = np.random.default_rng(2).integers(0, 256, (13, 17, 3), dtype=np.uint8)
    ref = np.asarray(Image.fromarray(lr).resize((67, 53), Image.Resampling.BICUBIC))
    assert np.array_equal(np.concatenate(list(bicubic_bands(lr, (67, 53), rows=7))), ref)


def test_resize_bands_that_end_early_are_an_error():
    img = np.zeros((10, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="row bands end at row 5 of a 8x10 image"):
        list(resize_bands([img[:5]], (8, 10), (8, 12)))


def test_quality_by_bands_equals_whole_image_quality():
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 256, (70, 45, 3), dtype=np.uint8)
    img = np.clip(ref.astype(int) + rng.integers(-25, 26, ref.shape), 0, 255).astype(np.uint8)
    meter = QualityMeter(45, 70, crop=4)
    for a, b in [(0, 3), (3, 4), (4, 20), (20, 66), (66, 70)]:  # bands inside and across the crop
        meter.add(img[a:b], ref[a:b])
    whole = _whole_image_ssim(img, ref, 4)
    assert meter.ssim() == pytest.approx(whole, abs=1e-12)
    ya, yb = _y(img)[4:-4, 4:-4], _y(ref)[4:-4, 4:-4]
    assert meter.psnr() == pytest.approx(10 * np.log10(255**2 / np.mean((ya - yb) ** 2)), abs=1e-9)
    assert (ssim_y(img, ref), psnr_y(img, ref)) == pytest.approx((meter.ssim(), meter.psnr()), abs=1e-12)


def test_quality_meter_refuses_an_incomplete_or_misfit_image():
    meter = QualityMeter(20, 30, crop=2)
    meter.add(np.zeros((10, 20, 3), np.uint8), np.zeros((10, 20, 3), np.uint8))
    with pytest.raises(ValueError, match="after 10 of 30 rows"):
        meter.psnr()
    with pytest.raises(ValueError, match="does not fit a 20x30 image"):
        meter.add(np.zeros((25, 20, 3), np.uint8), np.zeros((25, 20, 3), np.uint8))
    with pytest.raises(ValueError, match="empty after cropping"):
        QualityMeter(8, 30, crop=4)


def _y(img: np.ndarray) -> np.ndarray:
    x = img.astype(np.float64)
    return 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0


def _whole_image_ssim(img: np.ndarray, ref: np.ndarray, crop: int) -> float:
    """SSIM over the whole cropped image at once (2-D Gaussian window, 'valid'), independent of the module."""
    import torch.nn.functional as F

    a = torch.from_numpy(_y(img)[crop:-crop, crop:-crop])[None, None]
    b = torch.from_numpy(_y(ref)[crop:-crop, crop:-crop])[None, None]
    x = torch.arange(11, dtype=torch.float64) - 5
    g1 = torch.exp(-(x**2) / (2 * 1.5**2))
    g = (g1[:, None] * g1[None, :] / g1.sum() ** 2)[None, None]
    mu_a, mu_b = F.conv2d(a, g), F.conv2d(b, g)
    s_aa, s_bb = F.conv2d(a * a, g) - mu_a**2, F.conv2d(b * b, g) - mu_b**2
    s_ab = F.conv2d(a * b, g) - mu_a * mu_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    return float((((2 * mu_a * mu_b + c1) * (2 * s_ab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (s_aa + s_bb + c2))).mean())


def test_stage_outputs_equal_the_whole_image_path(synthetic_pair, tmp_path):
    """make_sr_sets (bands all the way to the PNG files) against whole images: SR via the
    whole-canvas result resized by PIL, bicubic by PIL, quality on whole arrays."""
    from pipeline.data.images import read_image
    from pipeline.data.schema import images_dir, read_records
    from pipeline.sr.config import SRInferConfig
    from pipeline.sr.sets import make_sr_sets

    hr_dir, lr_dir = synthetic_pair  # sizes not multiples of 4: every SR image is resized
    torch.manual_seed(0)
    model = build_generator(8, 1)
    torch.save({"params": model.state_dict()}, tmp_path / "g.pth")
    report = make_sr_sets(lr_dir, hr_dir, {"sr": (tmp_path / "g.pth", tmp_path / "sr")}, tmp_path / "bic", None, None,
                          SRInferConfig(tile=24, tile_overlap=8, splits=["test"]), device="cpu")
    scores = []
    for r in read_records(hr_dir)[0]:
        if r.split != "test":
            continue
        lr, hr = read_image(images_dir(lr_dir) / r.file_name), read_image(images_dir(hr_dir) / r.file_name)
        sr = np.asarray(Image.fromarray(whole_canvas(model, lr, 24, 8)).resize((r.width, r.height), Image.Resampling.BICUBIC))
        bic = np.asarray(Image.fromarray(lr).resize((r.width, r.height), Image.Resampling.BICUBIC))
        assert np.array_equal(read_image(images_dir(tmp_path / "sr") / r.file_name), sr)
        assert np.array_equal(read_image(images_dir(tmp_path / "bic") / r.file_name), bic)
        scores.append((psnr_y(sr, hr), ssim_y(sr, hr), psnr_y(bic, hr), ssim_y(bic, hr)))
    means = np.mean(scores, axis=0)
    got = (report.psnr["sr"], report.ssim["sr"], report.psnr["bicubic"], report.ssim["bicubic"])
    assert got == pytest.approx(means, abs=1e-9)
