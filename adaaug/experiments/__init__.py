"""Experiments that reproduce or measure: the demo, fine-tuning, the mini protocol, the GPU comparison, bench.

=====================================  ===============================================================
:mod:`.demo`                           ``adaaug demo``: every packaged backbone on the bundled images
:mod:`.finetune` (+ _config,           ``adaaug finetune``: AdA and AugMix on the packaged ResNet-20,
_options, _report)                     several seeds, clean error and mCE with their noise
:mod:`.mini`, :mod:`.mini_report`      ``adaaug mini-protocol``: the CIFAR-10 comparison, CPU-sized
:mod:`.gpu_compare` (+ _report),       ``adaaug gpu-compare``: the comparison on one GPU (Page's ResNet-9)
.fast_recipe
:mod:`.bench` (+ _measure, _suite)     ``adaaug bench``: step cost against its floor, memory, device suite
=====================================  ===============================================================

Layer: the top of the library; imports the core, :mod:`adaaug.augment`, :mod:`adaaug.data`,
:mod:`adaaug.runtime`, :mod:`adaaug.corruptions`, :mod:`adaaug.evaluate` and :mod:`adaaug.train`.
Only :mod:`adaaug.cli` imports it.
"""
from __future__ import annotations

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, __path__, {})
