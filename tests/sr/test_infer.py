import numpy as np
import pytest
import torch

from pipeline.sr.infer import bicubic_bands, blend_profile, super_resolve, tile_starts
from pipeline.sr.models import build_generator


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    g = build_generator(num_feat=8, num_block=2, scale=4)
    # Make the residual branch matter (basicsr initialises it at 0.1 scale).
    with torch.no_grad():
        for p in g.parameters():
            p.mul_(3.0)
    return g.eval()


def _images(seed, shapes):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in shapes]


def test_tile_starts_cover_and_end_at_the_border():
    assert tile_starts(10, 16, 4) == [0]
    starts = tile_starts(100, 32, 8)
    assert starts[0] == 0 and starts[-1] == 68 and all(b - a <= 24 for a, b in zip(starts[:-1], starts[1:], strict=True))


def test_blend_weights_sum_to_one_in_a_nominal_overlap():
    s, t, o = 4, 16, 8
    a = blend_profile(s * t, s, o, left=False, right=True)
    b = blend_profile(s * t, s, o, left=True, right=False)
    step = s * (t - o)
    total = torch.zeros(s * (2 * t - o))
    total[: s * t] += a
    total[step:] += b
    assert torch.allclose(total, torch.ones_like(total))
    assert a[-s * o // 4:].eq(0).all() and b[: s * o // 4].eq(0).all()  # guard bands


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int))


def test_output_shape_and_tiled_equals_untiled(generator):
    imgs = _images(0, [(47, 61), (20, 33)])
    whole = list(super_resolve(generator, imgs, tile=256, overlap=0, batch_size=1, device="cpu"))
    # overlap/4 = 8 LR px >= receptive-field radius of a 2-block MSRResNet (7 px)
    tiled = list(super_resolve(generator, imgs, tile=40, overlap=32, batch_size=3, device="cpu"))
    for img, a, b in zip(imgs, whole, tiled, strict=True):
        assert a.shape == b.shape == (4 * img.shape[0], 4 * img.shape[1], 3) and a.dtype == np.uint8
        assert _diff(a, b).max() <= 1  # equal up to float rounding before the uint8 rounding
    # a small overlap still covers every pixel and stays close (blended seams)
    rough = list(super_resolve(generator, imgs[:1], tile=24, overlap=4, batch_size=8, device="cpu"))[0]
    assert rough.shape == whole[0].shape and _diff(rough, whole[0]).mean() < 0.02 * 255


def test_batching_across_images_gives_the_same_result(generator):
    imgs = _images(1, [(30, 30), (30, 30), (30, 30), (25, 31)])
    one = list(super_resolve(generator, imgs, tile=64, overlap=8, batch_size=1, device="cpu"))
    many = list(super_resolve(generator, imgs, tile=64, overlap=8, batch_size=4, device="cpu"))
    assert len(one) == len(many) == 4
    for a, b in zip(one, many, strict=True):
        assert _diff(a, b).max() <= 1


def test_bicubic_bands_make_the_hr_size():
    lr = _images(2, [(10, 12)])[0]
    assert np.concatenate(list(bicubic_bands(lr, (48, 40)))).shape == (40, 48, 3)


def test_bad_tiling_arguments(generator):
    with pytest.raises(ValueError, match="overlap"):
        list(super_resolve(generator, _images(0, [(8, 8)]), tile=16, overlap=16))
    with pytest.raises(ValueError, match=r"image 1: expected \(h, w, 3\) uint8"):
        list(super_resolve(generator, [_images(0, [(8, 8)])[0], np.zeros((0, 5, 3), np.uint8)]))
