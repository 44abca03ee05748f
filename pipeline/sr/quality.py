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

import numpy as np
import torch
import torch.nn.functional as F


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8/float RGB in [0, 255] -> (H, W) float64 BT.601 luma in [16, 235]."""
    x = np.asarray(img, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {x.shape}")
    return 16.0 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255.0


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """'valid' 2-D Gaussian filtering of (1, 1, H, W), separably (the window is an outer product)."""
    return F.conv2d(F.conv2d(x, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))


_WINDOW = 11
_BAND = 256  # rows per band when scoring whole arrays


def _ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM map ('valid') of two (1, 1, H, W) float64 Y images."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = _gaussian_1d(_WINDOW)
    mu_a, mu_b = _filter(a, g), _filter(b, g)
    s_aa = _filter(a * a, g) - mu_a**2
    s_bb = _filter(b * b, g) - mu_b**2
    s_ab = _filter(a * b, g) - mu_a * mu_b
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
            ssim_map = _ssim_map(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None])
            self.ssim_sum += float(ssim_map.sum())
            self.ssim_count += ssim_map.numel()
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
    """A meter fed with whole arrays, ``_BAND`` rows at a time."""
    if img.shape != ref.shape:
        raise ValueError(f"image shapes differ: {img.shape} vs {ref.shape}")
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {img.shape}")
    meter = QualityMeter(img.shape[1], img.shape[0], crop)
    for y in range(0, img.shape[0], _BAND):
        meter.add(img[y:y + _BAND], ref[y:y + _BAND])
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
