"""``adaaug train-backbone NAME``: its options, the image-size check before any work, and the command.

The training itself is :func:`adaaug.train.backbone.train_backbone`; the export into a weights
directory :func:`adaaug.train.backbone.export_trained`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..runtime.errors import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``adaaug train-backbone``, each with its description and default."""
    p.add_argument("name", help="backbone: edsr, cae, vqvae or unet")
    p.add_argument("--data", required=True, help="training set: ImageFolder directory or cifar10:<root>")
    p.add_argument("--dev", help="dev ImageFolder directory for PSNR/SSIM after each epoch (default: none)")
    p.add_argument("--out", default="runs/backbones", help="run directory (checkpoints, metrics.jsonl)")
    p.add_argument("--epochs", type=int, default=10, help="training epochs")
    p.add_argument("--batch-size", type=int, default=128, help="images per optimiser step")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--subset", type=int, help="train on this many random images (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seeds initialisation, data order and masks")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/<name>/checkpoint.pt")
    p.add_argument("--init", help="start from this .safetensors file instead of a random initialisation "
                                  "(default: random)")
    p.add_argument("--export", help="write <name>-<tag>.safetensors + card into this weights directory "
                                    "(default: do not export)")
    p.add_argument("--tag", default="cifar10", help="weights tag written by --export")


def main(args: argparse.Namespace) -> int:
    """Run ``adaaug train-backbone``: train (or resume), print the result as JSON, export with ``--export``."""
    from ..backbones import available_backbones
    from ..runtime.devices import removed_on_failure
    from .backbone import export_trained, train_backbone

    if args.name not in available_backbones():
        raise UsageError(f"unknown backbone {args.name!r}; known: {', '.join(available_backbones())}")
    _check_sizes(args.name, args.data)
    out = Path(args.out) / args.name
    from .checkpoint import remove_leftovers

    remove_leftovers(out)  # temporary files of a run killed outright while writing its checkpoint
    # a run that fails before its first checkpoint leaves no folder behind (one with a checkpoint resumes)
    with removed_on_failure(Path(args.out), out, keep_if=lambda: (out / "checkpoint.pt").exists()):
        result = train_backbone(args.name, args.data, out, dev=args.dev, epochs=args.epochs,
                                batch_size=args.batch_size, lr=args.lr, subset=args.subset, seed=args.seed,
                                resume=args.resume, threads=args.threads, progress=args.progress,
                                init=args.init)
    print(json.dumps(result, indent=2))
    if args.export:
        command = "adaaug " + " ".join(sys.argv[1:])
        print(export_trained(args.name, out, args.export, args.tag, result, command))
    return 0


def _check_sizes(name: str, data: str) -> None:
    """Before anything is read in full or written: the image sides (from a sample of headers; CIFAR-10 is
    32×32) must be multiples of the backbone's ``multiple_of``."""
    from ..backbones import backbone_spec

    multiple = backbone_spec(name).multiple_of
    if data.startswith("cifar10:") or multiple == 1 or not Path(data).is_dir():
        return  # CIFAR-10's 32×32 suits every backbone; a missing directory is reported by the loader
    from ..data.images import list_image_folder
    from .sources import sampled_sizes

    for h, w in sorted(set(sampled_sizes(list_image_folder(data)[0]))):
        if h % multiple or w % multiple:
            m = multiple
            raise UsageError(f"{name} needs image sides divisible by {m}, but images of --data {data} are {h}×{w}: "
                             f"crop them to {h // m * m}×{w // m * m} or pad them to {-(-h // m) * m}×{-(-w // m) * m}")
