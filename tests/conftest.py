"""Shared fixtures: a tiny classifier, generated ImageFolder trees, and private cache directories.

No test reads data from outside the repository: the training and evaluation sets are small
CIFAR-10-shaped ImageFolder trees drawn here (class-dependent colours and stripe patterns, so a
classifier can learn them within an epoch or two).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

#: The CIFAR-10 class names, so the generated trees look like CIFAR-10 to the code under test.
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


class TinyNet(nn.Module):
    """A small conv classifier with BatchNorm (so train/eval mode matters), taking [0, 1] images."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))
        h = torch.relu(self.conv2(h))
        return self.fc(h.mean((2, 3)))


class WithFeatures(nn.Module):
    """Returns (logits, features), as many research classifiers do."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x), x.mean((2, 3))


@pytest.fixture(autouse=True)
def _single_thread():
    """One torch thread per test: the 2-core CI machine runs faster without oversubscription."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


#: Where the tools the tests run keep caches, configuration and runtime files, by default under ``~``:
#: adaaug's decoded-image cache, matplotlib (font cache, config), pip (wheel cache of the packaging test),
#: huggingface_hub, torch.hub, IPython and Jupyter (notebook kernels), and everything that follows XDG.
#: ``HOME`` itself is left alone: a user's ``pip install --user`` packages are found through it.
ISOLATED_DIRS = {
    "ADAAUG_CACHE": "adaaug",
    "XDG_CACHE_HOME": "xdg-cache", "XDG_CONFIG_HOME": "xdg-config", "XDG_DATA_HOME": "xdg-data",
    "XDG_STATE_HOME": "xdg-state", "MPLCONFIGDIR": "matplotlib", "HF_HOME": "huggingface",
    "TORCH_HOME": "torch", "IPYTHONDIR": "ipython", "JUPYTER_CONFIG_DIR": "jupyter/config",
    "JUPYTER_DATA_DIR": "jupyter/data", "JUPYTER_RUNTIME_DIR": "jupyter/runtime",
}
#: Finer-grained settings that would override the ones above (Hugging Face's caches then follow ``HF_HOME``).
UNSET = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_ASSETS_CACHE", "HF_XET_CACHE", "PIP_CACHE_DIR")
_saved_env: dict[str, str | None] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Point every cache and config directory of :data:`ISOLATED_DIRS` into one temporary directory, offline.

    Set in ``os.environ`` before any test module is imported (matplotlib reads its directories at import),
    so that subprocesses (CLI, torchrun, notebook kernels) inherit it; undone in :func:`pytest_unconfigure`.
    Nothing the suite runs writes into the user's home (tests/test_home_untouched.py checks it).
    """
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="adaaug-tests-"))
    _saved_env["_root"] = str(root)
    for var, sub in ISOLATED_DIRS.items():
        _saved_env[var] = os.environ.get(var)
        os.environ[var] = str(root / sub)
    for var in UNSET:
        _saved_env[var] = os.environ.pop(var, None)
    _saved_env["ADAAUG_OFFLINE"] = os.environ.get("ADAAUG_OFFLINE")
    os.environ["ADAAUG_OFFLINE"] = "1"  # published weights are never downloaded (tests serve them locally)


def pytest_unconfigure(config: pytest.Config) -> None:
    import shutil

    root = _saved_env.pop("_root", None)
    for var, before in _saved_env.items():
        if before is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = before
    _saved_env.clear()
    if root:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def tiny_net() -> TinyNet:
    torch.manual_seed(0)
    net = TinyNet()
    # give BatchNorm non-trivial running statistics
    with torch.no_grad():
        net.train()(torch.rand(16, 3, 32, 32))
    return net


def class_images(n: int, size: int = 32, classes: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 ``size×size×3`` images and their labels (``i % classes``), learnable from colour and texture.

    Class ``c`` has its own mean colour (hue ``c / classes``) and a sinusoidal stripe pattern at
    angle ``c · 180° / classes`` with a period of 4–8 pixels; each image draws its own phase,
    period, brightness and pixel noise (σ ≈ 10 grey levels), so no two images are equal.
    """
    import colorsys

    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.empty((n, size, size, 3), np.uint8)
    for i, c in enumerate(labels):
        base = np.array(colorsys.hsv_to_rgb(c / classes, 0.6, 0.5 + 0.3 * rng.random()))
        angle = np.pi * c / classes
        period = rng.uniform(4, 8) * size / 32
        wave = np.sin(2 * np.pi * (np.cos(angle) * xx + np.sin(angle) * yy) / period + rng.uniform(0, 2 * np.pi))
        img = base * 255 + 60 * wave[..., None] * np.array([1.0, 0.8, 0.6])[(np.arange(3) + c) % 3]
        img += rng.normal(0, 10, img.shape)
        out[i] = np.clip(img, 0, 255).round().astype(np.uint8)
    return out, labels


def write_image_folder(root: Path, per_class: int, size: int = 32, classes: int = 10, seed: int = 0,
                       suffix: str = ".png") -> Path:
    """An ImageFolder tree ``root/<class>/<class>_<i>.<suffix>`` of :func:`class_images`; returns ``root``."""
    from PIL import Image

    images, labels = class_images(per_class * classes, size, classes, seed)
    names = CLASSES if classes <= len(CLASSES) else [f"class{c:03d}" for c in range(classes)]
    counts = [0] * classes
    for image, c in zip(images, labels):
        folder = root / names[c]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{names[c]}_{counts[c]:04d}{suffix}", quality=95)
        counts[c] += 1
    return root


@pytest.fixture(scope="session")
def cifar_train_subset(tmp_path_factory) -> Path:
    """A generated CIFAR-10-shaped training set: ImageFolder of 520 JPEG images, 32×32, 52 per class."""
    return write_image_folder(tmp_path_factory.mktemp("gen_train") / "train", 52, seed=1, suffix=".jpg")


@pytest.fixture(scope="session")
def cifar_dev_subset(tmp_path_factory) -> Path:
    """A generated CIFAR-10-shaped evaluation set: ImageFolder of 200 JPEG images, 32×32, 20 per class."""
    return write_image_folder(tmp_path_factory.mktemp("gen_dev") / "test", 20, seed=2, suffix=".jpg")


@pytest.fixture(scope="session")
def make_image_folder():
    """:func:`write_image_folder`, for tests that need their own tree (e.g. to damage a file)."""
    return write_image_folder
