"""Test helpers: the reference corruption code (the optional ``imagecorruptions`` package, made to run on
today's libraries), a Generator-like view of numpy's global RNG, and comparison figures."""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest

SKIP_REASON = ("the reference implementation 'imagecorruptions' (ImageNet-C's generator, packaged) is not "
               "installed; pip install --no-deps imagecorruptions to run this comparison")


class GlobalRNG:
    """A Generator-like view of numpy's global RNG: with it, adaaug's code and the reference (which calls
    ``np.random.*``) draw the same numbers in the same order when both corrupt one image."""

    def normal(self, size=None, loc=0.0, scale=1.0):
        return np.random.normal(loc=loc, scale=scale, size=size)

    def uniform(self, low=0.0, high=1.0, size=None):
        return np.random.uniform(low, high, size)

    def poisson(self, lam):
        return np.random.poisson(lam)

    def integers(self, low, high=None, size=None):
        return np.random.randint(low, high, size)


class _NumpyWithFloat:
    """numpy with the alias ``float_`` (removed in numpy 2) that the reference's fog still uses."""

    float_ = np.float64

    def __getattr__(self, name):
        return getattr(np, name)


def _gaussian_with_multichannel(image, sigma=1, multichannel=None, **kwargs):
    """skimage's ``gaussian`` accepting the ``multichannel`` flag that skimage 0.19 replaced by ``channel_axis``."""
    from skimage.filters import gaussian

    return gaussian(image, sigma=sigma, channel_axis=-1 if multichannel else None, **kwargs)


_MODULE = None


def reference():
    """``imagecorruptions.corruptions`` patched for current numpy/skimage/setuptools, or skip the test."""
    global _MODULE
    if _MODULE is not None:
        return _MODULE
    if importlib.util.find_spec("imagecorruptions") is None:
        pytest.skip(SKIP_REASON)
    added = "pkg_resources" not in sys.modules and importlib.util.find_spec("pkg_resources") is None
    if added:  # it imports pkg_resources.resource_filename only
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda package, resource: str(Path(sys.modules[package].__file__).parent / resource)
        sys.modules["pkg_resources"] = shim
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import imagecorruptions.corruptions as module
    finally:
        if added:
            del sys.modules["pkg_resources"]
    module.gaussian = _gaussian_with_multichannel
    module.np = _NumpyWithFloat()
    _MODULE = module
    return module


def smooth_images(n: int, height: int, width: int | None = None, seed: int = 0) -> np.ndarray:
    """uint8 ``n×height×width×3`` smooth random images with full range (pure noise would hide the blurs)."""
    from scipy.ndimage import gaussian_filter

    width = width or height
    img = gaussian_filter(np.random.default_rng(seed).random((n, height, width, 3)), (0, 2, 2, 0))
    lo, hi = img.min(axis=(1, 2, 3), keepdims=True), img.max(axis=(1, 2, 3), keepdims=True)
    return (255 * (img - lo) / (hi - lo + 1e-9)).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio (dB, peak 255) between two uint8 arrays; inf when equal."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def run_reference(name: str, image: np.ndarray, severity: int, seed: int) -> np.ndarray:
    """The reference's output (uint8, as its callers write it) for one image, numpy's global RNG seeded."""
    from PIL import Image

    state = np.random.get_state()
    try:
        np.random.seed(seed)
        return np.uint8(getattr(reference(), name)(Image.fromarray(image), severity))
    finally:
        np.random.set_state(state)


def run_ours(name: str, image: np.ndarray, severity: int, seed: int, params: str = "imagenet") -> np.ndarray:
    """adaaug's output for one image with the reference's random numbers (numpy's global RNG, same seed)."""
    from adaaug.corruptions import corrupt

    state = np.random.get_state()
    try:
        np.random.seed(seed)
        return corrupt(image[None], name, severity, params=params, rng=GlobalRNG())[0]
    finally:
        np.random.set_state(state)
