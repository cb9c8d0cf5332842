"""``adaaug eval``: load a classifier, then score it clean, on -C sets, shifts, ℓp attacks and parameter noise.

:func:`load_model` / :func:`load_model_and_classes` read a checkpoint or a packaged classifier;
:func:`main` runs the command (options in :mod:`adaaug.evaluate.options`) and writes the JSON and
Markdown report (:mod:`adaaug.evaluate.report`). The measures themselves are in
:mod:`adaaug.evaluate.metrics`, :mod:`adaaug.evaluate.attacks` and :mod:`adaaug.evaluate.param_noise`.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..runtime.devices import resolve_checked
from .labels import CIFAR10_CLASSES, align, check_class_list, checkpoint_classes, num_outputs, read_class_list
from .metrics import _hits, as_predictor, evaluate_corruptions, evaluate_shift
from .options import add_arguments, check_paths
from .report import c_set_description, markdown_report
from .sets import CorruptionDir, eval_size, open_image_set, preprocessing

__all__ = ["CLASSIFIER_ARCHS", "load_model", "load_model_and_classes", "add_arguments", "main"]


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
    model, classes, _ = load_model_described(arch, checkpoint=checkpoint, weights=weights, num_classes=num_classes,
                                             normalize=normalize)
    return model, classes


def load_model_described(arch: str | None = None, *, checkpoint: str | os.PathLike | None = None,
                         weights: str | None = None, num_classes: int | None = None,
                         normalize: str | None = None) -> tuple[nn.Module, list[str] | None, dict]:
    """:func:`load_model_and_classes` and what the model is, for a report: ``{"arch", "num_classes",
    "normalize", "method"}`` as given or as the checkpoint records them (``method``: the training method
    ``adaaug train`` recorded, else None). A ``checkpoint.pt`` of ``adaaug train`` is read too: its
    run's settings name the architecture and normalisation."""
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
        model = load_classifier(name, tag)
        info = {"arch": name, "num_classes": _outputs(model), "normalize": "cifar10", "method": None}  # as packaged
        return model, list(CIFAR10_CLASSES) if tag == "cifar10" else None, info
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
        run = obj.get("config") if isinstance(obj, dict) else None
        if isinstance(run, dict):  # adaaug train's checkpoint.pt: the run's settings say what it is
            meta.update({k: v for k, v in (("arch", run.get("arch")), ("normalize", run.get("preset")),
                                           ("method", run.get("method"))) if isinstance(v, str)})
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError(f"{path} holds no state_dict: expected {{'model': state_dict, ...}} or a state_dict")
    arch = arch or meta.get("arch")
    if arch is None:
        raise ValueError(f"{path} does not record its architecture; pass --arch")
    classes = num_classes or int(meta.get("num_classes") or _fc_outputs(state) or 10)
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
    info = {"arch": arch, "num_classes": classes, "normalize": norm, "method": meta.get("method")}
    return model.eval(), checkpoint_classes(meta, str(path)), info


def _fc_outputs(state: dict) -> int | None:
    """Outputs of the last linear layer of a state_dict (its last 2-D weight), else None."""
    shapes = [v.shape for k, v in state.items() if k.endswith("weight") and v.dim() == 2]
    return int(shapes[-1][0]) if shapes else None


def _outputs(model: nn.Module) -> int | None:
    return _fc_outputs(model.state_dict())


def main(args: argparse.Namespace) -> int:
    from .attacks import evaluate_attacks
    from .param_noise import evaluate_param_noise

    check_paths(args)
    device = resolve_checked(args.device)  # None (and "auto"): CUDA when available, else the CPU
    model, classes, described = load_model_described(args.arch, checkpoint=args.checkpoint, weights=args.weights,
                                                     num_classes=args.num_classes, normalize=args.normalize)
    model = model.to(device)
    origin = "checkpoint" if classes is not None else None
    if args.classes:
        classes, origin = read_class_list(args.classes), "--classes"
    opts = dict(batch_size=args.batch_size, device=device)
    skip = bool(getattr(args, "skip_bad_images", False))
    raw = open_image_set(args.data, args.image_size, skip_bad=skip)
    skipped = [str(Path(args.data) / f) for f in getattr(raw, "skipped", [])]
    k = num_outputs(model, raw, device)
    if classes is not None:
        check_class_list(classes, f"the class list ({origin})", k)
    clean = align(raw, classes, num_outputs=k, where=f"--data {args.data}")
    if classes is None and raw.classes is not None:  # --data names all of the model's classes: they define them
        classes, origin = list(raw.classes), "--data"
    clean = clean.relabel(clean.labels, None)  # labels now index the model's outputs
    if args.limit:
        clean = clean.take(args.limit)
    size = eval_size(raw)  # every set of this evaluation is scored at this size
    c_sets = {"cifar10_c": (args.cifar_c, False), "imagenet_c": (args.imagenet_c, True)}
    c_dirs = {key: CorruptionDir(path, size, classes, skip_bad=skip)  # checked now
              for key, (path, _) in c_sets.items() if path}
    acc = _hits(as_predictor(model, **opts), clean)
    results: dict = {"model": {"arch": described["arch"], "checkpoint": args.checkpoint, "weights": args.weights,
                               "normalize": described["normalize"], "method": described["method"],
                               "outputs": k, "class_names_from": origin},
                     "clean": {"accuracy": acc, "error": 100.0 - acc, "n": len(clean),
                               "classes": len(np.unique(clean.labels)), "preprocessing": preprocessing(raw),
                               "image_size": list(size) if size else None}}
    for key, c_dir in c_dirs.items():
        results[key] = evaluate_corruptions(model, c_dir, alexnet=c_sets[key][1], limit=args.limit,
                                            classes=classes, **opts)
        made = c_set_description(c_sets[key][0])  # what adaaug make-c recorded: names the set in the report
        if made is not None:
            results[key]["set"] = made
    shifts = {"cifar10.1": args.cifar101, "imagenet-v2": args.imagenet_v2, "imagenet-r": args.imagenet_r}
    for name, path in shifts.items():
        if path:
            results.setdefault("shift", {})[name] = res = evaluate_shift(
                model, path, classes=classes, image_size=args.image_size, expect_size=size, skip_bad=skip, **opts)
            skipped += [str(Path(path) / f) for f in res.pop("skipped", [])]
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
        alex = not args.cifar_c
        c_dir = c_dirs.get("cifar10_c", c_dirs.get("imagenet_c"))
        results["param_noise"] = evaluate_param_noise(model, clean, c_dir, etas=args.param_noise,
                                                      samples=args.noise_samples, seed=args.seed, alexnet=alex,
                                                      limit=args.limit, **opts)
    for key, c_dir in c_dirs.items():
        skipped += [str(Path(c_sets[key][0]) / f) for f in c_dir.skipped]
    if skip:  # --skip-bad-images: the files left out, each once
        files = list(dict.fromkeys(skipped))
        results["skipped"] = {"count": len(files), "files": files}
    from ..runtime.provenance import producer

    results["producer"] = producer("eval")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    label = args.label or Path(args.checkpoint or args.weights).stem
    report = markdown_report(results, label)
    if args.markdown:
        Path(args.markdown).write_text(report + "\n")
    print(report)
    return 0
