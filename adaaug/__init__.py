"""adaaug: AdversarialAugment (Calian et al., ICLR 2022) for PyTorch.

``import adaaug`` is light (it imports neither torch nor any optional dependency):
the public names below and the subpackages (``adaaug.models``, ``adaaug.backbones``,
``adaaug.weights``, ``adaaug.augment``, ``adaaug.protocol``, ...) load on first use, so
``import adaaug; adaaug.models.normalized(net)`` works without importing ``adaaug.models``.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.2.1"

_EXPORTS = {
    "AdversarialAugment": "adaaug.transform",
    "AdAInfo": "adaaug.transform",
    "load_backbone": "adaaug.weights",
    "load_classifier": "adaaug.weights",
    "register_backbone": "adaaug.backbones",
    "available_backbones": "adaaug.backbones",
    "build_backbone": "adaaug.backbones",
    "ssim_line_search": "adaaug.line_search",
    "DeepAugment": "adaaug.augment.deepaugment",
    "AugMix": "adaaug.augment.augmix",
    "jsd_loss": "adaaug.augment.jsd",
}

#: Submodules reachable as attributes after ``import adaaug`` alone (imported on first access).
SUBMODULES = ("augment", "backbones", "batch_io", "cli", "counter_rng", "line_search", "models", "paper",
              "perturb", "protocol", "transform", "validation", "weights")

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module 'adaaug' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(SUBMODULES))


if TYPE_CHECKING:  # pragma: no cover
    from .augment.augmix import AugMix
    from .augment.deepaugment import DeepAugment
    from .augment.jsd import jsd_loss
    from .backbones import available_backbones, build_backbone, register_backbone
    from .line_search import ssim_line_search
    from .transform import AdAInfo, AdversarialAugment
    from .weights import load_backbone, load_classifier
