"""Companion augmentations: AugMix, DeepAugment, the JSD loss and the paper's pipeline (App. E.5).

Submodules load on first attribute access (``adaaug.augment.<name>``), so importing the package stays light.

Layer: imports the core only (``adaaug.paper``, ``adaaug.validation``, the backbones and weights, the
transform); everything from :mod:`adaaug.data` up may use it.
"""
from __future__ import annotations

from .._lazy import attach

__getattr__, __dir__, _ = attach(__name__, __path__, {})
