import numpy as np
import pytest
import torch

from pipeline.sr.infer import bicubic_upscale, blend_profile, super_resolve, tile_starts, to_uint8
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


def test_output_shape_and_tiled_equals_untiled(generator):
    imgs = _images(0, [(47, 61), (20, 33)])
    whole = list(super_resolve(generator, imgs, tile=256, overlap=0, batch_size=1, device="cpu"))
    # overlap/4 = 8 LR px >= receptive-field radius of a 2-block MSRResNet (7 px)
    tiled = list(super_resolve(generator, imgs, tile=40, overlap=32, batch_size=3, device="cpu"))
    for img, a, b in zip(imgs, whole, tiled, strict=True):
        assert a.shape == b.shape == (3, 4 * img.shape[0], 4 * img.shape[1])
        assert float((a - b).abs().max()) < 1e-4
    # a small overlap still covers every pixel and stays close (blended seams)
    rough = list(super_resolve(generator, imgs[:1], tile=24, overlap=4, batch_size=8, device="cpu"))[0]
    assert rough.shape == whole[0].shape and float((rough - whole[0]).abs().mean()) < 0.02


def test_batching_across_images_gives_the_same_result(generator):
    imgs = _images(1, [(30, 30), (30, 30), (30, 30), (25, 31)])
    one = list(super_resolve(generator, imgs, tile=64, overlap=8, batch_size=1, device="cpu"))
    many = list(super_resolve(generator, imgs, tile=64, overlap=8, batch_size=4, device="cpu"))
    assert len(one) == len(many) == 4
    for a, b in zip(one, many, strict=True):
        assert float((a - b).abs().max()) < 1e-5


def test_to_uint8_resizes_to_hr_size():
    sr = torch.rand(3, 4 * 25, 4 * 32)  # LR 32x25 from an HR of 129x98 (round(129/4)=32)
    out = to_uint8(sr, (129, 98))
    assert out.shape == (98, 129, 3) and out.dtype == np.uint8
    assert to_uint8(sr).shape == (100, 128, 3)
    assert bicubic_upscale(out[:10, :12], (48, 40)).shape == (40, 48, 3)


def test_bad_tiling_arguments(generator):
    with pytest.raises(ValueError, match="overlap"):
        list(super_resolve(generator, _images(0, [(8, 8)]), tile=16, overlap=16))
