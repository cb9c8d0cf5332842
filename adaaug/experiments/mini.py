"""``adaaug mini-protocol``: the paper's CIFAR-10 → CIFAR-10-C comparison, shrunk to fit a CPU hour.

The full protocol (Section 5, Table 1; App. E.1) trains a pre-activation ResNet-50 for 300 epochs
per method and reports clean error and CIFAR-10-C mCE (nominal 29.37 → AdA (EDSR) 15.47). This
command runs the same pipeline at a size that fits in about an hour on 2 CPU cores:

1. train a ResNet-20 per method (``nominal``, ``ada``, ``augmix``, ``ada+augmix`` by default) on a
   seeded random subset of the training split, with :func:`adaaug.train.loop.train`;
2. build a CIFAR-10-C-format set (15 corruptions × 5 severities) from a seeded subset of the dev
   split with :func:`adaaug.corruptions.dataset.make_c` (once; cached in ``OUT/cifar10-c``);
3. evaluate each model on the clean dev images and on that set
   (:func:`adaaug.evaluate.metrics.accuracy`, :func:`~adaaug.evaluate.metrics.evaluate_corruptions`);
4. write ``OUT/results.json``, ``OUT/results.md`` (method, clean error, mCE, the 15 corruption
   errors, all in %) and ``OUT/mce.png`` (mCE and clean error per method, the machine in its title;
   :mod:`~adaaug.experiments.mini_report`).

``--data`` / ``--dev`` take an ImageFolder directory, ``cifar10:<root>`` (torchvision's CIFAR10),
or a ``.tar.gz`` of an ImageFolder tree (``<split>/<class>/<image>`` inside), extracted into ``OUT/data``.

Everything is seeded and runs with a fixed number of threads per process, so a rerun gives the same
table; finished training runs and evaluations in ``OUT`` are reused when their settings match, and an
interrupted run resumes from its last epoch. ``OUT/mini_protocol.json`` marks the folder and records the
settings: a rerun with other settings (any but ``--methods``, ``--jobs``, ``--threads``, ``--device``) is
refused once a model has been trained there, and ``--overwrite`` replaces the earlier run's files
(:data:`NAMES`; other files are kept); a non-empty folder without that mark is refused too. ``--jobs N``
(default 2) trains N methods at once (one process each, ``--threads`` threads per process; results do not
depend on ``--jobs``).

Defaults: ν = 0.015, the paper's radius (:data:`adaaug.paper.NU_EDSR_CIFAR10`), M = 2 AdA steps, the
paper's EDSR construction (``edsr``: super-resolve ×2, resize back), 3000 training images × 3 epochs,
1000 dev images, 2 processes × 1 thread; :func:`estimate_seconds` puts them under an hour on 2 idle cores.
One thread per process is deliberate: on loaded cores two threads ran AdA 4× slower. At this size
accuracies are far from the paper's, and a classifier trained from scratch is far weaker than the
paper's: the table shows the direction of the effects at this scale, not their full-scale size. For a
comparison close to the paper's accuracy, fine-tune the packaged ResNet-20 instead
(:mod:`adaaug.experiments.finetune`).

Earlier versions defaulted to ν = 0.005 with 10,000 images: the EDSR then downsampled images ×2 before
super-resolving them (now ``edsr-down``), which lost detail even at δ = 0 (SSIM 0.92) and made ν = 0.015
far harsher than the paper's Figure 2 (mean SSIM 0.77). Run as an upsampler, EDSR returns the image at
δ = 0 (SSIM 0.9998) and ν = 0.015 gives a median SSIM near 0.96 (M = 2, packaged ResNet-20), so the
work-around is gone; the upsampler runs its body at the input's full size and costs about 3.3× the
``edsr-down`` pass (measured interleaved, M = 2), hence the smaller default subset.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import paper
from ..corruptions import BENCHMARK
from .archives import resolve_spec
# SHORT and markdown_table are re-exported for callers of the earlier single module
from .mini_report import SHORT, data_label, machine_name, markdown_table, report, save_plot  # noqa: F401

METHODS = ("nominal", "ada", "augmix", "ada+augmix")
#: Paper's full-scale CIFAR-10-C mCE (%, Table 1; pre-activation ResNet-50, 300 epochs).
PAPER_MCE = {"nominal": 29.37, "ada": 15.47, "augmix": 12.26, "ada+augmix": 9.40}
#: Seconds per image per process while two processes share this project's 2 cores (1 thread each,
#: ResNet-20, batch 128; last epoch of the default run): nominal 446 img/s, AugMix + JSD 129 img/s,
#: AdA (EDSR, M = 2) 15.5 img/s. AdA's split into a fixed part and a part per step (M) follows an
#: earlier measurement at M = 1, 2 and 10 (0.029 + 0.022·M s on busier cores), rescaled to the M = 2
#: figure. Evaluation 900 img/s; make-c 1400 corrupted img/s (measured alone).
RATES = {"nominal": 1 / 446, "augmix": 1 / 129, "ada_base": 0.0255, "ada_step": 0.0195,
         "eval": 1 / 900, "make_c": 1 / 1400}
#: AdA's cost per backbone relative to ``RATES``' ada figures (measured with ``edsr-down``): the ``edsr``
#: upsampler 3.3× (interleaved on the same loaded cores, M = 2: 0.62–0.72 s vs 0.18–0.23 s per image);
#: other backbones are estimated as ``edsr``.
BACKBONE_COST = {"edsr-down": 1.0, "edsr": 3.3}
#: What a run writes into ``OUT`` (besides ``mini_protocol.json``): ``--overwrite`` removes these.
NAMES = ("runs", "clean", "cifar10-c", "data", "results.json", "results.md", "mce.png")
#: Settings a rerun may change and still continue the run in ``OUT``.
FREE_SETTINGS = ("methods", "jobs", "threads", "device")


@dataclass
class MiniConfig:
    """Settings of one mini-protocol run (defaults in brackets are the command's).

    Attributes:
        data: training set: ImageFolder dir, ``cifar10:<root>`` or ``.tar.gz`` of an ImageFolder tree.
        dev: evaluation set (same forms); its clean images and their corruptions are scored.
        out: output directory (runs, cached corruption set, results).
        subset: training images per method, a seeded random subset [3000]; ``None`` = all.
        epochs: training epochs per method [3]; cosine schedule, ``warmup_epochs`` [0] of warm-up.
        methods: rows of the table, from :data:`~adaaug.augment.compose.METHODS` [nominal ada augmix ada+augmix].
        seed: seeds the subsets, model init, augmentation and corruptions [0].
        ada_steps: M, AdA's sign-gradient steps [2] (paper: 10; Table 6: M = 2 gives most of the gain).
        nu: AdA's relative radius ν [0.015, the paper's].
        dev_limit: dev images scored (clean and corrupted), a seeded random subset [1000]; ``None`` = all.
        backbone, backbone_weights: AdA corruption network [edsr] and its weights tag [cifar10];
            ``None`` = untrained (tests only).
        batch_size, lr, weight_decay: SGD (Nesterov 0.9) settings [128, 0.1, 5e-4: ResNet-20's recipe].
        chunk_size: AdA nano-batch [8, App. B.1].
        corruptions: corruptions to build and score [the 15 of CIFAR-10-C]; mCE needs all 15.
        jobs: methods trained at once, one process each [2]. threads: torch threads per process [1].
        device: ``cpu`` [default] or ``auto`` / ``cuda``.
    """

    data: str
    dev: str
    out: str
    subset: int | None = 3000
    epochs: int = 3
    methods: tuple[str, ...] = METHODS
    seed: int = 0
    ada_steps: int = 2
    nu: float = paper.NU_EDSR_CIFAR10
    dev_limit: int | None = 1000
    backbone: str = "edsr"
    backbone_weights: str | None = "cifar10"
    batch_size: int = 128
    lr: float = 0.1
    weight_decay: float = 5e-4
    warmup_epochs: int = 0
    chunk_size: int = 8
    corruptions: tuple[str, ...] = BENCHMARK
    jobs: int = 2
    threads: int = 1
    device: str = "cpu"

    def validate(self) -> "MiniConfig":
        from ..augment.compose import METHODS as ALL_METHODS

        bad = [m for m in self.methods if m not in ALL_METHODS or "deepaugment" in m]
        if bad or not self.methods or len(set(self.methods)) != len(self.methods):
            raise ValueError(f"--methods must be distinct names among {', '.join(METHODS)} (DeepAugment needs a "
                             f"processed copy of the data: use `adaaug train`), got {list(self.methods)}")
        unknown = [c for c in self.corruptions if c not in BENCHMARK]
        if unknown or not self.corruptions:
            raise ValueError(f"--corruptions must be among {', '.join(BENCHMARK)}, got {list(self.corruptions)}")
        for name in ("epochs", "batch_size", "chunk_size", "jobs", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be ≥ 1, got {getattr(self, name)}")
        for name in ("subset", "dev_limit"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be ≥ 1, got {getattr(self, name)}")
        if not self.nu > 0:
            raise ValueError(f"--nu must be > 0, got {self.nu}")
        if self.ada_steps < 0 or self.seed < 0:
            raise ValueError(f"--ada-steps and --seed must be ≥ 0, got {self.ada_steps} and {self.seed}")
        from ..runtime.devices import check_device

        check_device(self.device)  # before the dev set's corruptions are written
        return self


def estimate_seconds(cfg: MiniConfig, train_images: int, dev_images: int) -> float:
    """Rough wall time (s) from :data:`RATES` and :data:`BACKBONE_COST` (measured on 2 cores)."""
    ada = (RATES["ada_base"] + RATES["ada_step"] * cfg.ada_steps) * BACKBONE_COST.get(cfg.backbone,
                                                                                       BACKBONE_COST["edsr"])
    per_image = {"nominal": RATES["nominal"], "augmix": RATES["augmix"], "ada": ada,
                 "ada+augmix": ada + RATES["augmix"]}
    evals = dev_images * (1 + 5 * len(cfg.corruptions)) * RATES["eval"]
    costs = sorted((per_image.get(m, ada) * train_images * cfg.epochs + evals for m in cfg.methods), reverse=True)
    workers = [0.0] * min(cfg.jobs, len(costs))
    for c in costs:  # longest first, each to the least loaded process, as the pool schedules them
        workers[workers.index(min(workers))] += c
    return max(workers) + dev_images * 5 * len(cfg.corruptions) * RATES["make_c"]


# ---- data ---------------------------------------------------------------------------------------
def class_names(spec: str) -> list[str]:
    """The class names of a data spec (an extracted one), without decoding it: CIFAR-10's for ``cifar10:<root>``,
    else the ImageFolder tree's class folders."""
    from ..data.images import class_folders
    from ..evaluate.labels import CIFAR10_CLASSES

    return list(CIFAR10_CLASSES) if spec.startswith("cifar10:") else class_folders(spec)


def open_out(out: str | Path, data: str, dev: str) -> tuple[Path, str, str]:
    """``OUT`` (created) and the training and dev specs, resolved by :func:`resolve_spec` under ``OUT/data``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return out, resolve_spec(data, out / "data"), resolve_spec(dev, out / "data")


def prepare_dev(cfg: MiniConfig, dev_spec: str, out: Path) -> tuple[Path, Path, dict]:
    """Seeded dev subset → ``OUT/clean`` (``images.npy``/``labels.npy``) and ``OUT/cifar10-c`` (make-c), cached.

    Returns ``(clean_dir, c_dir, key)``; ``key`` identifies the set (rebuilt when it changes).
    """
    from ..data.images import load_images
    from ..corruptions.dataset import make_c

    key = {"dev": dev_spec, "dev_limit": cfg.dev_limit, "seed": cfg.seed, "corruptions": list(cfg.corruptions)}
    clean_dir, c_dir = out / "clean", out / "cifar10-c"
    key_file = c_dir / "mini.json"
    if key_file.exists() and json.loads(key_file.read_text()) == key and (clean_dir / "labels.npy").exists():
        return clean_dir, c_dir, key
    shutil.rmtree(c_dir, ignore_errors=True)
    dev = load_images(dev_spec, train=False).subset(cfg.dev_limit, cfg.seed)
    clean_dir.mkdir(parents=True, exist_ok=True)
    np.save(clean_dir / "images.npy", dev.images.permute(0, 2, 3, 1).contiguous().numpy())
    np.save(clean_dir / "labels.npy", dev.labels.numpy().astype(np.int64))
    (clean_dir / "classes.json").write_text(json.dumps(dev.classes) + "\n")
    make_c(dev, c_dir, size="cifar", seed=cfg.seed, corruptions=list(cfg.corruptions), verbose=False)
    key_file.write_text(json.dumps(key, indent=2) + "\n")
    return clean_dir, c_dir, key


# ---- one method: train (or reuse) and evaluate ----------------------------------------------------
def train_config(cfg: MiniConfig, method: str, data_spec: str, out: Path):
    """The :class:`~adaaug.train.config.TrainConfig` of one method (CIFAR-10 preset, ResNet-20)."""
    from ..train.config import TrainConfig

    return TrainConfig(preset="cifar10", data=data_spec, out=str(out / "runs" / method), arch="resnet20",
                       method=method, backbone=cfg.backbone, backbone_weights=cfg.backbone_weights,
                       ada_steps=cfg.ada_steps, nu=cfg.nu, chunk_size=cfg.chunk_size, epochs=cfg.epochs,
                       batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
                       warmup_epochs=cfg.warmup_epochs, subset=cfg.subset, seed=cfg.seed, device=cfg.device,
                       threads=cfg.threads, progress=False)


def run_method(cfg: MiniConfig, method: str, data_spec: str, out: Path, clean_dir: Path, c_dir: Path,
               c_key: dict) -> dict[str, Any]:
    """Train ``method`` (reusing a finished run with the same settings), then score it; returns its row."""
    import torch

    from ..evaluate.command import load_model_and_classes
    from ..evaluate.metrics import accuracy, evaluate_corruptions
    from ..train.distributed import resolve_device
    from ..evaluate.sets import open_image_set
    from ..train.loop import train
    from ..train.config import CHECKPOINT_NAME

    torch.set_num_threads(cfg.threads)
    tc = train_config(cfg, method, data_spec, out)
    run = Path(tc.out)
    saved = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else None
    if saved is not None and tc.resume_mismatch(saved):
        raise ValueError(f"{run} holds a training run with other settings ({', '.join(tc.resume_mismatch(saved))}): "
                         f"pass --overwrite to replace the earlier mini-protocol run, or choose a new --out")
    tc.resume = (run / CHECKPOINT_NAME).exists()  # an interrupted run continues from its last epoch
    trained = False
    if not (run / "result.json").exists():
        t0 = time.time()
        train(tc, overwrite=not tc.resume)  # no checkpoint: what a killed attempt left in its own folder goes
        trained = True
        print(f"[mini] {method}: trained in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
    summary = json.loads((run / "result.json").read_text())
    eval_file = run / "mini_eval.json"
    if not trained and eval_file.exists():
        cached = json.loads(eval_file.read_text())
        if cached.get("c_key") == c_key:
            return cached["row"]
    t0 = time.time()
    model, classes = load_model_and_classes(checkpoint=run / "final.safetensors")
    model = model.to(resolve_device(tc.device))
    clean = accuracy(model, open_image_set(clean_dir), classes=classes, batch_size=500)
    c = evaluate_corruptions(model, c_dir, corruptions=list(cfg.corruptions), classes=classes, batch_size=500)
    row = {"method": method, "clean_error": 100.0 - clean, "mce": c["mce"], "ce": c["ce"], "errors": c["errors"],
           "train_wall_s": summary.get("wall_s"), "final_train_acc": summary.get("final_train_acc"),
           "train_images": summary.get("train_images"), "eval_s": round(time.time() - t0, 1)}
    eval_file.write_text(json.dumps({"c_key": c_key, "row": row}, indent=2) + "\n")
    return row


# ---- the whole protocol ---------------------------------------------------------------------------
def run(cfg: MiniConfig, overwrite: bool = False) -> dict[str, Any]:
    """The whole mini-protocol; returns what it writes to ``OUT/results.json``.

    ``overwrite``: replace an earlier run in ``cfg.out`` (its :data:`NAMES`) instead of refusing other settings
    or a non-empty folder that is not a mini-protocol run's (``FileExistsError``, before any work).
    """
    from ..data.images import load_images
    from ..runtime.outdir import claim_run_folder
    from ..runtime.provenance import producer

    cfg.validate()
    runs = Path(cfg.out) / "runs"
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in FREE_SETTINGS}
    claim_run_folder(cfg.out, command="mini-protocol", manifest="mini_protocol.json", names=NAMES,
                     settings=settings, overwrite=overwrite, compare=runs.is_dir() and any(runs.iterdir()))
    start = time.time()
    out, data_spec, dev_spec = open_out(cfg.out, cfg.data, cfg.dev)
    if any("ada" in m.split("+") for m in cfg.methods):  # fail before training anything
        from ..weights import load_backbone

        load_backbone(cfg.backbone, cfg.backbone_weights)
    train_set = load_images(data_spec, train=True)  # decodes once (cached in the adaaug cache directory)
    train_images = len(train_set)
    n_train = min(cfg.subset or train_images, train_images)
    unknown = sorted(set(class_names(dev_spec)) - set(train_set.classes))
    if unknown:  # before the -C set is made and any model trained: the models could not score them
        raise ValueError(f"--dev {cfg.dev} has classes that --data {cfg.data} lacks ({', '.join(unknown[:5])}"
                         f"{', ...' if len(unknown) > 5 else ''}); the models learn --data's classes "
                         f"({', '.join(train_set.classes[:5])}{', ...' if len(train_set.classes) > 5 else ''}): "
                         f"score them on a set of the same classes, or a subset of them")
    clean_dir, c_dir, c_key = prepare_dev(cfg, dev_spec, out)
    n_dev = len(np.load(clean_dir / "labels.npy"))
    estimate = estimate_seconds(cfg, n_train, n_dev)
    print(f"[mini] {len(cfg.methods)} methods × {n_train} images × {cfg.epochs} epochs, {n_dev} dev images × "
          f"{len(cfg.corruptions)} corruptions × 5 severities; rough estimate {estimate / 60:.0f} min "
          f"(rates measured on 2 cores)", file=sys.stderr, flush=True)
    args = (data_spec, out, clean_dir, c_dir, c_key)
    if cfg.jobs > 1 and len(cfg.methods) > 1:
        from ..runtime.interrupts import process_pool  # an interrupt stops the workers at once

        order = sorted(cfg.methods, key=lambda m: ("ada" in m, "augmix" in m), reverse=True)  # longest first
        with process_pool(min(cfg.jobs, len(order))) as pool:
            futures = {m: pool.submit(run_method, cfg, m, *args) for m in order}
            by_method = {m: f.result() for m, f in futures.items()}
    else:
        by_method = {m: run_method(cfg, m, *args) for m in cfg.methods}
    rows = [by_method[m] for m in cfg.methods]
    settings = dataclasses.asdict(cfg)
    classes = len(json.loads((clean_dir / "classes.json").read_text()))
    results = {"settings": settings, "train_images": n_train, "dev_images": n_dev, "dev_classes": classes, "rows": rows,
               "paper_mce": {m: PAPER_MCE[m] for m in cfg.methods if m in PAPER_MCE},
               "wall_s": round(time.time() - start, 1), "estimate_s": round(estimate, 1),
               "machine": machine_name(cfg.device), "producer": producer("mini-protocol")}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    untrained = "" if cfg.backbone_weights else " (untrained)"
    title = (f"ResNet-20, {n_train} train images × {cfg.epochs} epochs, AdA {cfg.backbone}{untrained} "
             f"ν={cfg.nu:g} M={cfg.ada_steps}; {n_dev} dev images\ndata {data_label(cfg.data)}, "
             f"{results['machine']}")
    save_plot(rows, out / "mce.png", title, classes)
    (out / "results.md").write_text(report(results) + "\n")
    return results


# ---- command line -------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    d = MiniConfig(data="", dev="", out="")
    p.epilog = ("example: adaaug mini-protocol --data cifar10:data/cifar10 --dev cifar10:data/cifar10 --out runs/mini "
                "(CIFAR-10's training split to train, its test split to score; estimated 40 min on 2 idle CPU cores)")
    p.add_argument("--data", required=True,
                   help="training set: ImageFolder dir, cifar10:<root> or a .tar.gz of an ImageFolder tree")
    p.add_argument("--dev", required=True,
                   help="test set scored clean and corrupted (same forms; cifar10:<root> reads the test split)")
    p.add_argument("--out", required=True, help="output directory (results.json, results.md, mce.png)")
    p.add_argument("--subset", type=lambda t: None if t == "all" else int(t), default=d.subset,
                   help=f"training images per method, or 'all' [{d.subset}]")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"training epochs per method [{d.epochs}]")
    p.add_argument("--methods", nargs="+", default=list(d.methods),
                   help=f"methods to train and compare [{' '.join(d.methods)}]")
    p.add_argument("--seed", type=int, default=d.seed,
                   help=f"seeds data subsets, training and corruptions [{d.seed}]")
    p.add_argument("--ada-steps", type=int, default=d.ada_steps, help=f"M [{d.ada_steps}; paper 10]")
    p.add_argument("--nu", type=float, default=d.nu, help=f"AdA relative radius ν [{d.nu}]")
    p.add_argument("--dev-limit", type=lambda t: None if t == "all" else int(t), default=d.dev_limit,
                   help=f"dev images scored, or 'all' [{d.dev_limit}]")
    p.add_argument("--backbone", default=d.backbone, help=f"AdA corruption network [{d.backbone}]")
    p.add_argument("--backbone-weights", default=d.backbone_weights,
                   help=f"weights tag, .safetensors path, or 'none' (untrained) [{d.backbone_weights}]")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"training batch [{d.batch_size}]")
    p.add_argument("--lr", type=float, default=d.lr, help=f"base learning rate [{d.lr}]")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help=f"SGD weight decay [{d.weight_decay}]")
    p.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs, help=f"linear warm-up epochs [{d.warmup_epochs}]")
    p.add_argument("--chunk-size", type=int, default=d.chunk_size, help=f"AdA nano-batch [{d.chunk_size}]")
    p.add_argument("--corruptions", nargs="+", default=list(d.corruptions), metavar="NAME",
                   help="subset of the 15 (mCE needs all) [all 15]")
    p.add_argument("--jobs", type=int, default=d.jobs, help=f"methods trained in parallel processes [{d.jobs}]")
    p.add_argument("--threads", type=int, default=d.threads, help=f"torch threads per process [{d.threads}]")
    p.add_argument("--device", default=d.device, help=f"cpu, auto or cuda [{d.device}]")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier run in a non-empty --out (its runs, sets and results; other files are "
                        "kept) instead of refusing other settings or a folder that is not a mini-protocol run's "
                        "[off: same settings continue, others are refused]")


def main(args: argparse.Namespace) -> int:
    weights = None if str(args.backbone_weights).lower() == "none" else args.backbone_weights
    cfg = MiniConfig(data=args.data, dev=args.dev, out=args.out, subset=args.subset, epochs=args.epochs,
                     methods=tuple(args.methods), seed=args.seed, ada_steps=args.ada_steps, nu=args.nu,
                     dev_limit=args.dev_limit,
                     backbone=args.backbone, backbone_weights=weights, batch_size=args.batch_size, lr=args.lr,
                     weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs, chunk_size=args.chunk_size,
                     corruptions=tuple(args.corruptions), jobs=args.jobs, threads=args.threads, device=args.device)
    try:
        results = run(cfg, overwrite=getattr(args, "overwrite", False))
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        advice = getattr(err, "for_command", None)  # advice naming an option this command lacks is left out
        print(f"adaaug mini-protocol: error: {advice(lambda flag: False) if callable(advice) else err}", file=sys.stderr)
        return 2
    print(report(results))
    print(f"wall time {results['wall_s'] / 60:.1f} min (rough estimate was {results['estimate_s'] / 60:.1f} min)")
    print(f"wrote {Path(cfg.out) / 'results.md'}, results.json, mce.png")
    return 0
