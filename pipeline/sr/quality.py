"""PSNR and SSIM on the Y channel with a ``scale``-pixel border cropped (the usual SR
convention, as basicsr's ``calculate_psnr``/``calculate_ssim`` with ``test_y_channel``).

Y is ITU-R BT.601 luma of 8-bit RGB as MATLAB's ``rgb2ycbcr``:
``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` (values in [16, 235]).
SSIM (Wang et al. 2004): 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, L 255,
'valid' filtering, mean over the map.

Both are computed over row bands (:class:`QualityMeter`), so memory grows with the band,
not the image: PSNR from the summed squared error, SSIM from map sums over bands that
carry the previous 10 rows (the window's halo), which gives the same map as the whole
image.  :func:`psnr_y` and :func:`ssim_y` score whole arrays the same way.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8/float RGB in [0, 255] -> (H, W) float64 BT.601 luma in [16, 235]."""
    x = np.asarray(img, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {x.shape}")
    return 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


_WINDOW = 11
_GAUSS = _gaussian_1d(_WINDOW)
_BAND = 64  # rows scored at once: float64 temporaries of about 12 x (64 + 10) x W x 8 bytes


def _filter(x: np.ndarray) -> np.ndarray:
    """'valid' 2-D Gaussian filtering of an (H, W) float64 array, separably (the window is an
    outer product; OpenCV's ``sepFilter2D``, as basicsr filters with OpenCV)."""
    r = _WINDOW // 2
    return cv2.sepFilter2D(x, cv2.CV_64F, _GAUSS, _GAUSS, borderType=cv2.BORDER_REFLECT)[r:-r, r:-r]


def _ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """SSIM map ('valid') of two (H, W) float64 Y images."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = _filter(a), _filter(b)
    s_aa = _filter(a * a) - mu_a**2
    s_bb = _filter(b * b) - mu_b**2
    s_ab = _filter(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * s_ab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (s_aa + s_bb + c2))


class QualityMeter:
    """PSNR and SSIM of an image against its reference, both fed as consecutive row bands.

    Args:
        width, height: the full image size in pixels.
        crop: border (pixels) left out on every side.
    """

    def __init__(self, width: int, height: int, crop: int = 4) -> None:
        self.width, self.height, self.crop = width, height, crop
        self.cols = width - 2 * crop
        if self.cols <= 0 or height - 2 * crop <= 0:
            raise ValueError(f"image ({height}, {width}) is empty after cropping a {crop}-pixel border")
        self.rows = 0  # rows received
        self.sse, self.count = 0.0, 0
        self.ssim_sum, self.ssim_count = 0.0, 0
        self.halo = (np.empty((0, self.cols)), np.empty((0, self.cols)))  # last rows for the SSIM window

    def add(self, img: np.ndarray, ref: np.ndarray) -> None:
        """Score the next rows: (n, width, 3) RGB bands of the image and of the reference."""
        if img.shape != ref.shape:
            raise ValueError(f"image shapes differ: {img.shape} vs {ref.shape}")
        if img.ndim != 3 or img.shape[1] != self.width or self.rows + len(img) > self.height:
            raise ValueError(f"band {img.shape} at row {self.rows} does not fit a {self.width}x{self.height} image")
        for y in range(0, len(img), _BAND):
            self._add(img[y:y + _BAND], ref[y:y + _BAND])

    def _add(self, img: np.ndarray, ref: np.ndarray) -> None:
        top, self.rows = self.rows, self.rows + len(img)
        keep = slice(max(0, self.crop - top), max(0, min(len(img), self.height - self.crop - top)))
        ya = rgb_to_y(img[keep, self.crop:self.width - self.crop])
        yb = rgb_to_y(ref[keep, self.crop:self.width - self.crop])
        if len(ya) == 0:
            return
        self.sse += float(np.sum((ya - yb) ** 2))
        self.count += ya.size
        a, b = np.concatenate([self.halo[0], ya]), np.concatenate([self.halo[1], yb])
        if len(a) >= _WINDOW and self.cols >= _WINDOW:
            ssim_map = _ssim_map(a, b)
            self.ssim_sum += float(ssim_map.sum())
            self.ssim_count += ssim_map.size
        self.halo = (a[-(_WINDOW - 1):], b[-(_WINDOW - 1):])

    def _complete(self) -> None:
        if self.rows != self.height:
            raise ValueError(f"quality asked after {self.rows} of {self.height} rows")

    def psnr(self) -> float:
        """PSNR (dB) of the Y channels; ``inf`` for identical images."""
        self._complete()
        mse = self.sse / self.count
        return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)

    def ssim(self) -> float:
        """Mean SSIM of the Y channels (1.0 for identical images); needs >= 11 px after cropping."""
        self._complete()
        if self.ssim_count == 0:
            shape = (self.height - 2 * self.crop, self.cols)
            raise ValueError(f"SSIM needs at least 11x11 pixels after cropping, got {shape}")
        return self.ssim_sum / self.ssim_count


def _meter(img: np.ndarray, ref: np.ndarray, crop: int) -> QualityMeter:
    """A meter fed with whole arrays (scored ``_BAND`` rows at a time)."""
    if img.shape != ref.shape:
        raise ValueError(f"image shapes differ: {img.shape} vs {ref.shape}")
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {img.shape}")
    meter = QualityMeter(img.shape[1], img.shape[0], crop)
    meter.add(img, ref)
    return meter


def psnr_y(img: np.ndarray, ref: np.ndarray, crop: int = 4) -> float:
    """PSNR (dB) of Y channels; ``inf`` for identical images."""
    return _meter(img, ref, crop).psnr()


def ssim_y(img: np.ndarray, ref: np.ndarray, crop: int = 4) -> float:
    """Mean SSIM of Y channels (1.0 for identical images); needs >= 11 px after cropping."""
    return _meter(img, ref, crop).ssim()


def summarize(values: list[float]) -> float:
    """Mean over images (the SR-paper convention); identical images (inf dB) make it inf."""
    return float(np.mean(values)) if values else float("nan")
