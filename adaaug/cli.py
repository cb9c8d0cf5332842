"""The ``adaaug`` command line: ``adaaug <command> --help`` for each command.

Commands are imported lazily so ``adaaug --help`` stays fast. A user's mistake (a missing
file, an unknown name, a bad value) ends a command with ONE line on stderr,
``adaaug <command>: error: <what is wrong>``, and exit status 2: commands raise
:class:`UsageError` (or ``ValueError`` / ``FileNotFoundError`` while checking their
arguments) and :func:`main` prints it. ``ADAAUG_DEBUG=1`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Callable, NoReturn

_COMMANDS: dict[str, tuple[str, str]] = {
    # name: (module defining add_arguments(parser) and main(args), one-line help)
    "demo": ("adaaug.protocol.demo", "run AdA with every packaged backbone on bundled images; writes a figure"),
    "train": ("adaaug.protocol.train", "train a classifier (nominal, AdA, AugMix, DeepAugment, ...)"),
    "eval": ("adaaug.protocol.evaluate", "evaluate a classifier: clean, -C mCE, attacks, parameter noise"),
    "make-c": ("adaaug.protocol.make_c", "write a CIFAR-10-C-format corruption set from an image set"),
    "mini-protocol": ("adaaug.protocol.mini", "small-scale protocol: nominal vs AdA vs AugMix, clean + -C table"),
    "finetune": ("adaaug.protocol.finetune",
                 "fine-tune the packaged ResNet-20 per method and seed: clean error and mCE with their noise"),
    "train-backbone": ("adaaug.cli", "train a corruption network (App. E.6) and export it to weights/"),
    "deepaugment-data": ("adaaug.protocol.deepaugment_data",
                         "write a DeepAugment-processed copy of an ImageFolder dataset"),
    "gpu-compare": ("adaaug.protocol.gpu_compare",
                    "CIFAR-10 comparison on a GPU in minutes: nominal, AdA, AugMix, AdA + AugMix (ResNet-9)"),
    "bench": ("adaaug.protocol.bench", "time an AdA step against its floor; memory against chunk_size"),
    "publish-weights": ("adaaug.protocol.publish", "maintainers: upload weights/ to a Hugging Face Hub repo"),
}

# commands that get ``--progress/--no-progress`` here (``train`` defines its own; ``publish-weights`` is quick)
_PROGRESS = ("demo", "make-c", "eval", "deepaugment-data", "mini-protocol", "finetune", "bench", "train-backbone",
             "gpu-compare")


class UsageError(Exception):
    """A user's mistake in a command's arguments or inputs: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _shows_default(text: str) -> bool:
    return "default" in text.lower() or bool(re.search(r"\[[^\]]*\]\s*\)?\s*$", text))


class _HelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help unless the help already states its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (default is None or default is False or default is argparse.SUPPRESS or not action.option_strings
                or _shows_default(text) or isinstance(action, argparse._HelpAction)):
            return text
        if isinstance(default, (list, tuple)):
            default = " ".join(str(v) for v in default)
        return f"{text} (default: {str(default).replace('%', '%%')})"


def _train_backbone_arguments(p: argparse.ArgumentParser) -> None:
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


def _train_backbone_main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .backbones import available_backbones
    from .protocol.devices import removed_on_failure
    from .protocol.train_backbone import export_trained, train_backbone

    if args.name not in available_backbones():
        raise UsageError(f"unknown backbone {args.name!r}; known: {', '.join(available_backbones())}")
    _check_backbone_sizes(args.name, args.data)
    out = Path(args.out) / args.name
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


def _check_backbone_sizes(name: str, data: str) -> None:
    """Before anything is read in full or written: the image sides (from a sample of headers; CIFAR-10 is
    32×32) must be multiples of the backbone's ``multiple_of``."""
    from pathlib import Path

    from .backbones import backbone_spec

    multiple = backbone_spec(name).multiple_of
    if data.startswith("cifar10:") or multiple == 1 or not Path(data).is_dir():
        return  # CIFAR-10's 32×32 suits every backbone; a missing directory is reported by the loader
    from .protocol.data import list_image_folder
    from .protocol.data_sources import sampled_sizes

    for h, w in sorted(set(sampled_sizes(list_image_folder(data)[0]))):
        if h % multiple or w % multiple:
            m = multiple
            raise UsageError(f"{name} needs image sides divisible by {m}, but images of --data {data} are {h}×{w}: "
                             f"crop them to {h // m * m}×{w // m * m} or pad them to {-(-h // m) * m}×{-(-w // m) * m}")


def _lookup(name: str) -> tuple[Callable, Callable]:
    module_name, _ = _COMMANDS[name]
    if name == "train-backbone":
        return _train_backbone_arguments, _train_backbone_main
    import importlib

    module = importlib.import_module(module_name)
    return module.add_arguments, module.main


def command_parser(name: str, sub: argparse._SubParsersAction | None = None) -> argparse.ArgumentParser:
    """The full parser of command ``name`` (as ``adaaug <name> --help`` shows it)."""
    help_text = _COMMANDS[name][1]
    if sub is None:
        p = _Parser(prog=f"adaaug {name}", description=help_text, formatter_class=_HelpFormatter)
    else:
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=_HelpFormatter)
    add_arguments, _ = _lookup(name)
    add_arguments(p)
    if name in _PROGRESS:
        p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                       help="progress bars on stderr")
    return p


def _version() -> str:
    from . import __version__

    return f"adaaug {__version__}"


def main(argv: list[str] | None = None) -> int:
    """Run ``adaaug <command> ...``; returns the exit status (0 ok, 2 a user's mistake)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _Parser(prog="adaaug", description="AdversarialAugment (Calian et al., ICLR 2022)")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=_Parser)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (_, help_text) in _COMMANDS.items():
        if name == chosen:
            command_parser(name, sub)
        else:
            sub.add_parser(name, help=help_text, description=help_text)
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return int(stop.code or 0) if not isinstance(stop.code, str) else 2
    if args.command is None:
        parser.print_help()
        return 2
    _, run = _lookup(args.command)
    previous = os.environ.get("ADAAUG_PROGRESS")
    if hasattr(args, "progress"):
        os.environ["ADAAUG_PROGRESS"] = "1" if args.progress else "0"
    try:
        if isinstance(getattr(args, "device", None), str):  # every command's --device, before any work
            from .protocol.devices import check_device

            check_device(args.device)
        return int(run(args) or 0)
    except (UsageError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
            ModuleNotFoundError) as err:
        if os.environ.get("ADAAUG_DEBUG") == "1":
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        if isinstance(err, ModuleNotFoundError) and "pip install" not in message:
            message += ' (the protocol commands need the extra: pip install "adaaug[protocol]")'
        print(f"adaaug {args.command}: error: {message}", file=sys.stderr)
        return 2
    finally:
        if previous is None:
            os.environ.pop("ADAAUG_PROGRESS", None)
        else:
            os.environ["ADAAUG_PROGRESS"] = previous


if __name__ == "__main__":
    sys.exit(main())
