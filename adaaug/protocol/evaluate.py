"""``adaaug eval``: clean accuracy, -C mCE, distribution shifts, ℓp attacks, parameter noise.

Protocol (AdA paper Section 5, App. D.1, E.2; Hendrycks & Dietterich 2019). All errors and
accuracies are percentages.

- Corruption error of corruption c: its top-1 error averaged over severities 1..5.
- CIFAR-10-C mCE: the plain mean of the 15 benchmark corruption errors.
- ImageNet-C mCE: each corruption's error divided by AlexNet's (``alexnet_ce.json``), then
  averaged: ``mean_c 100 · Σ_s E_s,c / Σ_s E_s,c(AlexNet)``.
- The 4 extra corruptions (speckle noise, Gaussian blur, spatter, saturate) are reported
  separately (``"extra"``) and never enter mCE.

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
from .corruptions import BENCHMARK, EXTRA
from .eval_data import CorruptionDir, ImageSource, open_image_set

Predictor = Callable[..., np.ndarray]  # predictor(source, columns=None) -> int64 predictions (N,)


class ModelPredictor:
    """Argmax predictions of ``model`` (eval mode during the call; every module's mode restored after)."""

    def __init__(self, model: nn.Module, batch_size: int = 256, device: str | torch.device | None = None) -> None:
        self.model, self.batch_size = model, batch_size
        self.device = torch.device(device) if device is not None else next(model.parameters()).device

    @torch.no_grad()
    def __call__(self, source: ImageSource, columns: Sequence[int] | None = None) -> np.ndarray:
        modes = [(m, m.training) for m in self.model.modules()]
        cols = torch.as_tensor(list(columns), device=self.device) if columns is not None else None
        out = []
        try:
            self.model.eval()
            for batch in source.batches(self.batch_size):
                logits = self.model(batch.to(self.device))
                out.append((logits[:, cols] if cols is not None else logits).argmax(1).cpu())
        finally:
            for m, mode in modes:
                m.training = mode
        return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def as_predictor(model: Union[nn.Module, Predictor], batch_size: int = 256,
                 device: str | torch.device | None = None) -> Predictor:
    if isinstance(model, nn.Module):
        return ModelPredictor(model, batch_size, device)
    if callable(model):
        return model
    raise TypeError(f"expected an nn.Module or a predictor callable, got {type(model).__name__}")


def accuracy(model: Union[nn.Module, Predictor], source: ImageSource, *, columns: Sequence[int] | None = None,
             batch_size: int = 256, device: str | torch.device | None = None) -> float:
    """Top-1 accuracy (%) on ``source``; ``columns`` restricts the logits to those classes (labels index them)."""
    if len(source) == 0:
        raise ValueError("cannot evaluate on an empty image set")
    preds = as_predictor(model, batch_size, device)(source, columns)
    return 100.0 * float(np.mean(preds == source.labels))


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


def evaluate_corruptions(model: Union[nn.Module, Predictor], c_dir: str | os.PathLike | CorruptionDir, *,
                         alexnet: bool = False, corruptions: Sequence[str] | None = None, batch_size: int = 256,
                         device: str | torch.device | None = None, limit: int | None = None,
                         image_size: int | None = None) -> dict:
    """Errors on a -C directory (CIFAR-10-C or ImageNet-C layout, see :mod:`~adaaug.protocol.eval_data`).

    Args:
        model: classifier on [0, 1] images, or a predictor (e.g. :class:`~adaaug.protocol.param_noise.NoisyPredictor`).
        alexnet: normalise by AlexNet's errors (ImageNet-C) instead of the plain mean (CIFAR-10-C).
        corruptions: subset to evaluate (default: every corruption present).
        limit: evaluate only ``limit`` evenly spaced images of each severity (smoke tests).
    Returns:
        ``{"errors": {c: [e_1..e_5]}, "ce": {c: mean}, "mce": float | None, "extra": {c: mean},
        "normalized_ce": {...}, "unnormalized_mce": ...}`` (the last two with ``alexnet``), in %.
        ``mce`` is None (with ``"missing"`` listing what lacks) unless all 15 benchmark corruptions
        were evaluated.
    """
    cdir = c_dir if isinstance(c_dir, CorruptionDir) else CorruptionDir(c_dir, image_size)
    names = cdir.names if corruptions is None else list(corruptions)
    absent = [c for c in names if c not in cdir.names]
    if absent:
        raise FileNotFoundError(f"{cdir.root} has no data for {absent}; present: {cdir.names}")
    from .progress import bar

    predict = as_predictor(model, batch_size, device)
    errors: dict[str, list[float]] = {name: [] for name in names}
    jobs = [(name, s) for name in names for s in paper.CORRUPTION_SEVERITIES]
    for name, severity in bar(jobs, desc=f"{cdir.root.name}", unit="set"):
        src = cdir.source(name, severity, limit)
        errors[name].append(100.0 - 100.0 * float(np.mean(predict(src) == src.labels)))
    ce = {c: float(np.mean(e)) for c, e in errors.items()}
    out: dict = {"errors": errors, "ce": {c: ce[c] for c in BENCHMARK if c in ce},
                 "extra": {c: ce[c] for c in EXTRA if c in ce}}
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
                   train_classes: Sequence[str] | None = None, image_size: int | None = None,
                   batch_size: int = 256, device: str | torch.device | None = None) -> dict:
    """Accuracy (%) on a distribution-shift set (CIFAR-10.1, ImageNet-v2, ImageNet-R).

    When the set's class folders are a strict subset of ``train_classes`` (ImageNet-R: 200 of
    the 1000 ImageNet classes), only those logits compete (Hendrycks et al. 2021).
    """
    src = open_image_set(spec, image_size)
    columns = None
    if src.classes is not None and train_classes is not None and list(src.classes) != list(train_classes):
        unknown = [c for c in src.classes if c not in train_classes]
        if unknown:
            raise ValueError(f"{spec}: classes {unknown[:5]} are not among the training classes")
        columns = [list(train_classes).index(c) for c in src.classes]
    return {"accuracy": accuracy(model, src, columns=columns, batch_size=batch_size, device=device),
            "n": len(src), "classes": len(columns) if columns else None}


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
    """
    from ..models import build_classifier
    from ..weights import load_classifier

    if (checkpoint is None) == (weights is None):
        raise ValueError("give exactly one of checkpoint and weights")
    if weights is not None:
        name, _, tag = weights.partition(":")
        _check_packaged_classifier(name, tag or "cifar10")
        if arch is not None and arch != name:
            raise ValueError(f"--weights {weights} is a {name}, but arch {arch!r} was requested")
        return load_classifier(name, tag or "cifar10")
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
    return model.eval()


def markdown_report(results: Mapping, label: str = "model") -> str:
    """Markdown tables shaped like the paper's Tables 1, 4 and 8: clean error, mCE, then per-corruption errors."""
    short = {"gaussian_noise": "Gauss", "shot_noise": "Shot", "impulse_noise": "Impulse", "defocus_blur": "Defocus",
             "glass_blur": "Glass", "motion_blur": "Motion", "zoom_blur": "Zoom", "snow": "Snow", "frost": "Frost",
             "fog": "Fog", "brightness": "Bright", "contrast": "Contrast", "elastic_transform": "Elastic",
             "pixelate": "Pixel", "jpeg_compression": "JPEG", "speckle_noise": "Speckle",
             "gaussian_blur": "Gauss. blur", "spatter": "Spatter", "saturate": "Saturate"}

    def fmt(v) -> str:
        return "–" if v is None else f"{v:.2f}"

    def table(title: str, rows: list[tuple[str, float | None, Mapping]], key: str) -> list[str]:
        cols = [c for c in BENCHMARK if any(c in r[2].get(key, {}) for r in rows)]
        lines = [f"### {title}", "", "| model | clean error | mCE | " + " | ".join(short[c] for c in cols) + " |",
                 "|" + " --- |" * (3 + len(cols))]
        for name, clean, res in rows:
            vals = [fmt(res.get(key, {}).get(c)) for c in cols]
            lines.append(f"| {name} | {fmt(clean)} | {fmt(res.get('mce'))} | " + " | ".join(vals) + " |")
        extra_cols = [c for c in EXTRA if any(c in r[2].get("extra", {}) for r in rows)]
        if extra_cols:
            lines += ["", "Extra corruptions (not in mCE), error %:", "",
                      "| model | " + " | ".join(short[c] for c in extra_cols) + " |",
                      "|" + " --- |" * (1 + len(extra_cols))]
            lines += [f"| {n} | " + " | ".join(fmt(r.get("extra", {}).get(c)) for c in extra_cols) + " |"
                      for n, _, r in rows]
        return lines + [""]

    clean = results.get("clean", {}).get("error")
    out: list[str] = []
    for key, title, ce_key in (("cifar10_c", "CIFAR-10-C (error %, mCE = mean of the 15)", "ce"),
                               ("imagenet_c", "ImageNet-C (CE normalised by AlexNet, %)", "normalized_ce")):
        if key in results:
            out += table(title, [(label, clean, results[key])], ce_key)
    if "param_noise" in results:
        noise = results["param_noise"]
        ce_key = "normalized_ce" if any("normalized_ce" in r for r in noise["results"].values()) else "ce"
        rows = [(f"{label}, η = {eta}", r["clean_error"], r) for eta, r in noise["results"].items()]
        out += table(f"Parameter noise (Table 4; {noise['samples']} samples, error %)", rows, ce_key)
    if not out:
        out += [f"### {label}", "", f"clean error: {fmt(clean)}", ""]
    if results.get("shift"):
        out += ["### Distribution shift (accuracy %)", "", "| set | accuracy | n |", "| --- | --- | --- |"]
        out += [f"| {k} | {fmt(v['accuracy'])} | {v['n']} |" for k, v in results["shift"].items()] + [""]
    if "robust" in results:
        r = results["robust"]
        cols = [("Linf", e) for e in r["Linf"]] + [("L2", e) for e in r["L2"]]
        out += [f"### Robust accuracy (%; {r['method']}, {r['n']} images)", "",
                "| clean | " + " | ".join(f"ℓ{'∞' if n == 'Linf' else '2'} ε={e}" for n, e in cols) + " |",
                "|" + " --- |" * (1 + len(cols)),
                f"| {fmt(r.get('clean_accuracy'))} | " + " | ".join(fmt(r[n][e]) for n, e in cols) + " |", ""]
    return "\n".join(out)


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="safetensors state_dict or torch checkpoint {'model': state_dict, ...}")
    src.add_argument("--weights", help="packaged classifier NAME[:TAG], e.g. resnet20 (tag cifar10)")
    p.add_argument("--arch", help="resnet20, preact_resnet50 or resnet50 (default: recorded in the checkpoint)")
    p.add_argument("--num-classes", type=int, help="number of classes (default: recorded in the checkpoint, else 10)")
    p.add_argument("--normalize", choices=("cifar10", "imagenet"),
                   help="input normalisation preset (default: recorded in the checkpoint, else by --arch)")
    p.add_argument("--data", required=True, help="clean test set: ImageFolder dir, *data.npy dir or cifar10:<root>")
    p.add_argument("--cifar-c", help="CIFAR-10-C directory (<corruption>.npy + labels.npy) (default: none)")
    p.add_argument("--imagenet-c",
                   help="ImageNet-C directory (npy or <corruption>/<severity>/<class>/ layout) (default: none)")
    p.add_argument("--cifar101", help="CIFAR-10.1 (ImageFolder or *data.npy + *labels.npy) (default: none)")
    p.add_argument("--imagenet-v2",
                   help="ImageNet-v2 (ImageFolder; folders 0..999 are class indices) (default: none)")
    p.add_argument("--imagenet-r",
                   help="ImageNet-R (ImageFolder of 200 wnids; needs --data with wnid folders) (default: none)")
    p.add_argument("--image-size", type=int,
                   help="resize+centre-crop folder images to this size, e.g. 224 for ImageNet (default: no resizing)")
    p.add_argument("--attacks", action="store_true",
                   help="ℓ∞ (1/255, 2/255) and ℓ2 (0.5, 1.0) robust accuracy (default: off)")
    p.add_argument("--attack-method", choices=("auto", "autoattack", "pgd"), default="auto",
                   help="auto: AutoAttack for 32×32 images (CIFAR-10), 100-step PGD × 10 restarts otherwise")
    p.add_argument("--attack-samples", type=int, help="attack only N evenly spaced clean test images (default: all)")
    p.add_argument("--pgd-steps", type=int, default=paper.IMAGENET_PGD_STEPS, help="PGD steps (paper: 100)")
    p.add_argument("--pgd-restarts", type=int, default=paper.IMAGENET_PGD_RESTARTS, help="PGD restarts (paper: 10)")
    p.add_argument("--param-noise", type=float, nargs="+", metavar="ETA",
                   help="Table 4: η values, e.g. 0 0.02 0.04 (default: no parameter-noise evaluation)")
    p.add_argument("--noise-samples", type=int, default=paper.PARAM_NOISE_SAMPLES,
                   help="perturbation draws averaged per η (paper: 50)")
    p.add_argument("--limit", type=int, help="only N evenly spaced images of every set/severity (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seeds attacks and parameter noise")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    p.add_argument("--device", help="default: cuda if available, else cpu")
    p.add_argument("--label", help="row label in the markdown table (default: checkpoint file name)")
    p.add_argument("--out", required=True, help="results JSON")
    p.add_argument("--markdown", help="also write markdown tables here (default: stdout only)")


def _check_paths(args: argparse.Namespace) -> None:
    """Fail before any work when a given path is missing or a number is out of range (one line, exit 2)."""
    from ..cli import UsageError

    for flag in ("data", "cifar_c", "imagenet_c", "cifar101", "imagenet_v2", "imagenet_r", "checkpoint"):
        value = getattr(args, flag, None)
        if value and not str(value).startswith("cifar10:") and not Path(value).exists():
            raise UsageError(f"--{flag.replace('_', '-')} {value} does not exist")
    for flag in ("limit", "attack_samples", "image_size", "num_classes"):
        value = getattr(args, flag, None)
        if value is not None and value < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be a positive integer, got {value}")
    if args.batch_size < 1 or args.noise_samples < 1:
        raise UsageError("--batch-size and --noise-samples must be positive integers")
    if args.param_noise and any(not eta >= 0 for eta in args.param_noise):
        raise UsageError(f"--param-noise values must be ≥ 0, got {args.param_noise}")


def main(args: argparse.Namespace) -> int:
    from .attacks import evaluate_attacks
    from .param_noise import evaluate_param_noise

    _check_paths(args)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = load_model(args.arch, checkpoint=args.checkpoint, weights=args.weights, num_classes=args.num_classes,
                       normalize=args.normalize).to(device)
    opts = dict(batch_size=args.batch_size, device=device)
    clean = open_image_set(args.data, args.image_size)
    if args.limit:
        clean = clean.take(args.limit)
    acc = accuracy(model, clean, **opts)
    results: dict = {"model": {"arch": args.arch, "checkpoint": args.checkpoint, "weights": args.weights},
                     "clean": {"accuracy": acc, "error": 100.0 - acc, "n": len(clean)}}
    c_sets = {"cifar10_c": (args.cifar_c, False), "imagenet_c": (args.imagenet_c, True)}
    for key, (path, alex) in c_sets.items():
        if path:
            results[key] = evaluate_corruptions(model, path, alexnet=alex, limit=args.limit,
                                                image_size=args.image_size, **opts)
    shifts = {"cifar10.1": args.cifar101, "imagenet-v2": args.imagenet_v2, "imagenet-r": args.imagenet_r}
    for name, path in shifts.items():
        if path:
            results.setdefault("shift", {})[name] = evaluate_shift(model, path, train_classes=clean.classes,
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
        c_dir = CorruptionDir(path, args.image_size) if path else None
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
