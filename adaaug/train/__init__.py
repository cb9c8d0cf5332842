"""Training: ``adaaug train`` (nominal, AdA, AugMix, DeepAugment, their mixes), corruption networks, data.

==================================  ==================================================================
:mod:`.config`, :mod:`.checks`      :class:`TrainConfig`: the paper's presets (App. E.1–E.5), overrides,
                                    checks that name the flag to change
:mod:`.loop`                        :func:`train` and one step / epoch of it; ``adaaug train``'s main
:mod:`.options`                     ``adaaug train``'s flags and how they become a :class:`TrainConfig`
:mod:`.training_data`, .sources     training and evaluation data: in memory or streamed
:mod:`.checkpoint`, .distributed    atomic checkpoints and resuming; torchrun data parallelism
:mod:`.backbone`, .backbone_command ``adaaug train-backbone``: a corruption network (App. E.6)
:mod:`.deepaugment_data`            ``adaaug deepaugment-data``: a DeepAugment-processed copy of a dataset
==================================  ==================================================================

Layer: imports the core, :mod:`adaaug.augment`, :mod:`adaaug.data` and :mod:`adaaug.runtime`; never
:mod:`adaaug.evaluate` or :mod:`adaaug.experiments`. Names load on first access.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, __path__, {
    "TrainConfig": "config", "train": "loop", "ConfigError": "checks", "ConfigTypeError": "checks",
    "train_backbone": "backbone"})

if TYPE_CHECKING:  # pragma: no cover  (for type checkers and IDEs; at run time the names load lazily)
    from .backbone import train_backbone
    from .checks import ConfigError, ConfigTypeError
    from .config import TrainConfig
    from .loop import train
