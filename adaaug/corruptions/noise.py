"""Noise corruptions: Gaussian, shot (Poisson), impulse (salt and pepper) and speckle noise.

Each maps a float64 batch ``x`` in [0, 1] (``N×H×W×3``) and one severity's parameter ``c`` to a float
batch in [0, 255], drawing from ``rng`` (a ``numpy.random.Generator``).
"""
from __future__ import annotations

from typing import Any

import numpy as np


def gaussian_noise(x: np.ndarray, c: float, rng: Any) -> np.ndarray:
    """Add ``N(0, c²)`` noise per pixel and channel."""
    return np.clip(x + rng.normal(size=x.shape, scale=c), 0, 1) * 255


def shot_noise(x: np.ndarray, c: float, rng: Any) -> np.ndarray:
    """Poisson photon noise with ``c`` photons at full intensity."""
    return np.clip(rng.poisson(x * c) / c, 0, 1) * 255


def impulse_noise(x: np.ndarray, c: float, rng: Any) -> np.ndarray:
    """Salt and pepper on a fraction ``c`` of the values (``skimage.util.random_noise``, as the reference)."""
    from skimage.util import random_noise

    return np.clip(random_noise(x, mode="s&p", amount=c, rng=rng), 0, 1) * 255


def speckle_noise(x: np.ndarray, c: float, rng: Any) -> np.ndarray:
    """Multiplicative noise ``x + x·N(0, c²)``."""
    return np.clip(x + x * rng.normal(size=x.shape, scale=c), 0, 1) * 255
