"""``adaaug eval``'s command-line arguments (:func:`add_arguments`) and their checks before any work.

:func:`check_paths` runs first in ``adaaug eval``: missing paths, numbers out of range, a ``--device``
this machine does not have (:func:`adaaug.runtime.devices.check_device`), and ``--imagenet-c`` with a
model that does not have ImageNet's 1000 classes (the AlexNet normalisation needs them) stop the
command before the model is loaded. It also fills in the default ``--label``: the run folder of a
checkpoint that ``adaaug train`` wrote (``runs/c10/ada-edsr/final.safetensors`` → ``ada-edsr``).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import paper

#: File stems that name no model (what ``adaaug train`` and common scripts write): such a checkpoint's row
#: is labelled with its folder's name instead.
GENERIC_STEMS = frozenset({"final", "checkpoint", "model", "best", "last", "weights"})
#: Classes of ImageNet, whose AlexNet errors normalise ImageNet-C's mCE.
IMAGENET_CLASSES = 1000


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="safetensors state_dict or torch checkpoint {'model': state_dict, ...}")
    src.add_argument("--weights", help="packaged classifier NAME[:TAG], e.g. resnet20 (tag cifar10)")
    p.add_argument("--arch", help="resnet20, preact_resnet50 or resnet50 (default: recorded in the checkpoint)")
    p.add_argument("--num-classes", type=int, help="number of classes (default: recorded in the checkpoint, else 10)")
    p.add_argument("--normalize", choices=("cifar10", "imagenet"),
                   help="input normalisation preset (default: recorded in the checkpoint, else by --arch)")
    p.add_argument("--data", required=True, help="clean test set: ImageFolder dir, *data.npy dir or cifar10:<root>")
    p.add_argument("--classes", metavar="FILE",
                   help="the model's class names in output order (one per line, or a JSON list); every set's "
                        "class folders are matched to them by name (default: the names the checkpoint records, "
                        "else the class folders of --data)")
    p.add_argument("--cifar-c", help="CIFAR-10-C directory (<corruption>.npy + labels.npy) (default: none)")
    p.add_argument("--imagenet-c",
                   help="ImageNet-C directory (npy or <corruption>/<severity>/<class>/ layout; class folders "
                        "are matched to the model's classes by name) (default: none)")
    p.add_argument("--cifar101", help="CIFAR-10.1 (ImageFolder or *data.npy + *labels.npy) (default: none)")
    p.add_argument("--imagenet-v2",
                   help="ImageNet-v2 (ImageFolder; folders 0..999 are class indices) (default: none)")
    p.add_argument("--imagenet-r",
                   help="ImageNet-R (ImageFolder of 200 wnids; needs the model's class names: recorded in the "
                        "checkpoint, --classes, or --data with wnid folders) (default: none)")
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
    p.add_argument("--skip-bad-images", action="store_true",
                   help="leave out image files that cannot be decoded (named on stderr, counted and listed in the "
                        "report; a folder read at --image-size is read once more to find them) instead of stopping "
                        "(default: stop, naming the file)")
    p.add_argument("--seed", type=int, default=0, help="seeds attacks and parameter noise")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: cuda if available, else cpu)")
    p.add_argument("--label", help="row label in the markdown table (default: the run folder of an `adaaug train` "
                                   "checkpoint, e.g. ada-edsr for runs/c10/ada-edsr/final.safetensors; else the "
                                   "checkpoint's file name or the --weights name)")
    p.add_argument("--out", required=True, help="results JSON")
    p.add_argument("--markdown", help="also write markdown tables here (default: stdout only)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out (and --markdown) when they exist (default: refuse before evaluating)")


def check_paths(args: argparse.Namespace) -> None:
    """Fail before any work when a given path is missing or a number is out of range (one line, exit 2)."""
    from ..runtime.errors import UsageError

    for flag in ("data", "cifar_c", "imagenet_c", "cifar101", "imagenet_v2", "imagenet_r", "checkpoint", "classes"):
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
    from ..runtime.devices import check_device

    check_device("auto" if args.device is None else args.device)
    from ..runtime.outdir import claim_output_files

    claim_output_files([p for p in (getattr(args, "out", None), getattr(args, "markdown", None)) if p],
                       overwrite=getattr(args, "overwrite", False), what="an earlier evaluation's results",
                       other="choose another --out / --markdown path")
    if args.device == "auto":
        args.device = None  # adaaug eval's default: CUDA when available, else the CPU
    outputs = declared_outputs(args)
    if args.imagenet_c and outputs is not None and outputs != IMAGENET_CLASSES:
        raise UsageError(f"--imagenet-c normalises each corruption's error by AlexNet's on ImageNet's "
                         f"{IMAGENET_CLASSES} classes, but this model has {outputs} outputs, so its mCE would not be "
                         f"comparable with anything: pass the same directory as --cifar-c for the plain mean of the "
                         f"15 corruption errors (no AlexNet normalisation)")
    if getattr(args, "label", None) is None:
        args.label = default_label(args.checkpoint, args.weights)


def default_label(checkpoint: str | None, weights: str | None) -> str:
    """A results row's name: the run folder for a generic file name (``runs/x/ada-edsr/final.safetensors`` →
    ``ada-edsr``), else the checkpoint's stem, else the ``--weights`` name (``resnet20:cifar10`` → ``resnet20``)."""
    if checkpoint:
        path = Path(checkpoint)
        if path.stem.lower() in GENERIC_STEMS and path.resolve().parent.name:
            return path.resolve().parent.name
        return path.stem
    return str(weights).partition(":")[0]


def declared_outputs(args: argparse.Namespace) -> int | None:
    """The model's outputs as known before loading it: ``--num-classes``; the ``num_classes`` an ``adaaug train``
    safetensors checkpoint records (else 10, what the loader builds); 10 for the packaged ``cifar10``
    classifiers; None when it cannot be told without loading the model (a torch checkpoint)."""
    if args.num_classes is not None:
        return int(args.num_classes)
    if args.weights is not None:
        return 10 if (args.weights.partition(":")[2] or "cifar10") == "cifar10" else None
    path = Path(args.checkpoint)
    if path.suffix != ".safetensors":
        return None  # a torch checkpoint records no class count (the report warns once the model is known)
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        return int(meta.get("num_classes", 10))
    except Exception:  # an unreadable file is reported by the loader, with its own message
        return None
