"""The catalogue of corruptions: their names (:data:`BENCHMARK`, :data:`EXTRA`, :data:`ALL`), the smallest
image side each severity table takes (:data:`MIN_SIZE`), and :func:`corrupt`, which applies one by name.

Re-exported by :mod:`adaaug.corruptions`; import them from there.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from . import blur, digital, noise, weather
from .tables import FROST_SCALE, TABLES

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
        ModuleNotFoundError: the corruption needs SciPy, scikit-image or OpenCV and the ``protocol`` extra
            is not installed (the message says so).
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
    try:
        if name == "frost":
            out = weather.frost(x, c, rng, scale=FROST_SCALE[params], enlarge=params == "imagenet")
        else:
            out = _FUNCTIONS[name](x, c, rng)
    except ModuleNotFoundError as err:  # SciPy, scikit-image or OpenCV: name the extra that brings them
        raise ModuleNotFoundError(f"the {name} corruption needs {err.name}, which the protocol extra installs: "
                                  f'pip install "adaaug[protocol]"', name=err.name) from err
    return np.asarray(out).astype(np.uint8)
