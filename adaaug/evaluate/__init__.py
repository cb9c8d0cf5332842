"""Scoring a classifier: clean accuracy, -C corruption errors and mCE, shifts, ℓp attacks, parameter noise.

==========================  ==========================================================================
:mod:`.metrics`             :func:`accuracy`, :func:`evaluate_corruptions`, :func:`mce`,
                            :func:`alexnet_errors`, :func:`evaluate_shift` (AdA paper Section 5)
:mod:`.attacks`             :func:`robust_accuracy`, :func:`evaluate_attacks` (AutoAttack, PGD; App. E.2)
:mod:`.param_noise`         :class:`NoisyPredictor`, :func:`evaluate_param_noise` (App. D.1, Table 4)
:mod:`.sets`                evaluation image sets: :func:`open_image_set`, :class:`CorruptionDir`
:mod:`.labels`              matching a set's labels to the model's outputs by class name
:mod:`.report`              :func:`markdown_report`
:mod:`.command`, .options   ``adaaug eval``: :func:`load_model`, the command and its flags
==========================  ==========================================================================

Layer: imports the core, :mod:`adaaug.data`, :mod:`adaaug.runtime` and :mod:`adaaug.corruptions`;
never :mod:`adaaug.train` or :mod:`adaaug.experiments`. Names load on first access.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, __path__, {
    **{n: "metrics" for n in ("accuracy", "evaluate_corruptions", "mce", "alexnet_errors", "evaluate_shift",
                              "ModelPredictor", "as_predictor")},
    **{n: "attacks" for n in ("robust_accuracy", "evaluate_attacks")},
    **{n: "param_noise" for n in ("NoisyPredictor", "evaluate_param_noise")},
    **{n: "sets" for n in ("open_image_set", "ArraySource", "CorruptionDir")},
    "markdown_report": "report",
    **{n: "command" for n in ("load_model", "load_model_and_classes")},
})

if TYPE_CHECKING:  # pragma: no cover  (for type checkers and IDEs; at run time the names load lazily)
    from .attacks import evaluate_attacks, robust_accuracy
    from .command import load_model, load_model_and_classes
    from .metrics import (ModelPredictor, accuracy, alexnet_errors, as_predictor, evaluate_corruptions,
                          evaluate_shift, mce)
    from .param_noise import NoisyPredictor, evaluate_param_noise
    from .report import markdown_report
    from .sets import ArraySource, CorruptionDir, open_image_set
