"""Options of ``adaaug finetune`` (:func:`add_arguments`), each with its description and default.

The defaults are :class:`~adaaug.experiments.finetune_config.FinetuneConfig`'s; the documented grid
(docs/benchmarks.md, benchmarks/finetune/README.md) is those defaults with ``--ada-share 0.25``
(:data:`HEADLINE`), which the help's epilog names.
"""
from __future__ import annotations

import argparse

#: The headline grid of the documentation (benchmarks/finetune/README.md): the defaults plus the CPU-scale
#: ``--ada-share 0.25``, two runs at a time.
HEADLINE = ("adaaug finetune --data TRAIN --dev DEV --out runs/ft --ada-share 0.25 --jobs 2")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``adaaug finetune`` (defaults from :class:`FinetuneConfig`), each with its description."""
    from .finetune_config import METHODS, FinetuneConfig

    d = FinetuneConfig(data="", dev="", out="")

    def listed(values) -> str:
        return " ".join(map(str, values))

    p.epilog = (f"The documented headline grid (docs/benchmarks.md) is these defaults with AdA on a quarter of "
                f"each batch: {HEADLINE}")
    p.add_argument("--data", required=True, help="training set (ImageFolder dir, cifar10:<root> or .tar.gz)")
    p.add_argument("--dev", required=True, help="held-out set, scored clean and corrupted (same forms)")
    p.add_argument("--out", required=True, help="output directory (runs/, results.json, results.md, finetune.png)")
    p.add_argument("--methods", nargs="+", default=list(d.methods), metavar="METHOD",
                   help=f"methods to fine-tune with, among {', '.join(METHODS)} [{listed(d.methods)}]")
    p.add_argument("--backbones", nargs="+", default=list(d.backbones), metavar="NAME",
                   help=f"AdA corruption networks (packaged cifar10 weights); each method with AdA gets one row per "
                        f"backbone [{listed(d.backbones)}]")
    p.add_argument("--seeds", nargs="+", type=int, default=list(d.seeds), metavar="SEED",
                   help=f"one run per seed and row; a seed picks the training subset, batch order and every "
                        f"augmentation draw, so rows are compared paired by seed [{listed(d.seeds)}]")
    ints = {"subset": "training images per run (a seeded random subset of --data)",
            "epochs": "fine-tuning epochs per run",
            "batch_size": "images per SGD step",
            "ada_steps": "M, AdA's ascent steps (paper: 10 on CIFAR-10)",
            "dev_limit": "held-out images scored, clean and under each corruption (a seeded subset of --dev)",
            "dev_seed": "seeds the scored dev subset and its corruptions",
            "chunk_size": "AdA nano-batch: examples per vmap chunk (memory)",
            "threads": "torch threads per run"}
    for name, text in ints.items():
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name),
                       help=f"{text} [{getattr(d, name)}]")
    reals = {"lr": "peak SGD learning rate (Nesterov 0.9, cosine decay to 0 per step, no warm-up)",
             "weight_decay": "L2 weight decay",
             "nu": "AdA's relative radius ν (paper: 0.015)",
             "ada_share": "share of each batch AdA corrupts: 1 is Algorithm 1 (every image); the documented "
                          "runs use 0.25, a CPU-scale option"}
    for name, text in reals.items():
        p.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(d, name),
                       help=f"{text} [{getattr(d, name):g}]")
    p.add_argument("--no-jsd", action="store_true", help="AugMix without the JSD consistency loss [off]")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel processes [1]")
    p.add_argument("--report-only", action="store_true", help="summarise the finished runs; train nothing [off]")
    p.add_argument("--overwrite", action="store_true",
                   help="remove what an earlier grid wrote in --out (runs, sets, results; other files are kept), or "
                        "write into a non-empty --out that is not a finetune folder [off: finished runs are reused]")
