"""Companion augmentations: AugMix, DeepAugment, the JSD loss and the paper's pipeline (App. E.5).

Submodules load on first attribute access (``adaaug.augment.<name>``), so importing the package stays light.

Layer: imports the core only (``adaaug.paper``, ``adaaug.validation``, the backbones and weights, the
transform); everything from :mod:`adaaug.data` up may use it.
"""
from __future__ import annotations

import importlib
import pkgutil


def __getattr__(name: str):
    if any(m.name == name for m in pkgutil.iter_modules(__path__)):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
