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
:func:`adaaug.protocol.make_c.make_c` (15 corruptions × 5 severities; built once by
:func:`adaaug.protocol.mini.prepare_dev`, the same for every seed). mCE is the plain mean of the 15
corruption errors (CIFAR-10-C has no AlexNet normalisation).

**CPU-scale option, not the paper's method: ``ada_share``.** Algorithm 1 corrupts every training
example (``ada_share = 1``, the default). With ``ada_share = s < 1`` a seeded random ``round(s·N)``
examples of each batch go through AdA and the rest stay clean (after standard augmentation), which costs
``s`` times as much AdA and keeps a short fine-tune from drifting away from clean accuracy. The setting
is written into every result and table.

Runs are cached per (method, backbone, seed, settings) under ``OUT/runs``: a rerun skips finished ones,
so an interrupted grid resumes. Everything is seeded (one ``torch.Generator`` per run; 1 torch thread by
default): a rerun on CPU gives the same numbers.

``python -m adaaug.protocol.finetune --data TRAIN --dev DEV --out OUT`` runs the grid and writes
``OUT/results.json`` and ``OUT/results.md`` (see :func:`main`).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import paper
from .corruptions import BENCHMARK

METHODS = ("nominal", "ada", "augmix", "ada+augmix")


@dataclass
class FinetuneConfig:
    """Settings of a fine-tuning grid (defaults in brackets).

    Attributes:
        data, dev, out: training set, held-out evaluation set (ImageFolder dir, ``cifar10:<root>`` or a
            ``.tar.gz`` of an ImageFolder tree) and output directory.
        methods: among :data:`METHODS` [all four]. backbones: AdA corruption networks; methods with AdA get
            one row per backbone [edsr, edsr-down].
        seeds: one run per seed and row; the seed picks the training subset, batch order, augmentation
            draws and AdA's random init [0 1 2].
        subset: training images per run [3000]. epochs [2]. batch_size [128].
        lr: peak SGD learning rate (Nesterov momentum 0.9, cosine decay to 0 per step, no warm-up) [0.01].
        weight_decay [5e-4].
        ada_steps: M [2; paper 10 on CIFAR-10]. nu: ν [paper.NU_EDSR_CIFAR10 = 0.015].
        ada_share: share of each batch that AdA corrupts [1.0 = Algorithm 1]; a CPU-scale option (see above).
        jsd: AugMix with the JSD consistency loss (λ = 12, three views per example) [True].
        dev_limit: held-out dev images scored, clean and corrupted [1000]. dev_seed: seeds that subset and
            the corruptions [0].
        chunk_size: AdA nano-batch [8]. threads: torch threads [1].
    """

    data: str
    dev: str
    out: str
    methods: tuple[str, ...] = METHODS
    backbones: tuple[str, ...] = ("edsr", "edsr-down")
    seeds: tuple[int, ...] = (0, 1, 2)
    subset: int = 3000
    epochs: int = 2
    batch_size: int = 128
    lr: float = 0.01
    weight_decay: float = 5e-4
    ada_steps: int = 2
    nu: float = paper.NU_EDSR_CIFAR10
    ada_share: float = 1.0
    jsd: bool = True
    dev_limit: int = 1000
    dev_seed: int = 0
    chunk_size: int = 8
    threads: int = 1

    def validate(self) -> "FinetuneConfig":
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"methods must be among {', '.join(METHODS)}, got {list(self.methods)}")
        if not self.backbones and any("ada" in m for m in self.methods):
            raise ValueError("methods with AdA need at least one backbone")
        for name in ("subset", "epochs", "batch_size", "dev_limit", "chunk_size", "threads"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not 0 < self.ada_share <= 1:
            raise ValueError(f"ada_share must lie in (0, 1], got {self.ada_share}")
        if not (self.nu > 0 and self.lr > 0 and self.weight_decay >= 0 and self.ada_steps >= 0):
            raise ValueError("nu and lr must be > 0, weight_decay and ada_steps ≥ 0")
        if not self.seeds or any(s < 0 for s in self.seeds):
            raise ValueError(f"seeds must be non-negative, got {list(self.seeds)}")
        return self

    def rows(self) -> list[tuple[str, str | None]]:
        """``(method, backbone)`` per table row; backbone ``None`` for methods without AdA."""
        out: list[tuple[str, str | None]] = []
        for m in self.methods:
            out += [(m, b) for b in self.backbones] if "ada" in m.split("+") else [(m, None)]
        return out


def row_name(method: str, backbone: str | None) -> str:
    """``"ada (edsr)"``, ``"ada (edsr) + augmix"``, ``"nominal"``..."""
    if backbone is None:
        return method
    return method.replace("ada", f"ada ({backbone})").replace("+", " + ")


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
    from .data import iterate_batches, to_float

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
    from .eval_data import open_image_set
    from .evaluate import accuracy, evaluate_corruptions

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
    clean = accuracy(model, open_image_set(clean_dir), batch_size=500)
    c = evaluate_corruptions(model, c_dir, corruptions=list(BENCHMARK), batch_size=500)
    record = {"key": key, "row": row_name(method, backbone), "clean_error": 100.0 - clean, "mce": c["mce"],
              "ce": c["ce"], "eval_s": round(time.time() - t0, 1), **stats}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    log(f"clean error {record['clean_error']:.2f}, mCE {record['mce']:.2f} (train {stats['train_s']:.0f} s, "
        f"eval {record['eval_s']:.0f} s)")
    return record


def baseline_record(cfg: FinetuneConfig, clean_dir: Path, c_dir: Path) -> dict[str, Any]:
    """The packaged ResNet-20 itself, not fine-tuned (cached like a run)."""
    from ..weights import load_classifier
    from .eval_data import open_image_set
    from .evaluate import accuracy, evaluate_corruptions

    key = {"method": "packaged", "seed": 0, "dev": cfg.dev, "dev_limit": cfg.dev_limit, "dev_seed": cfg.dev_seed}
    path = _key_path(Path(cfg.out), key)
    if path.exists() and json.loads(path.read_text()).get("key") == key:
        return json.loads(path.read_text())
    model = load_classifier()
    clean = accuracy(model, open_image_set(clean_dir), batch_size=500)
    c = evaluate_corruptions(model, c_dir, corruptions=list(BENCHMARK), batch_size=500)
    record = {"key": key, "row": "packaged (no fine-tuning)", "clean_error": 100.0 - clean, "mce": c["mce"],
              "ce": c["ce"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def _worker(cfg: FinetuneConfig, job: tuple[str, str | None, int], data_spec: str, clean_dir: Path,
            c_dir: Path) -> dict[str, Any]:
    from .data import load_images

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


def run_grid(cfg: FinetuneConfig, jobs: int = 1, report_only: bool = False) -> dict[str, Any]:
    """Every (row, seed) run, then the summary; ``report_only`` summarises the finished runs only."""
    from .data import load_images
    from .mini import MiniConfig, prepare_dev, resolve_spec

    cfg.validate()
    start = time.time()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    data_spec = resolve_spec(cfg.data, out / "data")
    dev_spec = resolve_spec(cfg.dev, out / "data")
    mini = MiniConfig(data=data_spec, dev=dev_spec, out=str(out), dev_limit=cfg.dev_limit, seed=cfg.dev_seed)
    clean_dir, c_dir, _ = prepare_dev(mini, dev_spec, out)
    if report_only:
        return _write(cfg, cached_records(cfg), baseline_record(cfg, clean_dir, c_dir), start)
    # every seed of the single-augmentation rows first, then the ada+augmix rows one backbone at a time
    # (in the order of cfg.backbones), so that a grid cut short has whole rows; costliest first within a pass
    def tier(row: tuple[str, str | None]) -> int:
        return 0 if row[0] != "ada+augmix" else 1 + cfg.backbones.index(row[1])

    cost = {"nominal": 1, "augmix": 2, "ada": 3, "ada+augmix": 4}
    order = [(m, b, s) for t in sorted({tier(r) for r in cfg.rows()}) for s in cfg.seeds
             for m, b in sorted(cfg.rows(), key=lambda r: (-cost[r[0]], -cfg.backbones.index(r[1] or cfg.backbones[0])))
             if tier((m, b)) == t]
    if jobs > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            records = list(pool.map(_worker, *zip(*[(cfg, j, data_spec, clean_dir, c_dir) for j in order])))
    else:
        train = load_images(data_spec, train=True)
        records = [run_one(cfg, *j, train, clean_dir, c_dir) for j in order]
    return _write(cfg, records, baseline_record(cfg, clean_dir, c_dir), start)


def _write(cfg: FinetuneConfig, records: Sequence[dict], packaged: dict, start: float) -> dict[str, Any]:
    out = Path(cfg.out)
    results = summarise(cfg, records, packaged)
    results["wall_s"] = round(time.time() - start, 1)
    results["machine"] = _machine()
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(report(results) + "\n")
    if results["rows"]:
        save_plot(results, out / "finetune.png")
    return results


# ---- summary ------------------------------------------------------------------------------------
def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def paired(a: dict[int, float], b: dict[int, float]) -> dict[str, Any]:
    """Per-seed differences ``b − a`` on the seeds both have: mean, std, paired t-test, and whether they exceed
    the seed noise.

    "Exceeds the noise" means the two-sided paired t-test over seeds gives p < 0.05 (with 3 seeds: |t| > 4.30,
    i.e. |mean| > 2.48 std). ``same_sign`` says whether every seed moved the same way.
    """
    from scipy import stats

    seeds = sorted(set(a) & set(b))
    d = np.array([b[s] - a[s] for s in seeds], dtype=np.float64)
    out: dict[str, Any] = {"seeds": seeds, "diffs": d.tolist(), "mean": None, "std": None, "t": None, "p": None,
                           "same_sign": False, "exceeds_noise": False}
    if len(d) == 0:
        return out
    mean, std = _mean_std(d)
    out.update(mean=mean, std=std, same_sign=bool(np.all(d < 0) or np.all(d > 0)))
    if len(d) > 1 and std > 0:
        t = mean / (std / np.sqrt(len(d)))
        out.update(t=float(t), p=float(2 * stats.t.sf(abs(t), len(d) - 1)))
        out["exceeds_noise"] = out["p"] < 0.05
    return out


def summarise(cfg: FinetuneConfig, records: Sequence[dict], packaged: dict | None = None) -> dict[str, Any]:
    """Rows with mean ± std over seeds, and the paired comparisons the protocol asks for."""
    by_row: dict[str, dict[int, dict]] = {}
    for r in records:
        by_row.setdefault(r["row"], {})[r["key"]["seed"]] = r
    rows = []
    for method, backbone in cfg.rows():
        name = row_name(method, backbone)
        runs = by_row.get(name, {})
        if not runs:
            continue
        row = {"row": name, "method": method, "backbone": backbone, "seeds": sorted(runs)}
        for k in ("clean_error", "mce"):
            row[k], row[k + "_std"] = _mean_std([runs[s][k] for s in sorted(runs)])
            row[k + "_per_seed"] = {s: runs[s][k] for s in sorted(runs)}
        row["ce"] = {c: float(np.mean([runs[s]["ce"][c] for s in runs])) for c in BENCHMARK}
        for k in ("train_s", "ada_s", "eval_s", "ada_ssim_median", "ada_ssim_p10"):
            vals = [runs[s][k] for s in runs if runs[s].get(k) is not None]
            if vals:
                row[k] = float(np.mean(vals))
        rows.append(row)
    named = {r["row"]: r for r in rows}
    comparisons = []
    for base, other in ([("nominal", r["row"]) for r in rows if r["row"] != "nominal"]
                        + [("augmix", r["row"]) for r in rows if r["method"] == "ada+augmix"]):
        if base not in named:
            continue
        item = {"base": base, "other": other}
        for k in ("mce", "clean_error"):
            item[k] = paired(named[base][k + "_per_seed"], named[other][k + "_per_seed"])
        item["mce_relative"] = item["mce"]["mean"] / named[base]["mce"] if item["mce"]["mean"] is not None else None
        comparisons.append(item)
    settings = dataclasses.asdict(cfg)
    settings.pop("out")
    settings["data"], settings["dev"] = Path(cfg.data).name, Path(cfg.dev).name  # no local paths in reports
    return {"settings": settings, "rows": rows, "comparisons": comparisons,
            "packaged": None if packaged is None else {k: packaged[k] for k in ("clean_error", "mce", "ce")}}


# ---- report ---------------------------------------------------------------------------------------
def _pm(mean: float, std: float) -> str:
    return f"{mean:.2f} ± {std:.2f}"


def report(results: dict[str, Any]) -> str:
    """Markdown: settings, the table (mean ± std over seeds), paired comparisons, per-corruption means."""
    from .mini import SHORT

    s = results["settings"]
    share = ("every training image (Algorithm 1)" if s["ada_share"] == 1
             else f"a random {s['ada_share']:g} of each batch, the rest clean (CPU-scale option, not the paper's)")
    lines = [
        "# Fine-tuning the packaged ResNet-20: clean error and mCE (%)", "",
        f"Packaged ResNet-20 fine-tuned per method and seed (seeds {', '.join(map(str, s['seeds']))}) on "
        f"{s['subset']} training images × {s['epochs']} epochs (batch {s['batch_size']}, SGD Nesterov, "
        f"lr {s['lr']:g} cosine, weight decay {s['weight_decay']:g}). AdA: ν = {s['nu']:g}, M = {s['ada_steps']}, "
        f"SSIM line search t = 0.3, applied to {share}. AugMix: "
        + ("with the JSD loss (λ = 12)" if s["jsd"] else "without JSD") + ". "
        f"Scored on {s['dev_limit']} held-out dev images and their 15 × 5 corruptions (CIFAR-10-C format, "
        f"`make_c`, seed {s['dev_seed']}); mCE is the mean of the 15 corruption errors.", "",
        "| row | seeds | clean error | mCE | AdA SSIM median (10th pct.) |", "| --- | --- | --- | --- | --- |"]
    if results.get("packaged"):
        p = results["packaged"]
        lines.append(f"| packaged, not fine-tuned | – | {p['clean_error']:.2f} | {p['mce']:.2f} | – |")
    for r in results["rows"]:
        ssim = (f"{r['ada_ssim_median']:.3f} ({r['ada_ssim_p10']:.3f})" if "ada_ssim_median" in r else "–")
        lines.append(f"| {r['row']} | {len(r['seeds'])} | {_pm(r['clean_error'], r['clean_error_std'])} | "
                     f"{_pm(r['mce'], r['mce_std'])} | {ssim} |")
    lines += ["", "Paired differences (same seed: same training subset, batch order and draws), mean ± std over "
              "seeds, and the two-sided paired t-test's p; * = p < 0.05 (exceeds the seed noise):", "",
              "| comparison | Δ mCE | Δ mCE relative | p (mCE) | Δ clean error | p (clean) | per-seed Δ mCE |",
              "| --- | --- | --- | --- | --- | --- | --- |"]

    def p_of(d: dict) -> str:
        return "–" if d["p"] is None else f"{d['p']:.3f}" + ("*" if d["exceeds_noise"] else "")

    for c in results["comparisons"]:
        m, ce = c["mce"], c["clean_error"]
        if m["mean"] is None:
            continue
        lines.append(f"| {c['other']} vs {c['base']} | {_pm(m['mean'], m['std'])} | {100 * c['mce_relative']:+.1f} % | "
                     f"{p_of(m)} | {_pm(ce['mean'], ce['std'])} | {p_of(ce)} | "
                     + ", ".join(f"{d:+.2f}" for d in m["diffs"]) + " |")
    lines += ["", "Corruption errors (%), mean over seeds:", "",
              "| row | " + " | ".join(SHORT[c] for c in BENCHMARK) + " |", "|" + " --- |" * (1 + len(BENCHMARK))]
    for r in results["rows"]:
        lines.append(f"| {r['row']} | " + " | ".join(f"{r['ce'][c]:.1f}" for c in BENCHMARK) + " |")
    return "\n".join(lines)


def _machine() -> str:
    import platform

    import torch

    return f"{platform.machine()} CPU ({os.cpu_count()} cores), torch {torch.__version__.split('+')[0]}"


def save_plot(results: dict[str, Any], path: Path) -> None:
    """Clean error and mCE per row: mean over seeds (bars), each seed (dots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, title in ((axes[0], "mce", "mCE (15 corruptions × 5 severities)"),
                           (axes[1], "clean_error", "clean error")):
        x = np.arange(len(rows))
        means = [r[key] for r in rows]
        colors = ["#999999" if r["method"] == "nominal" else "#8da0cb" if r["method"] == "augmix"
                  else "#fc8d62" if r["method"] == "ada" else "#66c2a5" for r in rows]
        ax.bar(x, means, 0.6, yerr=[r[key + "_std"] for r in rows], color=colors, capsize=3)
        for i, r in enumerate(rows):
            vals = list(r[key + "_per_seed"].values())
            ax.scatter(np.full(len(vals), i) + np.linspace(-0.15, 0.15, len(vals)), vals, s=10, color="k", zorder=3)
            ax.annotate(f"{r[key]:.2f}", (i, max(max(vals), r[key] + r[key + "_std"])), textcoords="offset points",
                        xytext=(0, 4), ha="center", fontsize=7)
        if results.get("packaged"):
            ax.axhline(results["packaged"][key], color="k", ls=":", lw=1)
            ax.text(0.99, results["packaged"][key], "packaged, not fine-tuned", fontsize=7, ha="right",
                    va="bottom", transform=ax.get_yaxis_transform())
        lo = min(min(r[key + "_per_seed"].values()) for r in rows)
        hi = max(max(max(r[key + "_per_seed"].values()), r[key] + r[key + "_std"]) for r in rows)
        ax.set_ylim(max(0.0, lo - 0.25 * (hi - lo) - 1), hi + 0.25 * (hi - lo) + 1)
        ax.set_xticks(x, [r["row"].replace(" + ", "\n+ ") for r in rows], fontsize=7)
        ax.set_ylabel("error (%)")
        ax.set_title(title, fontsize=9)
    s = results["settings"]
    fig.suptitle(f"Fine-tuned packaged ResNet-20: {s['subset']} images × {s['epochs']} epochs, AdA ν={s['nu']:g} "
                 f"M={s['ada_steps']} on {s['ada_share']:g} of each batch; {s['dev_limit']} held-out dev images; "
                 f"bars: mean ± std over seeds ({', '.join(map(str, s['seeds']))}), dots: one per seed\n"
                 f"{results.get('machine', _machine())}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- command line ---------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``adaaug finetune`` (defaults from :class:`FinetuneConfig`)."""
    d = FinetuneConfig(data="", dev="", out="")
    p.add_argument("--data", required=True, help="training set (ImageFolder dir, cifar10:<root> or .tar.gz)")
    p.add_argument("--dev", required=True, help="held-out set, scored clean and corrupted (same forms)")
    p.add_argument("--out", required=True, help="output directory (runs/, results.json, results.md, finetune.png)")
    p.add_argument("--methods", nargs="+", default=list(d.methods), help=f"[{' '.join(d.methods)}]")
    p.add_argument("--backbones", nargs="+", default=list(d.backbones), help=f"[{' '.join(d.backbones)}]")
    p.add_argument("--seeds", nargs="+", type=int, default=list(d.seeds), help=f"[{' '.join(map(str, d.seeds))}]")
    for name in ("subset", "epochs", "batch_size", "ada_steps", "dev_limit", "dev_seed", "chunk_size", "threads"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name), help=f"[{getattr(d, name)}]")
    for name in ("lr", "weight_decay", "nu", "ada_share"):
        p.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(d, name), help=f"[{getattr(d, name)}]")
    p.add_argument("--no-jsd", action="store_true", help="AugMix without the JSD consistency loss [off]")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel processes [1]")
    p.add_argument("--report-only", action="store_true", help="summarise the finished runs; train nothing [off]")


def main(args: argparse.Namespace | Sequence[str] | None = None) -> int:
    """Run the grid (``adaaug finetune``); ``args`` parsed by :func:`add_arguments`, or an argv list."""
    if not isinstance(args, argparse.Namespace):
        p = argparse.ArgumentParser(prog="python -m adaaug.protocol.finetune", description=__doc__.split("\n")[0])
        add_arguments(p)
        args = p.parse_args(args)
    a = args
    cfg = FinetuneConfig(data=a.data, dev=a.dev, out=a.out, methods=tuple(a.methods), backbones=tuple(a.backbones),
                         seeds=tuple(a.seeds), subset=a.subset, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                         weight_decay=a.weight_decay, ada_steps=a.ada_steps, nu=a.nu, ada_share=a.ada_share,
                         jsd=not a.no_jsd, dev_limit=a.dev_limit, dev_seed=a.dev_seed, chunk_size=a.chunk_size,
                         threads=a.threads)
    try:
        results = run_grid(cfg, jobs=a.jobs, report_only=a.report_only)
    except (ValueError, FileNotFoundError) as err:
        print(f"adaaug finetune: error: {err}", file=sys.stderr)
        return 2
    print(report(results))
    print(f"wall time {results['wall_s'] / 60:.1f} min; wrote {Path(cfg.out) / 'results.md'}, results.json, "
          f"finetune.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
