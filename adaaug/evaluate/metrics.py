"""Clean accuracy, -C corruption errors and mCE, and distribution-shift accuracy of a classifier.

Protocol (AdA paper Section 5, App. D.1, E.2; Hendrycks & Dietterich 2019). All errors and
accuracies are percentages.

- Corruption error of corruption c: its top-1 error averaged over severities 1..5.
- CIFAR-10-C mCE: the plain mean of the 15 benchmark corruption errors.
- ImageNet-C mCE: each corruption's error divided by AlexNet's (``alexnet_ce.json``), then
  averaged: ``mean_c 100 · Σ_s E_s,c / Σ_s E_s,c(AlexNet)``.
- The 4 extra corruptions (speckle noise, Gaussian blur, spatter, saturate) are reported
  separately (``"extra"``) and never enter mCE.
- Labels are matched to the model's outputs by class name (:mod:`adaaug.evaluate.labels`):
  a set may hold any subset of the model's classes, in any order; a class the model does not
  have, or a named subset with the model's class names unknown, is refused (``ValueError``).
  Every result records how many images (``n``) and classes (``classes``) were scored.

Python API: :func:`accuracy`, :func:`evaluate_corruptions`, :func:`mce`, :func:`alexnet_errors`,
:func:`evaluate_shift`; loading a classifier and the ``adaaug eval`` command in
:mod:`adaaug.evaluate.command`, tables in :mod:`adaaug.evaluate.report`, attacks in
:mod:`adaaug.evaluate.attacks`, parameter noise in :mod:`adaaug.evaluate.param_noise`.
"""
from __future__ import annotations

import json
import os
from importlib import resources
from typing import Callable, Mapping, Sequence, Union

import numpy as np
import torch
from torch import nn

from .. import paper
from ..classifier_checks import eval_logits, evaluated, input_dtype
from ..corruptions import BENCHMARK, EXTRA
from ..data.images import class_folders
from .sets import ArraySource, CorruptionDir, ImageSource, open_image_set
from .labels import align, num_outputs

__all__ = ["ModelPredictor", "as_predictor", "accuracy", "alexnet_errors", "mce", "evaluate_corruptions",
           "evaluate_shift"]

Predictor = Callable[..., np.ndarray]  # predictor(source, columns=None) -> int64 predictions (N,)


class ModelPredictor:
    """Argmax predictions of ``model`` (eval mode during the call; every module's mode restored after)."""

    def __init__(self, model: nn.Module, batch_size: int = 256, device: str | torch.device | None = None) -> None:
        self.model, self.batch_size = model, batch_size
        first = next(model.parameters(), None)
        self.device = torch.device(device) if device is not None else (first.device if first is not None
                                                                        else torch.device("cpu"))

    @torch.no_grad()
    def __call__(self, source: ImageSource, columns: Sequence[int] | None = None) -> np.ndarray:
        cols = torch.as_tensor(list(columns), device=self.device) if columns is not None else None
        dtype = input_dtype(self.model) or torch.float32  # a bf16 or float64 classifier gets its own dtype
        out = []
        with evaluated(self.model):  # modes and buffers as found afterwards
            for batch in source.batches(self.batch_size):
                logits = eval_logits(self.model(batch.to(self.device, dtype)), len(batch), self.model)
                out.append((logits[:, cols] if cols is not None else logits).argmax(1).cpu())
        return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def as_predictor(model: Union[nn.Module, Predictor], batch_size: int = 256,
                 device: str | torch.device | None = None) -> Predictor:
    if isinstance(model, nn.Module):
        return ModelPredictor(model, batch_size, device)
    if callable(model):
        return model
    raise TypeError(f"expected an nn.Module or a predictor callable, got {type(model).__name__}")


def _hits(predict: Predictor, source: ImageSource, columns: Sequence[int] | None = None) -> float:
    """Accuracy (%) of ``predict`` on ``source`` whose labels already index the model's outputs (or ``columns``)."""
    if len(source) == 0:
        raise ValueError("cannot evaluate on an empty image set")
    preds = predict(source, columns)
    if len(preds) != len(source):
        raise ValueError(f"the predictor returned {len(preds)} predictions for {len(source)} images")
    return 100.0 * float(np.mean(preds == source.labels))


def accuracy(model: Union[nn.Module, Predictor], source: ImageSource, *, columns: Sequence[int] | None = None,
             classes: Sequence[str] | None = None, batch_size: int = 256,
             device: str | torch.device | None = None) -> float:
    """Top-1 accuracy (%) on ``source``.

    Args:
        classes: the model's class names in logit order; ``source``'s class names are matched to
            them (:func:`~adaaug.evaluate.labels.align`; ``ValueError`` on a mismatch). None:
            unknown, then a named ``source`` must hold exactly as many classes as the model has outputs.
        columns: restrict the logits to these output indices; ``source``'s labels then index
            ``columns`` and are not matched by name.
    """
    predict = as_predictor(model, batch_size, device)
    if columns is None:
        source = align(source, classes, num_outputs=num_outputs(model, source, device),
                       where=str(getattr(source, "root", "the image set")))
    return _hits(predict, source, columns)


def alexnet_errors(per_severity: bool = False) -> dict:
    """AlexNet's ImageNet-C errors (%), per corruption (mean over severities) or per severity."""
    text = resources.files("adaaug.evaluate").joinpath("alexnet_ce.json").read_text()
    data = json.loads(text)
    if per_severity:
        return {k: [100 * e for e in v] for k, v in data["per_severity"].items()}
    return {k: 100 * v for k, v in data["mean"].items()}


def mce(ce: Mapping[str, float], alexnet: Mapping[str, float] | None = None) -> float:
    """Mean corruption error (%) over the 15 benchmark corruptions; other keys in ``ce`` are ignored.

    Args:
        ce: corruption → error (%) averaged over the 5 severities; all 15 of
            :data:`~adaaug.corruptions.BENCHMARK` are required.
        alexnet: corruption → AlexNet's error (%) to normalise by (ImageNet-C); None for the plain
            mean (CIFAR-10-C).
    """
    missing = [c for c in BENCHMARK if c not in ce]
    if missing:
        raise ValueError(f"mCE needs all 15 benchmark corruptions; missing {missing}")
    if alexnet is None:
        return float(np.mean([ce[c] for c in BENCHMARK]))
    missing = [c for c in BENCHMARK if c not in alexnet]
    if missing:
        raise ValueError(f"no AlexNet error for {missing}")
    return float(np.mean([100.0 * ce[c] / alexnet[c] for c in BENCHMARK]))


def _check_c_classes(cdir: CorruptionDir, jobs, classes: list[str] | None, k: int | None) -> None:
    """Match every set's class names before any image is decoded (a mismatch fails at once, not hours in)."""
    npy_checked = False
    for name, severity in jobs:
        if name in cdir.npy:
            if npy_checked:
                continue  # one labels.npy serves every npy corruption
            labels, names, numeric, npy_checked = cdir.labels, cdir.label_names, False, True
            origin = getattr(cdir, "names_from", None)
        else:
            folder = cdir.folders[name] / str(severity)
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder} is missing: the ImageNet-C layout needs severities 1..5 "
                                        f"(<corruption>/<severity>/<class>/)")
            found = class_folders(folder)
            numeric = bool(found) and all(n.isdigit() for n in found)
            labels = np.asarray([int(n) for n in found] if numeric else range(len(found)), dtype=np.int64)
            names, origin = None if numeric else found, "folders"
        stub = ArraySource(np.zeros((len(labels), 1, 1, 3), np.uint8), labels, names, numeric, names_from=origin)
        align(stub, classes, num_outputs=k, where=_where(cdir, name, severity))


def _where(cdir: CorruptionDir, name: str, severity: int) -> str:
    return f"{cdir.npy[name]} (severity {severity})" if name in cdir.npy else str(cdir.folders[name] / str(severity))


def evaluate_corruptions(model: Union[nn.Module, Predictor], c_dir: str | os.PathLike | CorruptionDir, *,
                         alexnet: bool = False, corruptions: Sequence[str] | None = None,
                         classes: Sequence[str] | None = None, batch_size: int = 256,
                         device: str | torch.device | None = None, limit: int | None = None,
                         image_size: int | tuple[int, int] | None = None) -> dict:
    """Errors on a -C directory (CIFAR-10-C or ImageNet-C layout, see :mod:`~adaaug.evaluate.sets`).

    Args:
        model: classifier on [0, 1] images, or a predictor (e.g. :class:`~adaaug.evaluate.param_noise.NoisyPredictor`).
        alexnet: normalise by AlexNet's errors (ImageNet-C) instead of the plain mean (CIFAR-10-C).
        corruptions: subset to evaluate (default: every corruption present).
        classes: the model's class names in logit order (default: ``c_dir.classes`` of a
            :class:`~adaaug.evaluate.sets.CorruptionDir`, else unknown). Class folders (and the
            class list next to ``labels.npy``) are matched to them by name, so a set may hold any
            subset of the classes in any order. Unknown classes: a named set must hold exactly as
            many classes as the model has outputs; index labels are used as they are.
        limit: evaluate only ``limit`` evenly spaced images, the same ones at every corruption and severity
            (:meth:`~adaaug.evaluate.sets.CorruptionDir.subset`; listed in ``"subset"``).
        image_size: ``(H, W)`` (an int: square) every -C image must have, i.e. the clean set's size after its
            preprocessing; -C images are read as stored, never resized, so another size is a ``ValueError``
            (None: not checked).
    Returns:
        ``{"errors": {c: [e_1..e_5]}, "ce": {c: mean}, "mce": float | None, "extra": {c: mean},
        "n": images scored in all, "n_per_set": {c: [n_1..n_5]}, "classes": distinct classes scored,
        "normalized_ce": {...}, "unnormalized_mce": ...}`` (the last two with ``alexnet``), errors in %,
        and how the images were read: ``"preprocessing"``, ``"image_size"`` ``[H, W]``, ``"storage"`` (from
        ``make_c.json``), ``"run_id"``, ``"ignored"`` (files ``make_c.json`` does not list), with ``limit``
        ``"subset"`` (row indices within a severity, or ``<class>/<file>`` keys) and ``"left_out"`` (images
        some severity lacks).
        ``mce`` is None (with ``"missing"`` listing what lacks) unless all 15 benchmark corruptions
        were evaluated.
    Raises:
        ValueError: a class name not among ``classes``, or a named subset with ``classes`` unknown
            (checked for every set before any image is scored); FileNotFoundError: absent corruptions.
    """
    cdir = c_dir if isinstance(c_dir, CorruptionDir) else CorruptionDir(c_dir, image_size, classes)
    classes = list(classes) if classes is not None else cdir.classes
    names = cdir.names if corruptions is None else list(corruptions)
    absent = [c for c in names if c not in cdir.names]
    if absent:
        raise FileNotFoundError(f"{cdir.root} has no data for {absent}; present: {cdir.names}")
    from ..runtime.progress import bar

    predict = as_predictor(model, batch_size, device)
    jobs = [(name, s) for name in names for s in paper.CORRUPTION_SEVERITIES]
    k = num_outputs(model, cdir.source(*jobs[0]).take(1), device) if jobs else None
    _check_c_classes(cdir, jobs, classes, k)
    errors: dict[str, list[float]] = {name: [] for name in names}
    counts: dict[str, list[int]] = {name: [] for name in names}
    seen: set[int] = set()
    for name, severity in bar(jobs, desc=f"{cdir.root.name}", unit="set"):
        src = align(cdir.source(name, severity, limit), classes, num_outputs=k, where=_where(cdir, name, severity))
        errors[name].append(100.0 - _hits(predict, src))
        counts[name].append(len(src))
        seen.update(np.unique(src.labels).tolist())
    ce = {c: float(np.mean(e)) for c, e in errors.items()}
    out: dict = {"errors": errors, "ce": {c: ce[c] for c in BENCHMARK if c in ce},
                 "extra": {c: ce[c] for c in EXTRA if c in ce},
                 "n": int(sum(map(sum, counts.values()))), "n_per_set": counts, "classes": len(seen)}
    out.update(_how_read(cdir, jobs, limit))
    missing = [c for c in BENCHMARK if c not in ce]
    if missing:
        out.update(mce=None, missing=missing)
    elif alexnet:
        ref = alexnet_errors()
        out["normalized_ce"] = {c: 100.0 * ce[c] / ref[c] for c in BENCHMARK}
        out.update(mce=mce(ce, ref), unnormalized_mce=mce(ce))
    else:
        out["mce"] = mce(ce)
    return out


def _how_read(cdir: CorruptionDir, jobs, limit: int | None) -> dict:
    """How ``cdir``'s images were read, for the report (see :func:`evaluate_corruptions`'s Returns)."""
    from .c_checks import storage_note
    from .sets import eval_size, preprocessing

    first = cdir.source(*jobs[0]).take(1) if jobs else None
    size = eval_size(first) if first is not None else None
    meta = cdir.manifest or {}
    how = {"preprocessing": preprocessing(first) if first is not None else None,
           "image_size": list(size) if size else None, "storage": storage_note(cdir.manifest),
           "run_id": meta.get("run_id"), "ignored": cdir.ignored}
    if limit is not None:
        rows, keys, left_out = cdir.subset(limit)
        how.update(subset=keys if any(n in cdir.folders for n, _ in jobs) else rows, left_out=left_out)
    return how


def evaluate_shift(model: Union[nn.Module, Predictor], spec: str | os.PathLike, *,
                   classes: Sequence[str] | None = None, train_classes: Sequence[str] | None = None,
                   image_size: int | None = None, batch_size: int = 256,
                   device: str | torch.device | None = None, expect_size: tuple[int, int] | None = None,
                   skip_bad: bool = False) -> dict:
    """Accuracy (%) on a distribution-shift set (CIFAR-10.1, ImageNet-v2, ImageNet-R).

    ``classes`` (alias ``train_classes``): the model's class names in logit order; the set's class
    names are matched to them (see :func:`accuracy`). When the set's classes are a strict subset
    of them (ImageNet-R: 200 of the 1000 ImageNet classes), only those logits compete
    (Hendrycks et al. 2021). ``image_size``: see :func:`~adaaug.evaluate.sets.open_image_set`; ``expect_size``:
    the ``(H, W)`` the set must be scored at (the clean set's), else ``ValueError``. ``skip_bad``: leave out
    image files that cannot be decoded. Returns ``{"accuracy": %, "n": images, "classes": classes scored,
    "preprocessing": what was done to the images}``, with ``"skipped"`` (those files' paths) when any were
    left out.
    """
    from .c_checks import size_mismatch
    from .sets import eval_size, preprocessing

    if classes is None:
        classes = train_classes
    src = open_image_set(spec, image_size, skip_bad=skip_bad)
    if expect_size is not None and len(src) and eval_size(src) != tuple(expect_size):
        raise ValueError(size_mismatch(str(spec), eval_size(src), expect_size))
    aligned = align(src, classes, num_outputs=num_outputs(model, src, device), where=str(spec))
    columns = None
    if src.classes is not None and classes is not None and len(src.classes) < len(classes):
        columns = [list(classes).index(c) for c in src.classes]
        aligned = src  # labels index the set's own classes, i.e. ``columns``
    acc = _hits(as_predictor(model, batch_size, device), aligned, columns)
    out = {"accuracy": acc, "n": len(aligned), "classes": len(np.unique(aligned.labels)),
           "preprocessing": preprocessing(src)}
    skipped = list(getattr(src, "skipped", []))
    return {**out, "skipped": skipped} if skipped else out
