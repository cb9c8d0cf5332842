"""``adaaug train-backbone NAME``: its options, the image-size check before any work, and the command.

The training itself is :func:`adaaug.train.backbone.train_backbone`; the export into a weights
directory :func:`adaaug.train.backbone.export_trained`.

Output folders, checked before any work (:func:`claim_outputs`): the run folder ``OUT/NAME`` must be new or
empty, hold a checkpoint to ``--resume`` (of the same settings, which ``OUT/NAME/config.json`` records), or
``--overwrite`` removes the files an earlier run wrote there (:data:`RUN_FILES`; others are kept). The
``--export`` directory collects weights by design: other backbones and tags in it stay, and its
``manifest.json`` gets this entry added (merged); ``NAME-TAG.safetensors`` and its card already there are
replaced only with ``--overwrite``. A non-empty ``--export`` directory without a ``manifest.json`` (not a
weights directory) is refused unless ``--overwrite``.
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
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier run's files in <out>/<name> (a new run; with --resume a checkpoint there "
                        "is continued instead) and an earlier <name>-<tag> export in the --export directory; other "
                        "files are kept (default: refuse)")


#: What a run writes into ``OUT/NAME`` (besides a checkpoint's temporary ``.checkpoint.pt.tmp-<pid>``).
RUN_FILES = ("config.json", "metrics.jsonl", "checkpoint.pt", "final_state.pt", "result.json")
#: Settings recorded in ``OUT/NAME/config.json``; ``--resume`` must repeat them.
SETTINGS = ("data", "dev", "epochs", "batch_size", "lr", "subset", "seed", "init")


def claim_outputs(args: argparse.Namespace, run: Path) -> bool:
    """Check (and with ``--overwrite`` clear) the run folder ``run`` and the ``--export`` target before any work;
    returns whether the run resumes a checkpoint (else the caller writes ``run/config.json``, :data:`SETTINGS`).

    Raises:
        UsageError: a folder that holds something and the option to use (``--resume``, ``--overwrite``), or
            ``--resume`` with other settings than the checkpoint's run (listed).
    """
    from ..runtime.outdir import claim_output_dir, claim_output_files

    resume = bool(args.resume) and (run / "checkpoint.pt").is_file()
    overwrite = bool(getattr(args, "overwrite", False))
    settings = {k: getattr(args, k) for k in SETTINGS}
    try:
        if args.export:
            weights = Path(args.export)
            if weights.is_dir() and any(weights.iterdir()) and not (weights / "manifest.json").is_file():
                claim_output_dir(weights, overwrite=overwrite)  # not a weights directory
            stem = f"{args.name}-{args.tag}"
            claim_output_files([weights / f"{stem}.safetensors", weights / f"{stem}.json"], overwrite=overwrite,
                               what=f"an earlier export of {args.name} weights tagged {args.tag!r}",
                               other="pick another --tag or --export directory")
        if resume:
            saved = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else settings
            differ = [k for k in SETTINGS if saved.get(k) != settings[k]]
            if differ:
                raise UsageError(f"cannot resume {run}: settings differ from the checkpoint's run (" + ", ".join(
                    f"--{k.replace('_', '-')} {saved.get(k)!r} → {settings[k]!r}" for k in differ) + "): repeat "
                    f"them, or drop --resume and pass --overwrite to start a new run there")
            return True
        if run.is_dir() and any(run.iterdir()) and not overwrite:
            how = "pass --resume to continue that run, or " if (run / "checkpoint.pt").is_file() else ""
            raise UsageError(f"{run} is not empty ({', '.join(sorted(p.name for p in run.iterdir())[:4])}): {how}"
                             f"pass --overwrite to start a new run there (the files an earlier run wrote are "
                             f"replaced, others are kept), or choose another --out")
        stale = [p.name for p in run.glob(".checkpoint.pt.tmp-*")]  # a killed run's
        claim_output_dir(run, overwrite=True, earlier=[*RUN_FILES, *stale])
    except FileExistsError as err:
        raise UsageError(str(err)) from None
    return False


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
    # a run that fails before its first checkpoint leaves no folder or file of its own (one with a checkpoint resumes)
    resume = claim_outputs(args, out)
    with removed_on_failure(Path(args.out), out, *(out / n for n in RUN_FILES),
                            keep_if=lambda: (out / "checkpoint.pt").exists()):
        if not resume:
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.json").write_text(json.dumps({k: getattr(args, k) for k in SETTINGS}, indent=2) + "\n")
        result = train_backbone(args.name, args.data, out, dev=args.dev, epochs=args.epochs,
                                batch_size=args.batch_size, lr=args.lr, subset=args.subset, seed=args.seed,
                                resume=resume, threads=args.threads, progress=args.progress,
                                init=args.init)
    print(json.dumps(result, indent=2))
    if args.export:
        command = "adaaug " + " ".join(sys.argv[1:])
        print(export_trained(args.name, out, args.export, args.tag, result, command))  # manifest.json merged
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
            raise UsageError(f"{name} needs image sides divisible by {m}, but images of --data {data} are {w}×{h}: "
                             f"crop them to {w // m * m}×{h // m * m} or pad them to {-(-w // m) * m}×{-(-h // m) * m}")
