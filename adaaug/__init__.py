"""adaaug: AdversarialAugment (Calian et al., ICLR 2022) for PyTorch.

``import adaaug`` is light: submodules load on first use of their names.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

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

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'adaaug' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)


if TYPE_CHECKING:  # pragma: no cover
    from .augment.augmix import AugMix
    from .augment.deepaugment import DeepAugment
    from .augment.jsd import jsd_loss
    from .backbones import available_backbones, build_backbone, register_backbone
    from .line_search import ssim_line_search
    from .transform import AdAInfo, AdversarialAugment
    from .weights import load_backbone, load_classifier
