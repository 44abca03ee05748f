"""PSNR and SSIM on the Y channel with a ``scale``-pixel border cropped (the usual SR
convention, as basicsr's ``calculate_psnr``/``calculate_ssim`` with ``test_y_channel``).

Y is ITU-R BT.601 luma of 8-bit RGB as MATLAB's ``rgb2ycbcr``:
``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` (values in [16, 235]).
SSIM (Wang et al. 2004): 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, L 255,
'valid' filtering, mean over the map.
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


def _prepare(a: np.ndarray, b: np.ndarray, crop: int) -> tuple[np.ndarray, np.ndarray]:
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    ya, yb = rgb_to_y(a), rgb_to_y(b)
    if crop:
        ya, yb = ya[crop:-crop, crop:-crop], yb[crop:-crop, crop:-crop]
    if ya.size == 0:
        raise ValueError(f"image {a.shape} is empty after cropping a {crop}-pixel border")
    return ya, yb


def psnr_y(img: np.ndarray, ref: np.ndarray, crop: int = 4) -> float:
    """PSNR (dB) of Y channels; ``inf`` for identical images."""
    ya, yb = _prepare(img, ref, crop)
    mse = float(np.mean((ya - yb) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """'valid' 2-D Gaussian filtering of (1, 1, H, W), separably (the window is an outer product)."""
    return F.conv2d(F.conv2d(x, g.view(1, 1, -1, 1)), g.view(1, 1, 1, -1))


def ssim_y(img: np.ndarray, ref: np.ndarray, crop: int = 4) -> float:
    """Mean SSIM of Y channels (1.0 for identical images); needs >= 11 px after cropping."""
    ya, yb = _prepare(img, ref, crop)
    if min(ya.shape) < 11:
        raise ValueError(f"SSIM needs at least 11x11 pixels after cropping, got {ya.shape}")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = _gaussian_1d()
    a = torch.from_numpy(ya)[None, None]
    b = torch.from_numpy(yb)[None, None]
    mu_a, mu_b = _filter(a, g), _filter(b, g)
    s_aa = _filter(a * a, g) - mu_a**2
    s_bb = _filter(b * b, g) - mu_b**2
    s_ab = _filter(a * b, g) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * s_ab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (s_aa + s_bb + c2))
    return float(ssim_map.mean())


def summarize(values: list[float]) -> float:
    """Mean over images (the SR-paper convention); identical images (inf dB) make it inf."""
    return float(np.mean(values)) if values else float("nan")
