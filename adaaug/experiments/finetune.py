"""Fine-tuning protocol: AdA and AugMix on the packaged ResNet-20, scored on a CIFAR-10-C-format set.

At CPU scale, a classifier trained from scratch (``adaaug mini-protocol``) stays far from the paper's
accuracy: its clean error dominates every corruption error and AdA finds much harsher corruptions
against it than against the paper's ResNet-50. This protocol starts close to the paper's regime instead:
the packaged ResNet-20 (nominally trained, about 85 % on the dev split; :func:`adaaug.load_classifier`) is
unfrozen and fine-tuned, per method and seed, on a seeded subset of the training split:

- ``nominal``: standard augmentation only (pad 4, random crop, flip; App. E.5);
- ``ada``: then :class:`~adaaug.transform.AdversarialAugment` (Algorithm 1 with the SSIM line search);
- ``augmix``: then :class:`~adaaug.augment.augmix.AugMix` (with the JSD consistency loss when ``jsd``);
- ``ada+augmix``: AdA, then AugMix (App. E.5's order).

Each model is scored on clean held-out dev images and on their corruptions written by
:func:`adaaug.corruptions.dataset.make_c` (15 corruptions × 5 severities; built once by
:func:`adaaug.experiments.mini.prepare_dev`, the same for every seed). mCE is the plain mean of the 15
corruption errors (CIFAR-10-C has no AlexNet normalisation).

**CPU-scale option, not the paper's method: ``ada_share``.** Algorithm 1 corrupts every training
example (``ada_share = 1``, the default). With ``ada_share = s < 1`` a seeded random ``round(s·N)``
examples of each batch go through AdA and the rest stay clean (after standard augmentation), which costs
``s`` times as much AdA and keeps a short fine-tune from drifting away from clean accuracy. The setting
is written into every result and table.

Runs are cached per (method, backbone, seed, settings) under ``OUT/runs``: a rerun skips finished ones,
so an interrupted grid resumes, and grids of other settings may share ``OUT`` (``results.*`` then describe the
latest). ``OUT/finetune.json`` marks the folder as this command's: a non-empty folder without it is refused, and
``--overwrite`` removes everything an earlier grid wrote there (:data:`NAMES`; other files are kept).
Everything is seeded (one ``torch.Generator`` per run; 1 torch thread by default): a rerun on CPU gives the
same numbers.

``adaaug finetune --data TRAIN --dev DEV --out OUT`` runs the grid and writes
``OUT/results.json``, ``OUT/results.md`` and ``OUT/finetune.png`` (tables and figure: :mod:`adaaug.experiments.finetune_report`).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import paper
from ..corruptions import BENCHMARK
from ..evaluate.labels import CIFAR10_CLASSES
from .finetune_config import METHODS, FinetuneConfig  # noqa: F401 (re-exported)
from .finetune_options import HEADLINE, add_arguments  # noqa: F401 (the command's options)
from .finetune_report import _machine, paired, report, row_name, save_plot, summarise  # noqa: F401 (paired re-exported)

#: What the command writes into ``OUT`` (besides ``finetune.json``): ``--overwrite`` removes these.
NAMES = ("runs", "clean", "cifar10-c", "data", "results.json", "results.md", "finetune.png")


def run_key(cfg: FinetuneConfig, method: str, backbone: str | None, seed: int) -> dict[str, Any]:
    """Everything a run's result depends on (its cache key)."""
    uses_ada = "ada" in method.split("+")
    key = {"method": method, "seed": seed, "data": cfg.data, "subset": cfg.subset, "epochs": cfg.epochs,
           "batch_size": cfg.batch_size, "lr": cfg.lr, "weight_decay": cfg.weight_decay,
           "dev": cfg.dev, "dev_limit": cfg.dev_limit, "dev_seed": cfg.dev_seed, "version": 1}
    if uses_ada:
        key.update(backbone=backbone, ada_steps=cfg.ada_steps, nu=cfg.nu, ada_share=cfg.ada_share,
                   chunk_size=cfg.chunk_size)
    if "augmix" in method:
        key["jsd"] = cfg.jsd
    return key


def _key_path(out: Path, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    name = key["method"].replace("+", "_") + (f"-{key['backbone']}" if "backbone" in key else "")
    return out / "runs" / f"{name}-s{key['seed']}-{digest}.json"


# ---- one run --------------------------------------------------------------------------------------
def finetune(model, images, labels, *, method: str, backbone: str | None, seed: int, epochs: int,
             batch_size: int, lr: float, weight_decay: float, ada_steps: int, nu: float, ada_share: float,
             jsd: bool, chunk_size: int, log=None) -> dict[str, Any]:
    """Fine-tune ``model`` in place (train mode, all parameters) on uint8 ``images`` N×3×32×32 / ``labels`` N.

    Per batch: standard augmentation, then AdA on a seeded ``round(ada_share·B)`` of the batch (methods
    with AdA; the rest stay clean), then AugMix (methods with AugMix; with ``jsd`` the loss is cross-entropy
    on the clean view + 12·JSD over clean/AugMix/AugMix, one forward over the three). Returns training stats.
    """
    import torch
    import torch.nn.functional as F

    from ..augment.augmix import AugMix
    from ..augment.compose import standard_augment
    from ..augment.jsd import jsd_loss
    from ..transform import AdversarialAugment
    from ..data.images import iterate_batches, to_float

    parts = method.split("+")
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.requires_grad_(True)
    model.train()
    ada = (AdversarialAugment(model, backbone=backbone, nu=nu, steps=ada_steps, chunk_size=chunk_size,
                              generator=g) if "ada" in parts else None)
    augmix = AugMix(generator=g) if "augmix" in parts else None
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    n = len(labels)
    total = epochs * -(-n // batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5 * (1 + np.cos(np.pi * step / total)))
    step, t0, ada_s, correct, seen, ssims = 0, time.time(), 0.0, 0, 0, []
    for epoch in range(epochs):
        for idx in iterate_batches(n, batch_size, shuffle=True, generator=g):
            x, y = standard_augment(to_float(images[idx]), "cifar10", g), labels[idx]
            if ada is not None:
                k = int(round(ada_share * len(idx)))
                pick = torch.randperm(len(idx), generator=g)[:k]
                t1 = time.time()
                x_adv, info = ada(x[pick], y[pick], return_info=True)
                ada_s += time.time() - t1
                x = x.clone()
                x[pick] = x_adv
                ssims.append(info.ssim)
            if augmix is not None and jsd:
                views = torch.cat([x, augmix(x), augmix(x)])
                logits = model(views).chunk(3)
                loss = F.cross_entropy(logits[0], y) + jsd_loss(*logits, weight=paper.AUGMIX_JSD_LAMBDA)
            else:
                if augmix is not None:
                    x = augmix(x)
                logits = (model(x),)
                loss = F.cross_entropy(logits[0], y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            correct += int((logits[0].argmax(1) == y).sum())
            seen += len(y)
        if log:
            log(f"epoch {epoch + 1}/{epochs}: train acc {100 * correct / max(seen, 1):.1f} %, "
                f"{time.time() - t0:.0f} s (AdA {ada_s:.0f} s)")
    model.eval()
    stats = {"train_s": round(time.time() - t0, 1), "ada_s": round(ada_s, 1),
             "last_epoch_train_acc": None if not seen else 100 * correct / seen}
    if ssims:
        s = torch.cat(ssims)
        stats.update(ada_images=int(s.numel()), ada_ssim_median=float(s.median()),
                     ada_ssim_p10=float(s.quantile(0.1)))
    return stats


def run_one(cfg: FinetuneConfig, method: str, backbone: str | None, seed: int, train, clean_dir: Path,
            c_dir: Path) -> dict[str, Any]:
    """Fine-tune one model (or reuse its cached result) and score it; returns the run's record."""
    import torch

    from ..weights import load_classifier
    from ..evaluate.sets import open_image_set
    from ..evaluate.metrics import accuracy, evaluate_corruptions

    out = Path(cfg.out)
    key = run_key(cfg, method, backbone, seed)
    path = _key_path(out, key)
    if path.exists():
        record = json.loads(path.read_text())
        if record.get("key") == key:
            return record
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(seed)
    sub = train.subset(cfg.subset, seed)
    model = load_classifier()

    def log(msg: str) -> None:
        print(f"[finetune] {row_name(method, backbone)} seed {seed}: {msg}", file=sys.stderr, flush=True)

    stats = finetune(model, sub.images, sub.labels, method=method, backbone=backbone, seed=seed,
                     epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
                     ada_steps=cfg.ada_steps, nu=cfg.nu, ada_share=cfg.ada_share, jsd=cfg.jsd,
                     chunk_size=cfg.chunk_size, log=log)
    t0 = time.time()
    clean = accuracy(model, open_image_set(clean_dir), classes=train.classes, batch_size=500)
    c = evaluate_corruptions(model, c_dir, corruptions=list(BENCHMARK), classes=train.classes, batch_size=500)
    record = {"key": key, "row": row_name(method, backbone), "clean_error": 100.0 - clean, "mce": c["mce"],
              "ce": c["ce"], "eval_s": round(time.time() - t0, 1), **stats}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    log(f"clean error {record['clean_error']:.2f}, mCE {record['mce']:.2f} (train {stats['train_s']:.0f} s, "
        f"eval {record['eval_s']:.0f} s)")
    return record


def _check_classes(cfg: FinetuneConfig, data_spec: str, dev_spec: str) -> list[str]:
    """Before any work: the packaged ResNet-20 has CIFAR-10's 10 outputs, so --data must have 10 classes (its
    sorted class folders take the outputs in order, as CIFAR-10's names do) and --dev those or some of them.
    Returns --data's classes: the fine-tuned models' outputs, in order."""
    from .mini import class_names

    classes = class_names(data_spec)
    if len(classes) != len(CIFAR10_CLASSES):
        raise ValueError(f"--data {cfg.data} has {len(classes)} classes; finetune starts from the packaged CIFAR-10 "
                         f"ResNet-20, whose 10 outputs its sorted class folders take in order: pass CIFAR-10's "
                         f"training images")
    unknown = sorted(set(class_names(dev_spec)) - set(classes))
    if unknown:
        raise ValueError(f"--dev {cfg.dev} has classes that --data {cfg.data} lacks ({', '.join(unknown[:5])}); "
                         f"score the models on a set of --data's classes, or a subset of them")
    return classes


def baseline_record(cfg: FinetuneConfig, clean_dir: Path, c_dir: Path, classes: Sequence[str]) -> dict[str, Any]:
    """The packaged ResNet-20 itself, not fine-tuned (cached like a run); ``classes``: its outputs' names, in
    order, as --data names them."""
    from ..weights import load_classifier
    from ..evaluate.sets import open_image_set
    from ..evaluate.metrics import accuracy, evaluate_corruptions

    key = {"method": "packaged", "seed": 0, "dev": cfg.dev, "dev_limit": cfg.dev_limit, "dev_seed": cfg.dev_seed}
    path = _key_path(Path(cfg.out), key)
    if path.exists() and json.loads(path.read_text()).get("key") == key:
        return json.loads(path.read_text())
    model = load_classifier()
    clean = accuracy(model, open_image_set(clean_dir), classes=classes, batch_size=500)
    c = evaluate_corruptions(model, c_dir, corruptions=list(BENCHMARK), classes=classes, batch_size=500)
    record = {"key": key, "row": "packaged (no fine-tuning)", "clean_error": 100.0 - clean, "mce": c["mce"],
              "ce": c["ce"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def _worker(cfg: FinetuneConfig, job: tuple[str, str | None, int], data_spec: str, clean_dir: Path,
            c_dir: Path) -> dict[str, Any]:
    from ..data.images import load_images

    import torch

    torch.set_num_threads(cfg.threads)
    return run_one(cfg, *job, load_images(data_spec, train=True), clean_dir, c_dir)


def cached_records(cfg: FinetuneConfig) -> list[dict[str, Any]]:
    """The finished runs of ``cfg``'s grid found in ``OUT/runs`` (nothing is trained)."""
    records = []
    for method, backbone in cfg.rows():
        for seed in cfg.seeds:
            key = run_key(cfg, method, backbone, seed)
            path = _key_path(Path(cfg.out), key)
            if path.exists() and json.loads(path.read_text()).get("key") == key:
                records.append(json.loads(path.read_text()))
    return records


def run_grid(cfg: FinetuneConfig, jobs: int = 1, report_only: bool = False,
             overwrite: bool = False) -> dict[str, Any]:
    """Every (row, seed) run, then the summary; ``report_only`` summarises the finished runs only.

    ``OUT`` must be new, empty or an earlier grid's (``finetune.json``), else ``FileExistsError`` before any work;
    ``overwrite`` removes an earlier grid's files (:data:`NAMES`) first, or writes beside other files.
    """
    import dataclasses

    from ..data.images import load_images
    from .mini import MiniConfig, open_out, prepare_dev
    from ..runtime.outdir import claim_run_folder
    from ..runtime.progress import bar

    cfg.validate()
    claim_run_folder(cfg.out, command="finetune", manifest="finetune.json", names=NAMES,
                     settings=dataclasses.asdict(cfg), overwrite=overwrite, compare=False)  # runs are keyed
    start = time.time()
    out, data_spec, dev_spec = open_out(cfg.out, cfg.data, cfg.dev)
    classes = _check_classes(cfg, data_spec, dev_spec)
    mini = MiniConfig(data=data_spec, dev=dev_spec, out=str(out), dev_limit=cfg.dev_limit, seed=cfg.dev_seed)
    clean_dir, c_dir, _ = prepare_dev(mini, dev_spec, out)
    if report_only:
        return _write(cfg, cached_records(cfg), baseline_record(cfg, clean_dir, c_dir, classes), start)
    # every seed of the single-augmentation rows first, then the ada+augmix rows one backbone at a time
    # (in the order of cfg.backbones), so that a grid cut short has whole rows; costliest first within a pass
    def tier(row: tuple[str, str | None]) -> int:
        return 0 if row[0] != "ada+augmix" else 1 + cfg.backbones.index(row[1])

    cost = {"nominal": 1, "augmix": 2, "ada": 3, "ada+augmix": 4}
    order = [(m, b, s) for t in sorted({tier(r) for r in cfg.rows()}) for s in cfg.seeds
             for m, b in sorted(cfg.rows(), key=lambda r: (-cost[r[0]], -cfg.backbones.index(r[1] or cfg.backbones[0])))
             if tier((m, b)) == t]
    if jobs > 1:
        from ..runtime.interrupts import process_pool  # an interrupt stops the workers at once

        with process_pool(jobs) as pool:
            records = list(bar(pool.map(_worker, *zip(*[(cfg, j, data_spec, clean_dir, c_dir) for j in order])),
                               total=len(order), desc="finetune", unit="run"))
    else:
        train = load_images(data_spec, train=True)
        records = [run_one(cfg, *j, train, clean_dir, c_dir) for j in bar(order, desc="finetune", unit="run")]
    return _write(cfg, records, baseline_record(cfg, clean_dir, c_dir, classes), start)


def _write(cfg: FinetuneConfig, records: Sequence[dict], packaged: dict, start: float) -> dict[str, Any]:
    out = Path(cfg.out)
    results = summarise(cfg, records, packaged)
    results["wall_s"] = round(time.time() - start, 1)
    results["machine"] = _machine()
    from ..runtime.provenance import producer

    results["producer"] = producer("finetune")
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(report(results) + "\n")
    if results["rows"]:
        save_plot(results, out / "finetune.png")
    return results


# ---- command line ---------------------------------------------------------------------------------
def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """Run the grid (``adaaug finetune``); ``args`` parsed by :func:`add_arguments`, or an argv list."""
    if not isinstance(args, argparse.Namespace):
        p = argparse.ArgumentParser(prog="python -m adaaug.experiments.finetune", description=__doc__.split("\n")[0])
        add_arguments(p)
        args = p.parse_args(args)
    a = args
    cfg = FinetuneConfig(data=a.data, dev=a.dev, out=a.out, methods=tuple(a.methods), backbones=tuple(a.backbones),
                         seeds=tuple(a.seeds), subset=a.subset, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                         weight_decay=a.weight_decay, ada_steps=a.ada_steps, nu=a.nu, ada_share=a.ada_share,
                         jsd=not a.no_jsd, dev_limit=a.dev_limit, dev_seed=a.dev_seed, chunk_size=a.chunk_size,
                         threads=a.threads)
    try:
        results = run_grid(cfg, jobs=a.jobs, report_only=a.report_only, overwrite=getattr(a, "overwrite", False))
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        advice = getattr(err, "for_command", None)  # advice naming an option this command lacks is left out
        print(f"adaaug finetune: error: {advice(lambda flag: False) if callable(advice) else err}", file=sys.stderr)
        return 2
    print(report(results))
    print(f"wall time {results['wall_s'] / 60:.1f} min; wrote {Path(cfg.out) / 'results.md'}, results.json, "
          f"finetune.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
