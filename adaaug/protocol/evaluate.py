"""``adaaug eval``: clean accuracy, -C mCE, distribution shifts, ℓp attacks, parameter noise.

Protocol (AdA paper Section 5, App. D.1, E.2; Hendrycks & Dietterich 2019). All errors and
accuracies are percentages.

- Corruption error of corruption c: its top-1 error averaged over severities 1..5.
- CIFAR-10-C mCE: the plain mean of the 15 benchmark corruption errors.
- ImageNet-C mCE: each corruption's error divided by AlexNet's (``alexnet_ce.json``), then
  averaged: ``mean_c 100 · Σ_s E_s,c / Σ_s E_s,c(AlexNet)``.
- The 4 extra corruptions (speckle noise, Gaussian blur, spatter, saturate) are reported
  separately (``"extra"``) and never enter mCE.
- Labels are matched to the model's outputs by class name (:mod:`adaaug.protocol.eval_labels`):
  a set may hold any subset of the model's classes, in any order; a class the model does not
  have, or a named subset with the model's class names unknown, is refused (``ValueError``).
  Every result records how many images (``n``) and classes (``classes``) were scored.

Python API: :func:`load_model`, :func:`accuracy`, :func:`evaluate_corruptions`, :func:`mce`,
:func:`alexnet_errors`, :func:`markdown_report`; attacks in :mod:`adaaug.protocol.attacks`,
parameter noise in :mod:`adaaug.protocol.param_noise`.
"""
from __future__ import annotations

import argparse
import json
import os
from importlib import resources
from pathlib import Path
from typing import Callable, Mapping, Sequence, Union

import numpy as np
import torch
from torch import nn

from .. import paper
from ..classifier_checks import eval_logits, evaluated, input_dtype
from .corruptions import BENCHMARK, EXTRA
from .eval_cli import add_arguments, check_paths
from .eval_data import ArraySource, CorruptionDir, ImageSource, open_image_set
from .eval_labels import CIFAR10_CLASSES, align, check_class_list, checkpoint_classes, num_outputs, read_class_list
from .eval_report import markdown_report

__all__ = ["ModelPredictor", "accuracy", "alexnet_errors", "mce", "evaluate_corruptions", "evaluate_shift",
           "load_model", "markdown_report", "add_arguments", "main"]

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
            them (:func:`~adaaug.protocol.eval_labels.align`; ``ValueError`` on a mismatch). None:
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
    text = resources.files("adaaug.protocol").joinpath("alexnet_ce.json").read_text()
    data = json.loads(text)
    if per_severity:
        return {k: [100 * e for e in v] for k, v in data["per_severity"].items()}
    return {k: 100 * v for k, v in data["mean"].items()}


def mce(ce: Mapping[str, float], alexnet: Mapping[str, float] | None = None) -> float:
    """Mean corruption error (%) over the 15 benchmark corruptions; other keys in ``ce`` are ignored.

    Args:
        ce: corruption → error (%) averaged over the 5 severities; all 15 of
            :data:`~adaaug.protocol.corruptions.BENCHMARK` are required.
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
        else:
            folder = cdir.folders[name] / str(severity)
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder} is missing: the ImageNet-C layout needs severities 1..5 "
                                        f"(<corruption>/<severity>/<class>/)")
            found = sorted(d.name for d in folder.iterdir() if d.is_dir())
            numeric = bool(found) and all(n.isdigit() for n in found)
            labels = np.asarray([int(n) for n in found] if numeric else range(len(found)), dtype=np.int64)
            names = None if numeric else found
        stub = ArraySource(np.zeros((len(labels), 1, 1, 3), np.uint8), labels, names, numeric)
        align(stub, classes, num_outputs=k, where=_where(cdir, name, severity))


def _where(cdir: CorruptionDir, name: str, severity: int) -> str:
    return f"{cdir.npy[name]} (severity {severity})" if name in cdir.npy else str(cdir.folders[name] / str(severity))


def evaluate_corruptions(model: Union[nn.Module, Predictor], c_dir: str | os.PathLike | CorruptionDir, *,
                         alexnet: bool = False, corruptions: Sequence[str] | None = None,
                         classes: Sequence[str] | None = None, batch_size: int = 256,
                         device: str | torch.device | None = None, limit: int | None = None,
                         image_size: int | None = None) -> dict:
    """Errors on a -C directory (CIFAR-10-C or ImageNet-C layout, see :mod:`~adaaug.protocol.eval_data`).

    Args:
        model: classifier on [0, 1] images, or a predictor (e.g. :class:`~adaaug.protocol.param_noise.NoisyPredictor`).
        alexnet: normalise by AlexNet's errors (ImageNet-C) instead of the plain mean (CIFAR-10-C).
        corruptions: subset to evaluate (default: every corruption present).
        classes: the model's class names in logit order (default: ``c_dir.classes`` of a
            :class:`~adaaug.protocol.eval_data.CorruptionDir`, else unknown). Class folders (and the
            class list next to ``labels.npy``) are matched to them by name, so a set may hold any
            subset of the classes in any order. Unknown classes: a named set must hold exactly as
            many classes as the model has outputs; index labels are used as they are.
        limit: evaluate only ``limit`` evenly spaced images of each severity (smoke tests).
    Returns:
        ``{"errors": {c: [e_1..e_5]}, "ce": {c: mean}, "mce": float | None, "extra": {c: mean},
        "n": images scored in all, "n_per_set": {c: [n_1..n_5]}, "classes": distinct classes scored,
        "normalized_ce": {...}, "unnormalized_mce": ...}`` (the last two with ``alexnet``), errors in %.
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
    from .progress import bar

    predict = as_predictor(model, batch_size, device)
    jobs = [(name, s) for name in names for s in paper.CORRUPTION_SEVERITIES]
    k = num_outputs(model, cdir.source(*jobs[0], 1), device) if jobs else None
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


def evaluate_shift(model: Union[nn.Module, Predictor], spec: str | os.PathLike, *,
                   classes: Sequence[str] | None = None, train_classes: Sequence[str] | None = None,
                   image_size: int | None = None, batch_size: int = 256,
                   device: str | torch.device | None = None) -> dict:
    """Accuracy (%) on a distribution-shift set (CIFAR-10.1, ImageNet-v2, ImageNet-R).

    ``classes`` (alias ``train_classes``): the model's class names in logit order; the set's class
    names are matched to them (see :func:`accuracy`). When the set's classes are a strict subset
    of them (ImageNet-R: 200 of the 1000 ImageNet classes), only those logits compete
    (Hendrycks et al. 2021). Returns ``{"accuracy": %, "n": images, "classes": classes scored}``.
    """
    if classes is None:
        classes = train_classes
    src = open_image_set(spec, image_size)
    aligned = align(src, classes, num_outputs=num_outputs(model, src, device), where=str(spec))
    columns = None
    if src.classes is not None and classes is not None and len(src.classes) < len(classes):
        columns = [list(classes).index(c) for c in src.classes]
        aligned = src  # labels index the set's own classes, i.e. ``columns``
    acc = _hits(as_predictor(model, batch_size, device), aligned, columns)
    return {"accuracy": acc, "n": len(aligned), "classes": len(np.unique(aligned.labels))}


CLASSIFIER_ARCHS = ("resnet20", "preact_resnet50", "resnet50")


def _check_packaged_classifier(name: str, tag: str) -> None:
    """``ValueError`` naming the packaged classifiers when ``name``/``tag`` is not one of them."""
    from ..weights import read_manifest

    files = read_manifest().get("files", {})
    packaged = [f"{n}:{t}" for n in CLASSIFIER_ARCHS for t in files.get(n, {})]
    if name not in CLASSIFIER_ARCHS or tag not in files.get(name, {}):
        raise ValueError(f"--weights {name}:{tag} is not a packaged classifier; packaged: "
                         f"{', '.join(packaged) or 'none'} (a trained model of your own: --checkpoint FILE)")


def load_model(arch: str | None = None, *, checkpoint: str | os.PathLike | None = None, weights: str | None = None,
               num_classes: int | None = None, normalize: str | None = None) -> nn.Module:
    """A classifier on [0, 1] images, eval mode.

    ``checkpoint``: a safetensors ``state_dict`` (``adaaug.weights.export_weights``, ``adaaug train``'s
    ``final.safetensors``; its metadata fills ``arch``/``num_classes``/``normalize`` left as None), or a
    ``torch.save`` dict ``{"model": state_dict, ...}`` / a bare ``state_dict``, read with
    ``weights_only=True``. ``weights``: a packaged classifier ``NAME[:TAG]`` (``adaaug.weights.load_classifier``).
    The class names a checkpoint records: :func:`load_model_and_classes`.
    """
    return load_model_and_classes(arch, checkpoint=checkpoint, weights=weights, num_classes=num_classes,
                                  normalize=normalize)[0]


def load_model_and_classes(arch: str | None = None, *, checkpoint: str | os.PathLike | None = None,
                           weights: str | None = None, num_classes: int | None = None,
                           normalize: str | None = None) -> tuple[nn.Module, list[str] | None]:
    """:func:`load_model` and the class names in logit order the checkpoint records (``adaaug train``
    writes them into ``final.safetensors``; a ``torch.save`` dict may hold a ``"classes"`` list; the packaged
    ``cifar10`` classifiers have CIFAR-10's), else None."""
    from ..models import build_classifier
    from ..weights import load_classifier

    if (checkpoint is None) == (weights is None):
        raise ValueError("give exactly one of checkpoint and weights")
    if weights is not None:
        name, _, tag = weights.partition(":")
        _check_packaged_classifier(name, tag or "cifar10")
        if arch is not None and arch != name:
            raise ValueError(f"--weights {weights} is a {name}, but arch {arch!r} was requested")
        tag = tag or "cifar10"
        return load_classifier(name, tag), list(CIFAR10_CLASSES) if tag == "cifar10" else None
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    meta: dict = {}
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"cannot read {path} as a torch checkpoint ({type(err).__name__}: {err})") from err
        state = obj.get("model", obj.get("state_dict", obj)) if isinstance(obj, dict) else None
        if isinstance(obj, dict) and isinstance(obj.get("classes"), (list, tuple)):
            meta = {"classes": list(obj["classes"])}
            state = {k: v for k, v in state.items() if k != "classes"} if state is obj else state
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError(f"{path} holds no state_dict: expected {{'model': state_dict, ...}} or a state_dict")
    arch = arch or meta.get("arch")
    if arch is None:
        raise ValueError(f"{path} does not record its architecture; pass --arch")
    classes = num_classes or int(meta.get("num_classes", 10))
    norm = normalize or meta.get("normalize") or ("imagenet" if arch == "resnet50" else "cifar10")
    model = build_classifier(arch, classes, normalize=norm)
    state = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state.items()}
    expected = model.state_dict()
    if set(state) != set(expected) and {f"1.{k}" for k in state} == set(expected):
        state = {f"1.{k}": v for k, v in state.items()}  # a bare network saved without the Normalize wrapper
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{path} does not fit {arch} with {classes} classes: {str(err).splitlines()[0]} "
                         f"(wrong --arch or --num-classes?)") from err
    return model.eval(), checkpoint_classes(meta, str(path))


def main(args: argparse.Namespace) -> int:
    from .attacks import evaluate_attacks
    from .param_noise import evaluate_param_noise

    check_paths(args)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, classes = load_model_and_classes(args.arch, checkpoint=args.checkpoint, weights=args.weights,
                                            num_classes=args.num_classes, normalize=args.normalize)
    model = model.to(device)
    origin = "checkpoint" if classes is not None else None
    if args.classes:
        classes, origin = read_class_list(args.classes), "--classes"
    opts = dict(batch_size=args.batch_size, device=device)
    raw = open_image_set(args.data, args.image_size)
    k = num_outputs(model, raw, device)
    if classes is not None:
        check_class_list(classes, f"the class list ({origin})", k)
    clean = align(raw, classes, num_outputs=k, where=f"--data {args.data}")
    if classes is None and raw.classes is not None:  # --data names all of the model's classes: they define them
        classes, origin = list(raw.classes), "--data"
    clean = clean.relabel(clean.labels, None)  # labels now index the model's outputs
    if args.limit:
        clean = clean.take(args.limit)
    acc = _hits(as_predictor(model, **opts), clean)
    results: dict = {"model": {"arch": args.arch, "checkpoint": args.checkpoint, "weights": args.weights,
                               "outputs": k, "class_names_from": origin},
                     "clean": {"accuracy": acc, "error": 100.0 - acc, "n": len(clean),
                               "classes": len(np.unique(clean.labels))}}
    c_sets = {"cifar10_c": (args.cifar_c, False), "imagenet_c": (args.imagenet_c, True)}
    for key, (path, alex) in c_sets.items():
        if path:
            results[key] = evaluate_corruptions(model, path, alexnet=alex, limit=args.limit, classes=classes,
                                                image_size=args.image_size, **opts)
    shifts = {"cifar10.1": args.cifar101, "imagenet-v2": args.imagenet_v2, "imagenet-r": args.imagenet_r}
    for name, path in shifts.items():
        if path:
            results.setdefault("shift", {})[name] = evaluate_shift(model, path, classes=classes,
                                                                   image_size=args.image_size, **opts)
    if args.attacks:
        subset = clean.take(args.attack_samples)
        images = torch.cat(list(subset.batches(args.batch_size)))
        labels = torch.from_numpy(subset.labels)
        method = args.attack_method
        if method == "auto":
            method = "autoattack" if tuple(images.shape[2:]) == (32, 32) else "pgd"
        pgd = dict(steps=args.pgd_steps, restarts=args.pgd_restarts) if method == "pgd" else {}
        results["robust"] = evaluate_attacks(model, images, labels, method=method, seed=args.seed, **pgd, **opts)
    if args.param_noise:
        path, alex = (args.cifar_c, False) if args.cifar_c else (args.imagenet_c, True)
        c_dir = CorruptionDir(path, args.image_size, classes) if path else None
        results["param_noise"] = evaluate_param_noise(model, clean, c_dir, etas=args.param_noise,
                                                      samples=args.noise_samples, seed=args.seed, alexnet=alex,
                                                      limit=args.limit, **opts)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    label = args.label or Path(args.checkpoint or args.weights).stem
    report = markdown_report(results, label)
    if args.markdown:
        Path(args.markdown).write_text(report + "\n")
    print(report)
    return 0
