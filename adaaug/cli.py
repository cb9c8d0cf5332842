"""The ``adaaug`` command line: ``adaaug <command> --help`` for each command.

Commands are imported lazily so ``adaaug --help`` stays fast.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

_COMMANDS: dict[str, tuple[str, str]] = {
    # name: (module defining add_arguments(parser) and main(args), one-line help)
    "demo": ("adaaug.protocol.demo", "run AdA with every packaged backbone on bundled images; writes a figure"),
    "train-backbone": ("adaaug.cli", "train a corruption network (App. E.6) and export it to weights/"),
    "publish-weights": ("adaaug.protocol.publish", "maintainers: upload weights/ to a Hugging Face Hub repo"),
    "train": ("adaaug.protocol.train", "train a classifier (nominal, AdA, AugMix, DeepAugment, ...)"),
    "eval": ("adaaug.protocol.evaluate", "evaluate a classifier: clean, -C mCE, attacks, parameter noise"),
    "make-c": ("adaaug.protocol.make_c", "write a CIFAR-10-C-format corruption set from an image set"),
    "bench": ("adaaug.protocol.bench", "time an AdA step against its floor; memory against chunk_size"),
    "deepaugment-data": ("adaaug.protocol.deepaugment_data",
                         "write a DeepAugment-processed copy of an ImageFolder dataset"),
    "mini-protocol": ("adaaug.protocol.mini", "CPU mini-protocol: nominal vs AdA vs AugMix, clean + -C table"),
}


def _train_backbone_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="backbone: edsr, cae, vqvae or unet")
    p.add_argument("--data", required=True, help="ImageFolder directory or cifar10:<root>")
    p.add_argument("--dev", help="dev ImageFolder directory for PSNR/SSIM after each epoch")
    p.add_argument("--out", default="runs/backbones", help="run directory (checkpoints, metrics.jsonl)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--subset", type=int, help="train on this many random images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int)
    p.add_argument("--resume", action="store_true", help="continue from <out>/<name>/checkpoint.pt")
    p.add_argument("--init", help="start from this .safetensors file instead of a random initialisation")
    p.add_argument("--export", help="write <name>-<tag>.safetensors + card into this weights directory")
    p.add_argument("--tag", default="cifar10")


def _train_backbone_main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .protocol.train_backbone import export_trained, train_backbone

    out = Path(args.out) / args.name
    result = train_backbone(args.name, args.data, out, dev=args.dev, epochs=args.epochs,
                            batch_size=args.batch_size, lr=args.lr, subset=args.subset, seed=args.seed,
                            resume=args.resume, threads=args.threads,
                            init=args.init)
    print(json.dumps(result, indent=2))
    if args.export:
        command = "adaaug " + " ".join(sys.argv[1:])
        print(export_trained(args.name, out, args.export, args.tag, result, command))
    return 0


def _lookup(name: str) -> tuple[Callable, Callable]:
    module_name, _ = _COMMANDS[name]
    if name == "train-backbone":
        return _train_backbone_arguments, _train_backbone_main
    import importlib

    module = importlib.import_module(module_name)
    return module.add_arguments, module.main


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="adaaug", description="AdversarialAugment (Calian et al., ICLR 2022)")
    sub = parser.add_subparsers(dest="command", metavar="command")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (_, help_text) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            add_arguments, _ = _lookup(name)
            add_arguments(p)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    _, run = _lookup(args.command)
    return int(run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
