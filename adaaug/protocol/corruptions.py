"""The 19 common corruptions of Hendrycks & Dietterich (ICLR 2019), batched and seeded.

``corrupt(images, name, severity, params=..., rng=...)`` maps a uint8 batch ``N×H×W×3``
(values 0..255) to a corrupted uint8 batch of the same shape.

Two parameter sets:

- ``params="cifar"``: CIFAR-10-C's severities, transcribed from ``make_cifar_c.py`` of
  github.com/hendrycks/robustness (``ImageNet-C/create_c/``). ``imagecorruptions`` has only the
  ImageNet-C values, so every corruption is written here, batched over images and driven by a
  ``numpy.random.Generator``. What is hand-written (all 19 in this mode): the noises (impulse noise
  uses ``skimage.util.random_noise``), Gaussian and glass blur (scipy's ``gaussian_filter``, the
  filter behind ``skimage.filters.gaussian``), defocus blur (OpenCV ``filter2D``), motion blur (a
  batched port of ImageMagick's ``MotionBlurImage`` as emulated by ``imagecorruptions``, since
  ImageMagick is not used), zoom blur (scipy's bilinear ``zoom`` as two matrix products), snow, frost
  (ImageNet-C's frost textures, packaged in ``adaaug/protocol/frost/`` with their licence), fog
  (diamond-square plasma), brightness / saturate (skimage HSV), contrast, elastic transform (OpenCV affine + scipy ``map_coordinates``), pixelate and JPEG
  (Pillow), spatter (OpenCV).
- ``params="imagenet"``: ImageNet-C's severities from ``imagecorruptions`` (Michaelis et al. 2019),
  called per image with numpy's global RNG seeded from ``rng`` (and restored afterwards);
  ``imagecorruptions`` is not a dependency of adaaug: install it for this mode. Its
  ``gaussian_blur`` and ``glass_blur`` (``skimage`` ≥ 0.19 dropped ``multichannel``) and ``fog``
  (``np.float_`` is gone in numpy 2) fail on current libraries, so those three use the functions
  here with ImageNet-C's values (``make_imagenet_c.py``). ``imagecorruptions`` imports
  ``pkg_resources``; when setuptools no longer provides it, a stand-in is installed only while
  ``imagecorruptions`` is imported. (``imagecorruptions`` itself adapted elastic transform, frost
  and motion blur to arbitrary image sizes and replaced ImageMagick, so those three differ a
  little from the released ImageNet-C.)

Checked (ImageNet-C values, shared random streams): the functions here reproduce
``imagecorruptions`` / the reference scripts to within one grey level (noises, defocus, motion
and zoom blur, fog, glass and Gaussian blur, brightness, contrast, saturate, JPEG, spatter,
CIFAR elastic transform).

Faithfulness notes: outputs are truncated to uint8 as the reference scripts do (``np.uint8``),
except ImageMagick-produced layers (motion blur, the snow streaks), which ImageMagick rounds. The
reference glass blur's "swap" of 3-channel pixels is in effect a copy ``x[h, w] = x[h', w']``
(numpy views); that behaviour, which produced the released datasets, is kept.
"""
from __future__ import annotations

import io
import math
import sys
import types
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np

BENCHMARK = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
             "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
             "jpeg_compression")
EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL = BENCHMARK + EXTRA

# CIFAR-10-C severities 1..5 (make_cifar_c.py). elastic_transform: fractions of the image side.
CIFAR10_C: dict[str, tuple] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),
    "shot_noise": (500, 250, 100, 75, 50),
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),
    "zoom_blur": ((1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.01), (1, 1.26, 0.01)),
    "snow": ((0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
             (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)),
    "frost": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),
    "elastic_transform": ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)),
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),
    "jpeg_compression": (80, 65, 58, 50, 40),
    "speckle_noise": (0.06, 0.1, 0.12, 0.16, 0.2),
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1),
    "spatter": ((0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
                (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)),
    "saturate": ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)),
}
# ImageNet-C severities (make_imagenet_c.py) for the three imagecorruptions functions that fail here.
IMAGENET_C_OWN: dict[str, tuple] = {
    "gaussian_blur": (1, 2, 3, 4, 6),
    "glass_blur": ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)),
    "fog": ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)),
}
_CIFAR_FROST_SCALE = 0.2  # make_cifar_c.py shrinks the frost textures to a fifth


# ---------------------------------------------------------------- helpers (batched, float64 unless noted)
def _blur(x: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
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


def _clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
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


def _im_motion_blur(x: np.ndarray, radius: int, sigma: float, angles: np.ndarray) -> np.ndarray:
    """ImageMagick's motion blur (kernel 2·radius+1, one-sided Gaussian, edge pixels), one angle per image."""
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


def _plasma(n: int, mapsize: int, decay: float, rng: np.random.Generator) -> np.ndarray:
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


def _disk(radius: float, alias_blur: float) -> np.ndarray:
    """Anti-aliased disk kernel (reference ``disk``)."""
    import cv2

    size, ksize = (8, (3, 3)) if radius <= 8 else (int(radius), (5, 5))
    grid = np.arange(-size, size + 1)
    xx, yy = np.meshgrid(grid, grid)
    disk = ((xx ** 2 + yy ** 2) <= radius ** 2).astype(np.float32)
    disk /= disk.sum()
    return cv2.GaussianBlur(disk, ksize=ksize, sigmaX=alias_blur)


def _per_image(x: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    return np.stack([fn(img) for img in x])


def _gray(x: np.ndarray) -> np.ndarray:
    """OpenCV's RGB→gray weights, keeping a trailing channel axis."""
    return (x @ np.array([0.299, 0.587, 0.114], dtype=x.dtype))[..., None]


@lru_cache(maxsize=None)
def _frost_textures(scale: float) -> tuple[np.ndarray, ...]:
    """The six frost photographs of ImageNet-C (RGB), packaged in ``adaaug/protocol/frost/``, resized by ``scale``."""
    import cv2
    from importlib import resources

    folder = resources.files("adaaug.protocol") / "frost"
    names = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg")
    out = []
    for name in names:
        data = np.frombuffer((folder / name).read_bytes(), np.uint8)
        img = cv2.imdecode(data, cv2.IMREAD_COLOR)  # what cv2.imread gives, from the packaged bytes
        if img is None:
            raise FileNotFoundError(f"frost texture {name} is unreadable; reinstall adaaug")
        if scale != 1:
            img = cv2.resize(img, (0, 0), fx=scale, fy=scale)
        out.append(np.ascontiguousarray(img[..., ::-1]))
    return tuple(out)


# ---------------------------------------------------------------- corruptions: f(x, c, rng) -> float in [0, 255]
# ``x`` is the batch as float64 in [0, 1] (N×H×W×3), ``c`` one severity's parameters.
def _gaussian_noise(x, c, rng):
    return np.clip(x + rng.normal(size=x.shape, scale=c), 0, 1) * 255


def _shot_noise(x, c, rng):
    return np.clip(rng.poisson(x * c) / c, 0, 1) * 255


def _impulse_noise(x, c, rng):
    from skimage.util import random_noise

    return np.clip(random_noise(x, mode="s&p", amount=c, rng=rng), 0, 1) * 255


def _speckle_noise(x, c, rng):
    return np.clip(x + x * rng.normal(size=x.shape, scale=c), 0, 1) * 255


def _gaussian_blur(x, c, rng):
    return np.clip(_blur(x, c), 0, 1) * 255


def _glass_blur(x, c, rng):
    sigma, delta, iterations = c
    y = (_blur(x, sigma) * 255).astype(np.uint8)
    n, h, w = y.shape[:3]
    idx = np.arange(n)
    cols = np.arange(w - delta, delta, -1)
    for _ in range(iterations):
        for row in range(h - delta, delta, -1):
            d = rng.integers(-delta, delta, size=(len(cols), 2, n))  # (dx, dy) per pixel and image
            for j, col in enumerate(cols):
                y[:, row, col] = y[idx, row + d[j, 1], col + d[j, 0]]
    return np.clip(_blur(y / 255.0, sigma), 0, 1) * 255


def _defocus_blur(x, c, rng):
    import cv2

    kernel = _disk(c[0], c[1])
    return np.clip(_per_image(x, lambda img: cv2.filter2D(img, -1, kernel)), 0, 1) * 255


def _motion_blur(x, c, rng):
    angles = rng.uniform(-45, 45, size=len(x))
    return np.clip(np.rint(_im_motion_blur(x * 255, c[0], c[1], angles)), 0, 255)


def _zoom_blur(x, c, rng):
    x = x.astype(np.float32)
    factors = np.arange(*c)
    out = np.zeros_like(x)
    for f in factors:
        out += _clipped_zoom(x, f)
    return np.clip((x + out) / (len(factors) + 1), 0, 1) * 255


def _snow(x, c, rng):
    x = x.astype(np.float32)
    n, h, w = x.shape[:3]
    layer = rng.normal(size=(n, h, w, 1), loc=c[0], scale=c[1])
    layer = _clipped_zoom(layer, c[2])
    layer[layer < c[3]] = 0
    layer = (np.clip(layer, 0, 1) * 255).astype(np.uint8).astype(np.float64)
    angles = rng.uniform(-135, -45, size=n)
    layer = np.clip(np.rint(_im_motion_blur(layer, c[4], c[5], angles)), 0, 255) / 255.0
    x = c[6] * x + (1 - c[6]) * np.maximum(x, _gray(x) * 1.5 + 0.5)
    return np.clip(x + layer + np.rot90(layer, k=2, axes=(1, 2)), 0, 1) * 255


def frost_max_size(scale: float = _CIFAR_FROST_SCALE) -> tuple[int, int]:
    """The largest ``(H, W)`` frost takes with textures resized by ``scale``: a crop must fit strictly inside
    the smallest of the five textures the reference draws from (62×104 at CIFAR-10-C's scale, 0.2)."""
    textures = _frost_textures(scale)[:5]
    return min(t.shape[0] for t in textures) - 1, min(t.shape[1] for t in textures) - 1


def _frost(x, c, rng, scale: float = _CIFAR_FROST_SCALE):
    textures = _frost_textures(scale)[:5]  # the reference draws from the first five
    n, h, w = x.shape[:3]
    mh, mw = frost_max_size(scale)
    if h > mh or w > mw:
        raise ValueError(f"frost with CIFAR-10-C severities takes images of at most {mh}×{mw} (the frost "
                         f"textures are shrunk to a fifth), got {h}×{w}; use params='imagenet' for larger images")
    out = np.empty_like(x)
    for i in range(n):
        tex = textures[rng.integers(5)]
        top, left = rng.integers(0, tex.shape[0] - h), rng.integers(0, tex.shape[1] - w)
        out[i] = tex[top:top + h, left:left + w]
    return np.clip(c[0] * x * 255 + c[1] * out, 0, 255)


def _fog(x, c, rng):
    n, h, w = x.shape[:3]
    mapsize = 1 << (max(h, w) - 1).bit_length()
    max_val = x.max(axis=(1, 2, 3), keepdims=True)
    x = x + c[0] * _plasma(n, mapsize, c[1], rng)[:, :h, :w, None]
    return np.clip(x * max_val / (max_val + c[0]), 0, 1) * 255


def _brightness(x, c, rng):
    from skimage.color import hsv2rgb, rgb2hsv

    hsv = rgb2hsv(x)
    hsv[..., 2] = np.clip(hsv[..., 2] + c, 0, 1)
    return np.clip(hsv2rgb(hsv), 0, 1) * 255


def _saturate(x, c, rng):
    from skimage.color import hsv2rgb, rgb2hsv

    hsv = rgb2hsv(x)
    hsv[..., 1] = np.clip(hsv[..., 1] * c[0] + c[1], 0, 1)
    return np.clip(hsv2rgb(hsv), 0, 1) * 255


def _contrast(x, c, rng):
    means = x.mean(axis=(1, 2), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def _elastic_transform(x, c, rng):
    import cv2
    from scipy.ndimage import map_coordinates

    x = x.astype(np.float32)
    n, h, w = x.shape[:3]
    alpha, sigma, affine = (v * min(h, w) for v in c)
    centre = np.float32((h, w)) // 2
    size = min(h, w) // 3
    pts1 = np.float32([centre + size, [centre[0] + size, centre[1] - size], centre - size])
    warped = np.empty_like(x)
    for i in range(n):
        pts2 = pts1 + rng.uniform(-affine, affine, size=pts1.shape).astype(np.float32)
        m = cv2.getAffineTransform(pts1, pts2)
        warped[i] = cv2.warpAffine(x[i], m, (w, h), borderMode=cv2.BORDER_REFLECT_101)
    dx = (_blur(rng.uniform(-1, 1, size=(n, h, w)), sigma, mode="reflect", truncate=3) * alpha).astype(np.float32)
    dy = (_blur(rng.uniform(-1, 1, size=(n, h, w)), sigma, mode="reflect", truncate=3) * alpha).astype(np.float32)
    nn_, yy, xx, zz = np.meshgrid(np.arange(n), np.arange(h), np.arange(w), np.arange(3), indexing="ij")
    coords = np.stack([nn_, yy + dy[..., None], xx + dx[..., None], zz]).astype(np.float64)
    return np.clip(map_coordinates(warped, coords, order=1, mode="reflect"), 0, 1) * 255


def _pil_each(x: np.ndarray, fn: Callable[[Any], Any]) -> np.ndarray:
    from PIL import Image

    u8 = np.rint(x * 255).astype(np.uint8)
    return _per_image(u8, lambda img: np.asarray(fn(Image.fromarray(img)), dtype=np.float64))


def _pixelate(x, c, rng):
    from PIL import Image

    h, w = x.shape[1:3]
    return _pil_each(x, lambda im: im.resize((int(w * c), int(h * c)), Image.BOX).resize((w, h), Image.BOX))


def _jpeg_compression(x, c, rng):
    from PIL import Image

    def jpeg(im):
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=c)
        return Image.open(buf).convert("RGB")

    return _pil_each(x, jpeg)


def _spatter(x, c, rng):
    import cv2

    x = x.astype(np.float32)
    n = len(x)
    liquid = _blur(rng.normal(size=x.shape[:3], loc=c[0], scale=c[1]), c[2])
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
    m = _blur(np.where(liquid > c[3], 1, 0).astype(np.float32), c[4])  # mud: brown blots
    m[m < 0.8] = 0
    colour = np.float32([63, 42, 20]) / 255 * m[..., None]
    return np.clip(x * (1 - m[..., None]) + colour, 0, 1) * 255


_OWN: dict[str, Callable] = {name: globals()[f"_{name}"] for name in ALL}


# ---------------------------------------------------------------- imagecorruptions (ImageNet-C values)
_NEEDS_IMAGECORRUPTIONS = ("params='imagenet' (ImageNet-C severities, e.g. adaaug make-c --size imagenet) runs "
                           "most corruptions through the 'imagecorruptions' package, which adaaug does not "
                           "install: pip install imagecorruptions")


def _imagecorruptions() -> types.ModuleType:
    """``imagecorruptions.corruptions``, importable without setuptools' ``pkg_resources``."""
    import warnings

    with warnings.catch_warnings():  # it imports the deprecated scipy.ndimage.interpolation
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import imagecorruptions.corruptions as module
            return module
        except ModuleNotFoundError as err:
            if err.name != "pkg_resources":
                raise ModuleNotFoundError(_NEEDS_IMAGECORRUPTIONS) from err
        for key in [k for k in sys.modules if k == "imagecorruptions" or k.startswith("imagecorruptions.")]:
            del sys.modules[key]  # drop the half-imported package
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda package, resource: str(Path(sys.modules[package].__file__).parent / resource)
        sys.modules["pkg_resources"] = shim
        try:
            import imagecorruptions.corruptions as module
        finally:
            if sys.modules.get("pkg_resources") is shim:
                del sys.modules["pkg_resources"]
    return module


def _via_imagecorruptions(images: np.ndarray, name: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    fn = getattr(_imagecorruptions(), name)
    state = np.random.get_state()
    np.random.seed(int(rng.integers(2 ** 32)))
    try:
        return np.stack([np.uint8(fn(Image.fromarray(img), severity)) for img in images])
    finally:
        np.random.set_state(state)


def corrupt(images: np.ndarray, name: str, severity: int, *, params: str = "cifar",
            rng: np.random.Generator | None = None) -> np.ndarray:
    """Apply corruption ``name`` at ``severity`` (1..5) to a batch.

    Args:
        images: uint8 ``N×H×W×3`` (0..255). ``frost`` with ``params="cifar"`` takes images of at
            most 62×104 (:func:`frost_max_size`: its textures are shrunk to a fifth);
            ``params="imagenet"`` needs H, W ≥ 32.
        name: one of :data:`ALL` (the 15 benchmark corruptions of :data:`BENCHMARK`, then :data:`EXTRA`).
        params: ``"cifar"`` (CIFAR-10-C values, for 32×32) or ``"imagenet"`` (ImageNet-C values, for 224×224).
        rng: randomness; the same generator state gives the same output. Default: a fresh unseeded one.
    Returns:
        uint8 ``N×H×W×3``.
    """
    if name not in ALL:
        raise ValueError(f"unknown corruption {name!r}; known: {', '.join(ALL)}")
    if severity not in (1, 2, 3, 4, 5):
        raise ValueError(f"severity must be an integer in 1..5, got {severity!r}")
    if params not in ("cifar", "imagenet"):
        raise ValueError(f"params must be 'cifar' or 'imagenet', got {params!r}")
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise TypeError(f"images must be a uint8 numpy array N×H×W×3, got "
                        f"{getattr(images, 'dtype', type(images))} {getattr(images, 'shape', '')}")
    rng = rng if rng is not None else np.random.default_rng()
    if len(images) == 0:
        return images.copy()
    if params == "imagenet" and name not in IMAGENET_C_OWN:
        if min(images.shape[1:3]) < 32:
            raise ValueError(f"params='imagenet' needs images of at least 32×32, got {images.shape[1:3]}")
        return _via_imagecorruptions(images, name, severity, rng)
    table = IMAGENET_C_OWN if params == "imagenet" else CIFAR10_C
    out = _OWN[name](images.astype(np.float64) / 255.0, table[name][severity - 1], rng)
    return np.asarray(out).astype(np.uint8)
