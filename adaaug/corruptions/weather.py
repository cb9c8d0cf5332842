"""Weather corruptions: snow, frost, fog, brightness, and spatter (see :mod:`.noise` for the signature).

Frost blends in one of ImageNet-C's frost photographs, packaged in ``adaaug/corruptions/frost/`` (their
source and licence are in the README there), read as the references read them (OpenCV, BGR → RGB).
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from ._common import blur, clipped_zoom, gray, im_motion_blur, plasma

_FROST_FILES = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")
_FROST_DRAWN = 5  # the references draw from the first five photographs


def snow(x: np.ndarray, c: tuple, rng: Any) -> np.ndarray:
    """``c = (mean, std, zoom, threshold, blur radius, blur sigma, image weight)``: a thresholded Gaussian
    layer, zoomed, motion-blurred at an angle in [-135°, -45°] (rounded, as ImageMagick's output), added
    with its 180° rotation to the image brightened towards grey."""
    x = x.astype(np.float32)
    n, h, w = x.shape[:3]
    layer = rng.normal(size=(n, h, w, 1), loc=c[0], scale=c[1])
    layer = clipped_zoom(layer, c[2])
    layer[layer < c[3]] = 0
    layer = (np.clip(layer, 0, 1) * 255).astype(np.uint8).astype(np.float64)
    angles = rng.uniform(-135, -45, size=n)
    layer = np.clip(np.rint(im_motion_blur(layer, c[4], c[5], angles)), 0, 255) / 255.0
    x = c[6] * x + (1 - c[6]) * np.maximum(x, gray(x) * 1.5 + 0.5)
    return np.clip(x + layer + np.rot90(layer, k=2, axes=(1, 2)), 0, 1) * 255


@lru_cache(maxsize=None)
def frost_textures(scale: float) -> tuple[np.ndarray, ...]:
    """The six frost photographs (RGB uint8), resized by ``scale`` (OpenCV's default bilinear) when not 1."""
    import cv2
    from importlib import resources

    folder = resources.files("adaaug.corruptions") / "frost"
    out = []
    for name in _FROST_FILES:
        data = np.frombuffer((folder / name).read_bytes(), np.uint8)
        img = cv2.imdecode(data, cv2.IMREAD_COLOR)  # what cv2.imread gives, from the packaged bytes
        if img is None:
            raise FileNotFoundError(f"frost texture {name} is unreadable; reinstall adaaug")
        if scale != 1:
            img = cv2.resize(img, (0, 0), fx=scale, fy=scale)
        out.append(np.ascontiguousarray(img[..., ::-1]))
    return tuple(out)


def frost_max_size(scale: float = 0.2) -> tuple[int, int]:
    """The largest ``(H, W)`` a crop fits strictly inside every texture the references draw from, with the
    textures resized by ``scale``: 62×104 at CIFAR-10-C's scale (0.2, the default), 314×526 at full size."""
    textures = frost_textures(scale)[:_FROST_DRAWN]
    return min(t.shape[0] for t in textures) - 1, min(t.shape[1] for t in textures) - 1


@lru_cache(maxsize=32)
def _enlarged(index: int, h: int, w: int) -> np.ndarray:
    """Full-size texture ``index`` enlarged to cover ``h×w`` as ``imagecorruptions`` does: by
    ``1.1·max(1, h/H, w/W)``, sides rounded up, bicubic."""
    import cv2

    tex = frost_textures(1.0)[index]
    factor = 1.1 * max(1.0, h / tex.shape[0], w / tex.shape[1])
    size = (int(math.ceil(tex.shape[1] * factor)), int(math.ceil(tex.shape[0] * factor)))
    return cv2.resize(tex, dsize=size, interpolation=cv2.INTER_CUBIC)


def frost(x: np.ndarray, c: tuple, rng: Any, scale: float = 0.2, enlarge: bool = False) -> np.ndarray:
    """``c = (image weight, frost weight)``: blend a random crop of one of five frost photographs.

    The photograph is drawn uniformly from the first five, resized by ``scale`` (CIFAR-10-C: 0.2), and
    a crop at a uniform position is taken, as the reference generators do; this needs the image to fit
    strictly inside the photograph. When it does not: with ``enlarge`` (ImageNet-C mode) the
    photograph is enlarged to cover the image as ``imagecorruptions`` does (see :func:`_enlarged`),
    so any size works; without it ``ValueError`` (sizes above :func:`frost_max_size`).
    """
    n, h, w = x.shape[:3]
    textures = frost_textures(scale)[:_FROST_DRAWN]
    if not enlarge:
        mh, mw = frost_max_size(scale)
        if h > mh or w > mw:
            raise ValueError(f"frost with CIFAR-10-C severities takes images of at most {mh}×{mw} (the frost "
                             f"textures are shrunk to a fifth), got {h}×{w}; use params='imagenet' for larger "
                             f"images (ImageNet-C severities, full-size textures, any size)")
    out = np.empty_like(x)
    for i in range(n):
        k = int(rng.integers(_FROST_DRAWN))
        tex = textures[k]
        if tex.shape[0] <= h or tex.shape[1] <= w:
            tex = _enlarged(k, h, w)
        top, left = rng.integers(0, tex.shape[0] - h), rng.integers(0, tex.shape[1] - w)
        out[i] = tex[top:top + h, left:left + w]
    return np.clip(c[0] * x * 255 + c[1] * out, 0, 255)


def fog(x: np.ndarray, c: tuple, rng: Any) -> np.ndarray:
    """``c = (strength, decay)``: add a plasma fractal (side: the next power of two ≥ max(H, W))."""
    n, h, w = x.shape[:3]
    mapsize = 1 << (max(h, w) - 1).bit_length()
    max_val = x.max(axis=(1, 2, 3), keepdims=True)
    x = x + c[0] * plasma(n, mapsize, c[1], rng)[:, :h, :w, None]
    return np.clip(x * max_val / (max_val + c[0]), 0, 1) * 255



def brightness(x: np.ndarray, c: float, rng: Any) -> np.ndarray:
    """Add ``c`` to the HSV value channel (skimage's HSV conversion)."""
    from skimage.color import hsv2rgb, rgb2hsv

    hsv = rgb2hsv(x)
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return np.clip(hsv2rgb(hsv), 0, 1) * 255


def spatter(x: np.ndarray, c: tuple, rng: Any) -> np.ndarray:
    """``c = (mean, std, sigma, threshold, strength, mud)``: water drops (``mud == 0``) or mud blots."""
    import cv2

    x = x.astype(np.float32)
    n = len(x)
    liquid = blur(rng.normal(size=x.shape[:3], loc=c[0], scale=c[1]), c[2])
    liquid[liquid < c[3]] = 0
    if c[5] == 0:  # water: pale turquoise streaks along the liquid's edges
        ker = np.float32([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
        colour = np.float32([175, 238, 238]) / 255
        out = np.empty_like(x)
        for i in range(n):
            lu8 = ((liquid[i] * 255).astype(np.int64) % 256).astype(np.uint8)  # the reference's uint8 wrap
            dist = cv2.distanceTransform(255 - cv2.Canny(lu8, 50, 150), cv2.DIST_L2, 5)
            _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
            dist = cv2.equalizeHist(cv2.blur(dist, (3, 3)).astype(np.uint8))
            dist = cv2.blur(cv2.filter2D(dist, cv2.CV_8U, ker), (3, 3)).astype(np.float32)
            m = lu8 * dist
            peak = m.max()
            m = m / peak * c[4] if peak > 0 else m
            out[i] = np.clip(x[i] + m[..., None] * colour, 0, 1)
        return out * 255
    m = blur(np.where(liquid > c[3], 1, 0).astype(np.float32), c[4])  # mud: brown blots
    m[m < 0.8] = 0
    colour = np.float32([63, 42, 20]) / 255 * m[..., None]
    return np.clip(x * (1 - m[..., None]) + colour, 0, 1) * 255
