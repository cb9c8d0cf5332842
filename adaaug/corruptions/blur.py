"""Blur corruptions: Gaussian, glass, defocus, motion and zoom blur (see :mod:`.noise` for the signature)."""
from __future__ import annotations

from typing import Any

import numpy as np

from ._common import blur, clipped_zoom, disk, im_motion_blur, per_image


def gaussian_blur(x: np.ndarray, c: float, rng: Any) -> np.ndarray:
    """Gaussian blur of standard deviation ``c`` pixels."""
    return np.clip(blur(x, c), 0, 1) * 255


def glass_blur(x: np.ndarray, c: tuple, rng: Any) -> np.ndarray:
    """``c = (sigma, delta, iterations)``: blur, move pixels locally ``iterations`` times, blur again.

    The reference's "swap" of 3-channel pixels is in effect a copy ``x[h, w] = x[h', w']`` (numpy
    views); that behaviour, which produced the released datasets, is kept. Pixels are visited from the
    bottom-right, ``delta`` away from the top/left border and ``delta - 1`` from the bottom/right one
    (the reference's loop bounds, written for its image side and generalised to H and W here).
    """
    sigma, delta, iterations = c
    y = (blur(x, sigma) * 255).astype(np.uint8)
    n, h, w = y.shape[:3]
    idx = np.arange(n)
    cols = np.arange(w - delta, delta, -1)
    for _ in range(iterations):
        for row in range(h - delta, delta, -1):
            d = rng.integers(-delta, delta, size=(len(cols), 2, n))  # (dx, dy) per pixel and image
            for j, col in enumerate(cols):
                y[:, row, col] = y[idx, row + d[j, 1], col + d[j, 0]]
    return np.clip(blur(y / 255.0, sigma), 0, 1) * 255


def defocus_blur(x: np.ndarray, c: tuple, rng: Any) -> np.ndarray:
    """``c = (radius, alias_blur)``: convolution with an anti-aliased disk (OpenCV ``filter2D``)."""
    import cv2

    kernel = disk(c[0], c[1])
    return np.clip(per_image(x, lambda img: cv2.filter2D(img, -1, kernel)), 0, 1) * 255


def motion_blur(x: np.ndarray, c: tuple, rng: Any) -> np.ndarray:
    """``c = (radius, sigma)``: ImageMagick's motion blur at a uniform angle in [-45°, 45°], rounded."""
    angles = rng.uniform(-45, 45, size=len(x))
    return np.clip(np.rint(im_motion_blur(x * 255, c[0], c[1], angles)), 0, 255)


def zoom_blur(x: np.ndarray, c: tuple, rng: Any) -> np.ndarray:
    """``c = (start, stop, step)``: the mean of the image and its centre zooms by ``numpy.arange(*c)``."""
    x = x.astype(np.float32)
    factors = np.arange(*c)
    out = np.zeros_like(x)
    for f in factors:
        out += clipped_zoom(x, f)
    return np.clip((x + out) / (len(factors) + 1), 0, 1) * 255
