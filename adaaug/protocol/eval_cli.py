"""``adaaug eval``'s command-line arguments (:func:`add_arguments`) and their checks before any work."""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import paper


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
    p.add_argument("--seed", type=int, default=0, help="seeds attacks and parameter noise")
    p.add_argument("--batch-size", type=int, default=256, help="images per forward pass")
    p.add_argument("--device", help="default: cuda if available, else cpu")
    p.add_argument("--label", help="row label in the markdown table (default: checkpoint file name)")
    p.add_argument("--out", required=True, help="results JSON")
    p.add_argument("--markdown", help="also write markdown tables here (default: stdout only)")


def check_paths(args: argparse.Namespace) -> None:
    """Fail before any work when a given path is missing or a number is out of range (one line, exit 2)."""
    from ..cli import UsageError

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
