"""adaaug: AdversarialAugment (Calian et al., ICLR 2022) for PyTorch.

``import adaaug`` is light (it imports neither torch nor any optional dependency):
the public names below and the subpackages (``adaaug.models``, ``adaaug.backbones``,
``adaaug.weights``, ``adaaug.augment``, ``adaaug.corruptions``, ``adaaug.evaluate``, ``adaaug.train``,
...) load on first use, so ``import adaaug; adaaug.models.normalized(net)`` works without importing
``adaaug.models``. The package map and its one-way layers are in the design notes (docs/design.md).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.3.0"

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
SUBMODULES = ("augment", "backbones", "batch_io", "cli", "corruptions", "counter_rng", "data", "evaluate",
              "experiments", "line_search", "models", "paper", "perturb", "runtime", "train", "transform",
              "validation", "weights")
#: Reachable as attributes but not listed by ``dir(adaaug)``: deprecated aliases (removed in 0.4.0).
DEPRECATED = ("protocol",)

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in SUBMODULES or name in DEPRECATED:
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
