"""The 19 common corruptions of Hendrycks & Dietterich (ICLR 2019), batched and seeded, and -C sets.

Layer: imports the core, :mod:`adaaug.data` and :mod:`adaaug.runtime` only; :mod:`adaaug.evaluate`,
:mod:`adaaug.experiments` and the command line build on it. :func:`make_c`
(:mod:`adaaug.corruptions.dataset`, the ``adaaug make-c`` command) writes a whole benchmark in the
CIFAR-10-C file format and loads on first use.

``corrupt(images, name, severity, params=..., rng=...)`` maps a uint8 batch ``N×H×W×3`` (values
0..255) to a corrupted uint8 batch of the same shape. One implementation of each corruption
(:mod:`.noise`, :mod:`.blur`, :mod:`.weather`, :mod:`.digital`, helpers in :mod:`._common`) reads
one of two severity tables (:mod:`.tables`):

- ``params="cifar"``: :data:`CIFAR10_C`, from ``make_cifar_c.py`` of github.com/hendrycks/robustness
  (``ImageNet-C/create_c/``), set for 32×32 images;
- ``params="imagenet"``: :data:`IMAGENET_C`, from ``make_imagenet_c.py`` (the same values as the
  ``imagecorruptions`` package), set for 224×224 images.

No optional package is needed. The algorithms are those of the reference generators, written here
batched over images and driven by a ``numpy.random.Generator``; the generators differ from each
other only in their tables, in frost's texture scale, and in the image side they hard-code, which is
generalised to ``H×W`` here as ``imagecorruptions`` does. Where the references use ImageMagick (motion
blur, the streaks of snow), its motion blur is emulated as ``imagecorruptions`` does. Where
``imagecorruptions`` departs from ``make_imagenet_c.py``, ImageNet-C's generator is followed: elastic
transform (the affine warp plus displacement field of the released sets, not imagecorruptions'
rewrite), pixelate (box filter up and down, not nearest-neighbour up) and frost (an uncropped
photograph when the image fits inside it; larger images get the photograph enlarged as
``imagecorruptions`` enlarges it, so frost takes any size with ImageNet-C severities; with CIFAR-10-C
severities, whose photographs are shrunk to a fifth, at most :func:`frost_max_size`, 62×104).

Outputs are truncated to uint8 as the reference scripts do (``np.uint8``), except the
ImageMagick-produced layers (motion blur, the snow streaks), which ImageMagick rounds. Agreement with
the references is tested in ``tests/corruptions/test_corruptions_reference.py``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .._lazy import attach
from . import blur, digital, noise, weather
from .tables import CIFAR10_C, FROST_SCALE, IMAGENET_C, IMAGENET_C_OWN, TABLES
from .weather import frost_max_size

__all__ = ["ALL", "BENCHMARK", "EXTRA", "CIFAR10_C", "IMAGENET_C", "IMAGENET_C_OWN", "TABLES", "FROST_SCALE",
           "corrupt", "frost_max_size", "MIN_SIZE", "make_c"]

# make_c (and the rest of the command) load on first access: ``adaaug.corruptions.make_c``
__getattr__, _dir, _ = attach(__name__, __path__, {"make_c": "dataset"})


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_dir()))

BENCHMARK = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
             "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
             "jpeg_compression")
EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
ALL = BENCHMARK + EXTRA

#: The smallest side each table takes: pixelate shrinks a side to ``int(c·side)`` pixels, which must be ≥ 1.
MIN_SIZE: dict[str, int] = {"cifar": 2, "imagenet": 4}

_FUNCTIONS: dict[str, Callable] = {name: getattr(module, name) for module in (noise, blur, weather, digital)
                                   for name in ALL if hasattr(module, name)}
assert set(_FUNCTIONS) == set(ALL)


def corrupt(images: np.ndarray, name: str, severity: int, *, params: str = "cifar",
            rng: np.random.Generator | None = None) -> np.ndarray:
    """Apply corruption ``name`` at ``severity`` (1..5) to a batch.

    Args:
        images: uint8 ``N×H×W×3`` (0..255), sides at least :data:`MIN_SIZE` (2 with ``"cifar"``, 4 with
            ``"imagenet"``). ``frost`` with ``params="cifar"`` takes images of at most 62×104
            (:func:`frost_max_size`: its textures are shrunk to a fifth); with ``"imagenet"`` any size.
        name: one of :data:`ALL` (the 15 benchmark corruptions of :data:`BENCHMARK`, then :data:`EXTRA`).
        severity: 1..5.
        params: ``"cifar"`` (CIFAR-10-C's severities, set for 32×32 images; the default) or
            ``"imagenet"`` (ImageNet-C's, set for 224×224).
        rng: randomness; the same generator state gives the same output. Default: a fresh unseeded one.
    Returns:
        uint8 ``N×H×W×3``.
    Raises:
        ValueError: unknown name, severity or params; sides below :data:`MIN_SIZE`; frost too large
            for CIFAR-10-C's textures.
        TypeError: ``images`` not a uint8 ``N×H×W×3`` array.
    """
    if name not in ALL:
        raise ValueError(f"unknown corruption {name!r}; known: {', '.join(ALL)}")
    if severity not in (1, 2, 3, 4, 5) or isinstance(severity, bool):
        raise ValueError(f"severity must be an integer in 1..5, got {severity!r}")
    if params not in TABLES:
        raise ValueError(f"params must be 'cifar' or 'imagenet', got {params!r}")
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise TypeError(f"images must be a uint8 numpy array N×H×W×3, got "
                        f"{getattr(images, 'dtype', type(images))} {getattr(images, 'shape', '')}")
    h, w = images.shape[1:3]
    if min(h, w) < MIN_SIZE[params]:
        raise ValueError(f"params={params!r} needs images of at least {MIN_SIZE[params]}×{MIN_SIZE[params]} "
                         f"(pixelate shrinks them), got {h}×{w}")
    rng = rng if rng is not None else np.random.default_rng()
    if len(images) == 0:
        return images.copy()
    c = TABLES[params][name][severity - 1]
    x = images.astype(np.float64) / 255.0
    if name == "frost":
        out = weather.frost(x, c, rng, scale=FROST_SCALE[params], enlarge=params == "imagenet")
    else:
        out = _FUNCTIONS[name](x, c, rng)
    return np.asarray(out).astype(np.uint8)
