"""The ``adaaug`` command line: ``adaaug <command> --help`` for each command.

Commands are imported lazily so ``adaaug --help`` stays fast. A user's mistake (a missing
file, an unknown name, a bad value) ends a command with ONE line on stderr,
``adaaug <command>: error: <what is wrong>``, and exit status 2: commands raise
:class:`UsageError` (or ``ValueError`` / ``FileNotFoundError`` while checking their
arguments) and :func:`main` prints it. A failure of the environment (no network, a full disk, a
permission, a missing optional package, out of memory) ends the same way with exit status 1, its line
saying what failed and what to do (:mod:`adaaug.runtime.environment`). ``ADAAUG_DEBUG=1`` shows the
traceback instead. Ctrl-C and SIGTERM (a scheduler's kill) stop a command the same way: its cleanup runs, it prints
``adaaug <command>: interrupted by SIGTERM`` (or ``SIGINT``) and exits with 143 (or 130).

Each command lives in the subpackage of what it does (``_COMMANDS`` maps a name to its module, which
defines ``add_arguments(parser)`` and ``main(args)``); ``publish-weights`` is :mod:`adaaug.cli.publish`,
``convert-weights`` :mod:`adaaug.cli.convert`.

Layer: the top; it may import every layer below (each command's module only when that command runs),
and nothing in the library imports it.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Callable, NoReturn

from ..runtime.errors import UsageError

_COMMANDS: dict[str, tuple[str, str]] = {
    # name: (module defining add_arguments(parser) and main(args), one-line help)
    "demo": ("adaaug.experiments.demo", "run AdA with every packaged backbone on bundled images; writes a figure"),
    "train": ("adaaug.train.loop", "train a classifier (nominal, AdA, AugMix, DeepAugment, ...)"),
    "eval": ("adaaug.evaluate.command", "evaluate a classifier: clean, -C mCE, attacks, parameter noise"),
    "make-c": ("adaaug.corruptions.dataset", "write a CIFAR-10-C-format corruption set from an image set"),
    "mini-protocol": ("adaaug.experiments.mini", "small-scale protocol: nominal vs AdA vs AugMix, clean + -C table"),
    "finetune": ("adaaug.experiments.finetune",
                 "fine-tune the packaged ResNet-20 per method and seed: clean error and mCE with their noise"),
    "train-backbone": ("adaaug.train.backbone_command",
                       "train a corruption network (App. E.6) and export it to weights/"),
    "deepaugment-data": ("adaaug.train.deepaugment_data",
                         "write a DeepAugment-processed copy of an ImageFolder dataset"),
    "gpu-compare": ("adaaug.experiments.gpu_compare",
                    "CIFAR-10 comparison on a GPU in minutes: nominal, AdA, AugMix, AdA + AugMix (ResNet-9)"),
    "bench": ("adaaug.experiments.bench", "time an AdA step against its floor; memory against chunk_size"),
    "convert-weights": ("adaaug.cli.convert",
                        "convert a published EDSR/CAE checkpoint (EDSR-PyTorch, DeepAugment) to safetensors"),
    "publish-weights": ("adaaug.cli.publish", "maintainers: upload weights/ to a Hugging Face Hub repo"),
}

# commands that get ``--progress/--no-progress`` here (``train`` defines its own; ``publish-weights`` and
# ``convert-weights`` are quick)
_PROGRESS = ("demo", "make-c", "eval", "deepaugment-data", "mini-protocol", "finetune", "bench", "train-backbone",
             "gpu-compare")


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


def _lookup(name: str) -> tuple[Callable, Callable]:
    module_name, _ = _COMMANDS[name]
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
    from .. import __version__

    return f"adaaug {__version__}"


def main(argv: list[str] | None = None) -> int:
    """Run ``adaaug <command> ...``; returns the exit status (0 ok, 1 a failure of the environment, 2 a user's
    mistake, 130 Ctrl-C, 143 SIGTERM)."""
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
    from ..runtime.interrupts import exit_status, interrupt_line, terminate_as_interrupt

    try:
        with terminate_as_interrupt() as caught:  # SIGTERM (SLURM, Kubernetes, timeout) is handled as Ctrl-C
            return _run(args, run, sub)
    except BaseException as err:  # an interrupt, or whatever it became on its way out (a stopped worker)
        if caught.signum is None and not isinstance(err, KeyboardInterrupt):
            raise
        if os.environ.get("ADAAUG_DEBUG") == "1":
            raise
        signum, hint = caught.signum or getattr(err, "signum", None), getattr(err, "hint", "")
        _release_frames(err)
        print(interrupt_line(args.command, signum, hint), file=sys.stderr)
        return exit_status(signum)


def _release_frames(err: BaseException) -> None:
    """Drop the interrupted command's frames now, with the errors of their objects' teardown silenced: a
    DataLoader whose worker the same signal killed (a process group's SIGTERM) raises from its ``__del__``,
    which Python would print as a traceback after the command's one line."""
    import gc

    previous = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        seen = set()
        while err is not None and id(err) not in seen:
            seen.add(id(err))
            err.__traceback__ = None
            err = err.__context__ or err.__cause__
        gc.collect()
    finally:
        sys.unraisablehook = previous


def _run(args: argparse.Namespace, run: Callable, sub: argparse._SubParsersAction) -> int:
    """Run the parsed command; a user's mistake becomes one line on stderr and exit status 2."""
    previous = os.environ.get("ADAAUG_PROGRESS")
    if hasattr(args, "progress"):
        os.environ["ADAAUG_PROGRESS"] = "1" if args.progress else "0"
    try:
        if isinstance(getattr(args, "device", None), str):  # every command's --device, before any work
            from ..runtime.devices import check_device

            check_device(args.device)
        return int(run(args) or 0)
    except (UsageError, ValueError, FileNotFoundError, FileExistsError, NotADirectoryError) as err:
        if os.environ.get("ADAAUG_DEBUG") == "1":
            raise
        has_option = sub.choices[args.command]._option_string_actions.__contains__
        advice = getattr(err, "for_command", None)  # an error whose advice names an option some commands lack
        message = " ".join((advice(has_option) if callable(advice) else str(err)).split()) or type(err).__name__
        print(f"adaaug {args.command}: error: {message}", file=sys.stderr)
        return 2
    except Exception as err:  # the environment: network, disk, permissions, a missing package, memory
        from ..runtime.environment import EXIT_ENVIRONMENT, environment_message, is_environment_failure

        if not is_environment_failure(err) or os.environ.get("ADAAUG_DEBUG") == "1":
            raise
        has_option = sub.choices[args.command]._option_string_actions.__contains__
        print(f"adaaug {args.command}: error: {environment_message(err, has_option)}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    finally:
        if previous is None:
            os.environ.pop("ADAAUG_PROGRESS", None)
        else:
            os.environ["ADAAUG_PROGRESS"] = previous


if __name__ == "__main__":
    sys.exit(main())
