"""Band-streamed image encoding: PNG decodes to the exact pixels, JPEG as write_image does."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.data.bandwriter import write_image_bands
from pipeline.data.images import ImageError, read_image, write_image


def _image(h: int, w: int) -> np.ndarray:
    """Smooth gradients plus noise: every PNG filter type wins on some rows."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 3 + y, y * 2, (x * y) % 251], -1) + rng.integers(0, 6, (h, w, 3))
    img[h // 2:, : w // 3] = rng.integers(0, 256, (h - h // 2, w // 3, 3))
    return (img % 256).astype(np.uint8)


def _bands(img: np.ndarray, sizes: list[int]):
    y = 0
    for n in sizes:
        yield img[y:y + n]
        y += n


def test_png_from_uneven_bands_decodes_to_the_same_pixels(tmp_path):
    img = _image(77, 53)
    write_image_bands(tmp_path / "a.png", (53, 77), _bands(img, [1, 40, 3, 33]))
    assert np.array_equal(read_image(tmp_path / "a.png"), img)
    with Image.open(tmp_path / "a.png") as im:
        im.verify()  # chunk CRCs and structure


def test_jpeg_equals_write_image(tmp_path):
    img = _image(50, 61)
    write_image_bands(tmp_path / "a.jpg", (61, 50), _bands(img, [20, 30]))
    write_image(tmp_path / "b.jpg", img)
    assert (tmp_path / "a.jpg").read_bytes() == (tmp_path / "b.jpg").read_bytes()


@pytest.mark.parametrize("name", ["a.png", "a.jpg"])
def test_too_few_or_wrong_rows_are_one_line_errors_and_leave_nothing(tmp_path, name):
    img = _image(20, 10)
    with pytest.raises(ImageError, match=rf"{name}: bands end at row 15 of 20"):
        write_image_bands(tmp_path / name, (10, 20), _bands(img, [15]))
    with pytest.raises(ImageError, match=r"more than the image's 10 rows"):
        write_image_bands(tmp_path / name, (10, 10), _bands(img, [8, 8]))
    with pytest.raises(ImageError, match=r"is not \(n, 12, 3\) uint8"):
        write_image_bands(tmp_path / name, (12, 20), _bands(img, [20]))
    assert list(tmp_path.iterdir()) == []
