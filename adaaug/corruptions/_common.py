"""Helpers shared by the corruptions: batched (``N×H×W×C``) ports of the reference generators' helpers."""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np


def blur(x: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """``skimage.filters.gaussian`` (same defaults) over the spatial axes 1, 2 of a batch."""
    from scipy.ndimage import gaussian_filter

    sigmas = (0, sigma, sigma) + (0,) * (x.ndim - 3)
    return gaussian_filter(x, sigma=sigmas, mode=mode, truncate=truncate)


def _zoom_matrix(n_in: int, factor: float) -> np.ndarray:
    """Rows of ``scipy.ndimage.zoom(order=1)`` along one axis of length ``n_in`` as a matrix."""
    n_out = int(round(n_in * factor))
    coords = np.arange(n_out) * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
    lo = np.clip(np.floor(coords).astype(np.int64), 0, n_in - 1)
    frac = coords - lo
    matrix = np.zeros((n_out, n_in))
    np.add.at(matrix, (np.arange(n_out), lo), 1 - frac)
    np.add.at(matrix, (np.arange(n_out), np.minimum(lo + 1, n_in - 1)), frac)
    return matrix


def clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """Centre crop of ``x`` (``N×H×W×C``) zoomed by ``factor`` (bilinear, as scipy's ``zoom(order=1)``),
    trimmed back to ``H×W`` (the reference's ``clipped_zoom``, as two small matrix products)."""
    h, w = x.shape[1:3]
    ch, cw = int(np.ceil(h / factor)), int(np.ceil(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    rows, cols = _zoom_matrix(ch, factor), _zoom_matrix(cw, factor)
    th, tw = (rows.shape[0] - h) // 2, (cols.shape[0] - w) // 2
    rows, cols = rows[th:th + h], cols[tw:tw + w]
    crop = np.ascontiguousarray(np.moveaxis(x[:, top:top + ch, left:left + cw], -1, 1))  # N×C×ch×cw
    return np.moveaxis(rows.astype(x.dtype) @ crop @ cols.T.astype(x.dtype), 1, -1)  # in x's precision


def im_motion_blur(x: np.ndarray, radius: int, sigma: float, angles: np.ndarray) -> np.ndarray:
    """ImageMagick's motion blur (kernel 2·radius+1, one-sided Gaussian, edge pixels), one angle per image,
    as ``imagecorruptions`` emulates it (the reference generators call ImageMagick through Wand)."""
    n, h, w = x.shape[:3]
    width = 2 * int(math.ceil(radius)) + 1
    kernel = np.exp(-np.arange(width) ** 2 / (2 * sigma ** 2))
    kernel /= kernel.sum()
    rad = np.deg2rad(angles)[:, None]
    steps = np.arange(width)[None]
    oy = np.ceil(steps * np.sin(rad) - 0.5).astype(np.int64)  # N×width row offsets
    ox = np.ceil(steps * np.cos(rad) - 0.5).astype(np.int64)
    valid = np.cumprod((np.abs(oy) < h) & (np.abs(ox) < w), axis=1).astype(bool)  # stop at the border
    rows = np.clip(np.arange(h)[None, None] + oy[..., None], 0, h - 1)  # N×width×H
    cols = np.clip(np.arange(w)[None, None] + ox[..., None], 0, w - 1)
    idx = np.arange(n)[:, None, None]
    out = np.zeros(x.shape, dtype=np.float64)
    for i in range(width):
        weight = (kernel[i] * valid[:, i]).reshape((n,) + (1,) * (x.ndim - 1))
        out += weight * x[idx, rows[:, i, :, None], cols[:, i, None, :]]
    return out


def plasma(n: int, mapsize: int, decay: float, rng: Any) -> np.ndarray:
    """Diamond-square height maps ``n×mapsize×mapsize`` in [0, 1] (reference ``plasma_fractal``)."""
    m = np.zeros((n, mapsize, mapsize))
    step, wibble = mapsize, 100.0

    def wmean(a: np.ndarray) -> np.ndarray:
        return a / 4 + wibble * rng.uniform(-wibble, wibble, a.shape)

    while step >= 2:
        half = step // 2
        corner = m[:, 0::step, 0::step]
        sq = corner + np.roll(corner, -1, axis=1)
        sq = sq + np.roll(sq, -1, axis=2)
        m[:, half::step, half::step] = wmean(sq)
        dr, ul = m[:, half::step, half::step], m[:, 0::step, 0::step]
        m[:, 0::step, half::step] = wmean(dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=2))
        m[:, half::step, 0::step] = wmean(dr + np.roll(dr, 1, axis=2) + ul + np.roll(ul, -1, axis=1))
        step //= 2
        wibble /= decay
    m -= m.min(axis=(1, 2), keepdims=True)
    return m / m.max(axis=(1, 2), keepdims=True)


def disk(radius: float, alias_blur: float) -> np.ndarray:
    """Anti-aliased disk kernel (reference ``disk``)."""
    import cv2

    size, ksize = (8, (3, 3)) if radius <= 8 else (int(radius), (5, 5))
    grid = np.arange(-size, size + 1)
    xx, yy = np.meshgrid(grid, grid)
    kernel = ((xx ** 2 + yy ** 2) <= radius ** 2).astype(np.float32)
    kernel /= kernel.sum()
    return cv2.GaussianBlur(kernel, ksize=ksize, sigmaX=alias_blur)


def per_image(x: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    return np.stack([fn(img) for img in x])


def gray(x: np.ndarray) -> np.ndarray:
    """OpenCV's RGB→gray weights, keeping a trailing channel axis."""
    return (x @ np.array([0.299, 0.587, 0.114], dtype=x.dtype))[..., None]


def pil_each(x: np.ndarray, fn: Callable[[Any], Any]) -> np.ndarray:
    """``fn`` on each image as a PIL image (``x`` in [0, 1], rounded to uint8 first); float64 0..255 back."""
    from PIL import Image

    u8 = np.rint(x * 255).astype(np.uint8)
    return per_image(u8, lambda img: np.asarray(fn(Image.fromarray(img)), dtype=np.float64))
