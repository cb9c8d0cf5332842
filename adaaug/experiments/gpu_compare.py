"""``adaaug gpu-compare``: the paper's CIFAR-10 → CIFAR-10-C comparison in one GPU run of minutes.

Rows (``--rows``, default the first four): ``nominal``, ``ada`` (AdA with EDSR on every training
image: Algorithm 1 with M steps and radius ν), ``augmix`` (AugMix with its Jensen–Shannon loss),
``ada+augmix``, and ``ada-share`` / ``ada-share+augmix`` (AdA on a seeded share ``--ada-share`` of
every batch, the rest left clean). Each row trains a fresh ResNet-9 with the fast recipe of
:mod:`adaaug.experiments.fast_recipe` (D. Page, "How to train your ResNet", 2018) on the training set,
then is scored on the clean dev images and on a CIFAR-10-C-format set (the 15 benchmark
corruptions × 5 severities) that ``adaaug make-c --workers N`` builds from the dev images in other
processes while the first row trains. One seed per row.

Time: ``--budget-s`` bounds the whole command, cut to the time left before ``--deadline`` (a Unix time,
for a caller with a fixed end such as ``benchmarks/gpu-lease.sh``). Before training, a few steps of every row are timed
(``calibration`` in the results; rows with AdA at M and at M = 1) and, unless ``--no-fit``, when
the rows and their evaluation would not fit, the epochs of all rows are lowered alike down to
``--min-epochs`` (full: 10), and below that M is lowered to 1 instead; the results say which (``plan``).
A row still running at its deadline stops there and is scored as it is (``stopped_at_step``). Results
(``compare-<device>-<rows>.json`` and ``.md``; refused when there, unless ``--overwrite``) are written after the plan and after every row, so finished
rows survive a later failure or stop.

AdA's corruption network takes adaaug's packaged weights, or ``--backbone-weights FILE`` (passed to
:class:`~adaaug.transform.AdversarialAugment` as ``weights``: a ``.safetensors`` file, or a published
corruption-network file that :func:`~adaaug.weights.load_backbone` reads).

Sizes: ``full`` (the whole training set and dev split, 16 epochs, batch 512, M = 2, for one GPU) and
``tiny`` (a few dozen images and a narrow network, a CPU rehearsal whose figures mean nothing).
On CUDA the classifier and AdA's backbone passes run under bfloat16 autocast (``--no-bf16`` turns it
off); AdA's perturbation, projection and SSIM line search stay in float32.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import paper
from ..corruptions import BENCHMARK
from .gpu_compare_report import DEFAULT_ROWS, environment, file_tag, markdown

ROWS = (*DEFAULT_ROWS, "ada-share", "ada-share+augmix")
SIZES: dict[str, dict[str, Any]] = {
    "full": dict(train_limit=None, dev_limit=None, epochs=16, batch_size=512, width=64, ada_steps=2,
                 chunk_size=256, workers=0, budget_s=500.0, calib_steps=3, min_epochs=10, reserve_s=25.0),
    "tiny": dict(train_limit=32, dev_limit=40, epochs=1, batch_size=16, width=8, ada_steps=2, chunk_size=8,
                 workers=2, budget_s=1800.0, calib_steps=1, min_epochs=1, reserve_s=0.0),
}


@dataclass
class CompareConfig:
    """Settings of one run; ``None`` fields take the size's value (:data:`SIZES`)."""

    data: str
    dev: str
    out: str = "benchmarks/results"
    work: str = "runs/gpu-compare"
    size: str = "full"
    rows: tuple[str, ...] = DEFAULT_ROWS
    device: str = "auto"
    seed: int = 0
    epochs: int | None = None
    batch_size: int | None = None
    width: int | None = None
    train_limit: int | None = None
    dev_limit: int | None = None
    backbone: str = "edsr"
    ada_steps: int | None = None
    nu: float = paper.NU_EDSR_CIFAR10
    ada_share: float = 0.5
    chunk_size: int | None = None
    workers: int | None = None
    budget_s: float | None = None
    calib_steps: int | None = None
    min_epochs: int | None = None
    reserve_s: float | None = None  # kept out of the plan: waiting for make-c, first evaluations
    fit: bool = True
    bf16: bool = True
    deadline: float | None = None  # Unix time (s) by which the command must end; cuts budget_s
    backbone_weights: str | None = None  # AdversarialAugment(weights=...): a file; None: the packaged weights

    def resolved(self) -> "CompareConfig":
        if self.size not in SIZES:
            raise ValueError(f"--size must be one of {', '.join(SIZES)}, got {self.size!r}")
        cfg = copy.copy(self)
        for key, value in SIZES[self.size].items():
            if getattr(cfg, key) is None:
                setattr(cfg, key, value)
        for key in ("train_limit", "dev_limit"):  # 0: all images
            if getattr(cfg, key) is not None and getattr(cfg, key) < 1:
                setattr(cfg, key, None)
        if not cfg.workers:
            cfg.workers = max(1, min(16, (os.cpu_count() or 2) - 1))
        bad = [r for r in cfg.rows if r not in ROWS]
        if bad or not cfg.rows or len(set(cfg.rows)) != len(cfg.rows):
            raise ValueError(f"--rows must be distinct names among {', '.join(ROWS)}, got {list(cfg.rows)}")
        for key in ("epochs", "batch_size", "width", "chunk_size", "workers", "calib_steps", "min_epochs"):
            if getattr(cfg, key) < 1:
                raise ValueError(f"--{key.replace('_', '-')} must be ≥ 1, got {getattr(cfg, key)}")
        if cfg.backbone_weights is not None and not Path(cfg.backbone_weights).is_file():
            raise ValueError(f"--backbone-weights {cfg.backbone_weights}: no such file; pass the corruption "
                             "network's weights file, or leave the option out for adaaug's packaged weights")
        if cfg.deadline is not None and not math.isfinite(cfg.deadline):
            raise ValueError(f"--deadline must be a Unix time in seconds, got {cfg.deadline}")
        if cfg.ada_steps < 0 or not cfg.nu > 0 or not 0 < cfg.ada_share <= 1:
            raise ValueError(f"need --ada-steps ≥ 0, --nu > 0 and 0 < --ada-share ≤ 1; got {cfg.ada_steps}, "
                             f"{cfg.nu}, {cfg.ada_share}")
        return cfg


def time_budget(budget_s: float, deadline: float | None, now: float) -> float:
    """Seconds the whole run may take: ``budget_s``, cut to ``deadline − now`` (both Unix times, s).

    Raises ``ValueError`` when the deadline has already passed.
    """
    if deadline is None:
        return budget_s
    if deadline <= now:
        raise ValueError(f"--deadline {deadline:.0f} passed {now - deadline:.0f} s ago; pass a later Unix time "
                         "(e.g. $(( $(date +%s) + 500 ))) or leave it out")
    return min(budget_s, deadline - now)


def _method(row: str, share: float) -> tuple[str, float]:
    """``(method for fast_recipe.train_method, AdA share)`` of a row: ``ada-share`` rows take ``share``."""
    return (row.replace("ada-share", "ada"), share) if row.startswith("ada-share") else (row, 1.0)


def _start_make_c(cfg: CompareConfig, dev_dir: str, c_dir: Path, log: Path) -> subprocess.Popen:
    """``adaaug make-c`` on the dev images in its own processes (the GPU trains meanwhile)."""
    cmd = [sys.executable, "-m", "adaaug", "make-c", dev_dir, str(c_dir), "--size", "cifar", "--seed",
           str(cfg.seed), "--workers", str(cfg.workers), "--no-progress", "--overwrite",
           "--corruptions", *BENCHMARK]  # its own work folder: an earlier run's make-c files are replaced
    if cfg.dev_limit:
        cmd += ["--limit", str(cfg.dev_limit)]
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _finish_make_c(proc: subprocess.Popen, c_dir: Path, log: Path, dev_labels: np.ndarray) -> float:
    """Wait for make-c and check its files against the dev set; returns the seconds waited."""
    t = time.monotonic()
    if proc.wait() != 0:
        raise RuntimeError(f"adaaug make-c failed (exit {proc.returncode}): {log.read_text()[-2000:]}")
    n = len(dev_labels)
    if not np.array_equal(np.load(c_dir / "labels.npy"), np.tile(dev_labels, 5)):
        raise RuntimeError(f"{c_dir}/labels.npy does not match the dev images scored clean")
    for name in BENCHMARK:
        shape = np.load(c_dir / f"{name}.npy", mmap_mode="r").shape
        if shape != (5 * n, 32, 32, 3):
            raise RuntimeError(f"{c_dir}/{name}.npy has shape {shape}, expected {(5 * n, 32, 32, 3)}")
    return time.monotonic() - t


class _Runner:
    """Builds a row's model and AdA, and trains it (:func:`~adaaug.experiments.fast_recipe.train_method`)."""

    def __init__(self, cfg: CompareConfig, images, labels, classes: int, device) -> None:
        self.cfg, self.images, self.labels, self.classes, self.device = cfg, images, labels, classes, device

    def make_ada(self, model, steps: int, generator):
        """The row's AdversarialAugment on ``model`` (``--backbone``, ``--backbone-weights``, ν, M = ``steps``)."""
        from ..transform import AdversarialAugment

        weights = {} if self.cfg.backbone_weights is None else {"weights": self.cfg.backbone_weights}
        return AdversarialAugment(model, backbone=self.cfg.backbone, nu=self.cfg.nu, steps=steps,
                                  chunk_size=self.cfg.chunk_size, generator=generator, **weights).to(self.device)

    def train(self, row: str, recipe, seed: int, ada_steps: int | None = None, **kwargs) -> tuple[Any, dict]:
        import torch

        from .fast_recipe import ResNet9, train_method

        method, share = _method(row, self.cfg.ada_share)
        torch.manual_seed(seed)
        model = ResNet9(self.classes, self.cfg.width).to(self.device)
        g = torch.Generator().manual_seed(seed)
        steps = self.cfg.ada_steps if ada_steps is None else ada_steps
        ada = self.make_ada(model, steps, g) if "ada" in method.split("+") else None
        stats = train_method(model, self.images, self.labels, method=method, recipe=recipe, generator=g, ada=ada,
                             ada_share=share, bf16=self.cfg.bf16, **kwargs)
        return model, stats


def calibrate(runner: _Runner, rows, recipe, steps: int, ada_steps: tuple[int, ...]) -> dict[str, dict[int, float]]:
    """Seconds per optimiser step: ``{row: {M: s}}`` for every M of ``ada_steps`` (rows with AdA) or
    ``{row: {0: s}}``; each figure is one warm-up step, then ``steps`` timed steps."""
    out: dict[str, dict[int, float]] = {}
    for row in rows:
        out[row] = {}
        for m in (ada_steps if "ada" in row else (0,)):
            runner.train(row, recipe, seed=12345, ada_steps=m, max_steps=1)
            t = time.monotonic()
            runner.train(row, recipe, seed=12345, ada_steps=m, max_steps=steps)
            out[row][m] = (time.monotonic() - t) / steps
    return out


def plan(cfg: CompareConfig, per_step: dict[str, dict[int, float]], steps_per_epoch: int, eval_s: float,
         left_s: float, min_epochs: int) -> tuple[int, int, str]:
    """``(epochs, M, why)`` for every row, so that training plus evaluation fit in ``left_s`` seconds.

    In order: the settings as asked; fewer epochs, down to ``min_epochs``; M = 1 (when timed) with as
    many epochs as fit, up to those asked; then the epochs that fit at M = 1, at least one.
    """
    room = left_s - eval_s * len(per_step)

    def per_epoch(m: int) -> float:
        return steps_per_epoch * sum(t.get(m, t.get(0, 0.0)) for t in per_step.values())

    def fitting(m: int) -> int:
        return min(cfg.epochs, int(room // per_epoch(m))) if per_epoch(m) > 0 else cfg.epochs

    m = cfg.ada_steps
    need = cfg.epochs * per_epoch(m)
    if not cfg.fit or need <= room:
        return cfg.epochs, m, f"{cfg.epochs} epochs, M = {m}: estimated {need:.0f} s of training, {room:.0f} s left"
    told = (f"{cfg.epochs} epochs at M = {m} would take an estimated {need:.0f} s of training, {room:.0f} s are "
            f"left")
    if m <= 1 or fitting(m) >= min_epochs or all(1 not in t for t in per_step.values()):
        e = max(1, fitting(m))
        return e, m, f"epochs lowered from {cfg.epochs} to {e} for every row: {told}"
    e = max(1, fitting(1))
    return e, 1, (f"M lowered from {m} to 1 and epochs {'kept at' if e == cfg.epochs else 'lowered to'} {e} for "
                  f"every row: {told}, and {min_epochs} epochs (the fewest kept at M = {m}) would not fit")


def score(model, clean, c_dir: Path, device, bf16: bool) -> dict[str, Any]:
    """Clean error and CIFAR-10-C errors (%) with :func:`~adaaug.evaluate.metrics.evaluate_corruptions`."""
    from ..evaluate.metrics import accuracy, evaluate_corruptions
    from .fast_recipe import _autocast

    with _autocast(device, bf16):
        acc = accuracy(model, clean, batch_size=1000, device=device)
        c = evaluate_corruptions(model, c_dir, corruptions=list(BENCHMARK), batch_size=1000, device=device)
    return {"clean_error": 100.0 - acc, "mce": c["mce"], "ce": c["ce"]}


def run(cfg: CompareConfig, overwrite: bool = False) -> dict[str, Any]:
    """The whole comparison; returns what it writes to ``OUT/compare-*.json`` (which ``overwrite`` may replace)."""
    import torch

    from ..data.images import load_images
    from ..evaluate.sets import ArraySource
    from ..runtime.files import write_text_atomic
    from ..runtime.outdir import claim_output_files
    from ..train.distributed import resolve_device
    from .fast_recipe import Recipe
    from .archives import resolve_spec

    cfg = cfg.resolved()
    start = time.monotonic()
    budget = time_budget(cfg.budget_s, cfg.deadline, time.time())
    device = resolve_device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("no CUDA device is available here; run the CPU form with --device cpu")
    torch.backends.cudnn.benchmark = device.type == "cuda" or torch.backends.cudnn.benchmark
    out, work, tag = Path(cfg.out), Path(cfg.work), file_tag(cfg.rows, device.type)
    claim_output_files([out / f"{tag}.json", out / f"{tag}.md"], overwrite=overwrite, other="choose another --out")
    work.mkdir(parents=True, exist_ok=True)
    elsewhere = "choose another --work folder"
    data_spec, dev_spec = (resolve_spec(cfg.data, work / "data", elsewhere),
                           resolve_spec(cfg.dev, work / "data", elsewhere))
    out.mkdir(parents=True, exist_ok=True)
    dev = load_images(dev_spec, train=False).subset(cfg.dev_limit, cfg.seed)
    c_dir, make_c_log = work / "cifar10-c", work / "make-c.log"
    proc = _start_make_c(cfg, dev_spec, c_dir, make_c_log)
    threads = torch.get_num_threads()  # the make-c processes take cfg.workers cores: no more threads than are left
    torch.set_num_threads(max(1, min(threads, (os.cpu_count() or 1) - cfg.workers)))
    train = load_images(data_spec, train=True).subset(cfg.train_limit, cfg.seed)
    if train.classes != dev.classes:
        raise ValueError(f"training classes {train.classes} differ from the dev classes {dev.classes}")
    images, labels = train.images.to(device), train.labels.to(device)
    runner = _Runner(cfg, images, labels, len(train.classes), device)
    recipe = Recipe(epochs=cfg.epochs, batch_size=cfg.batch_size)
    results: dict[str, Any] = {
        "command": "adaaug gpu-compare", "settings": asdict(cfg),
        "recipe": asdict(recipe), "environment": environment(device), "train_images": len(train),
        "dev_images": len(dev), "meaningful": device.type == "cuda" and cfg.size == "full", "rows": {}}

    def write() -> None:
        results["wall_s"] = round(time.monotonic() - start, 1)
        write_text_atomic(out / f"{tag}.json", json.dumps(results, indent=2) + "\n")
        write_text_atomic(out / f"{tag}.md", markdown(results) + "\n")

    def log(msg: str) -> None:
        print(f"[gpu-compare {time.monotonic() - start:5.0f} s] {msg}", file=sys.stderr, flush=True)

    try:
        log(f"{len(train)} training images, {len(dev)} dev images on {results['environment']['device_name']}; "
            f"make-c running in {cfg.workers} processes")
        timed = (cfg.ada_steps, 1) if cfg.fit and cfg.ada_steps > 1 else (cfg.ada_steps,)
        per_step = calibrate(runner, cfg.rows, recipe, cfg.calib_steps, timed)
        steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
        fastest = min(min(t.values()) for t in per_step.values())
        eval_s = 1.0 + len(dev) * (1 + 5 * len(BENCHMARK)) * fastest / cfg.batch_size / 3  # forward ≈ ⅓ step
        epochs, cfg.ada_steps, why = plan(cfg, per_step, steps_per_epoch, eval_s,
                                          budget - cfg.reserve_s - (time.monotonic() - start), cfg.min_epochs)
        recipe.epochs = epochs
        results["recipe"], results["settings"]["ada_steps"] = asdict(recipe), cfg.ada_steps
        results["calibration"] = {"seconds_per_step": {r: {f"M={m}" if m else "-": round(v, 4) for m, v in t.items()}
                                                       for r, t in per_step.items()},
                                  "steps_per_epoch": steps_per_epoch, "eval_s_estimate": round(eval_s, 1),
                                  "budget_s": round(budget, 1), "plan": why}
        log(f"calibration (s/step): {results['calibration']['seconds_per_step']}; {why}")
        write()
        clean = ArraySource(dev.images, dev.labels.numpy(), dev.classes)
        order = sorted(cfg.rows, key=lambda r: max(per_step[r].values()))  # cheapest first: most rows finish
        for i, row in enumerate(order):
            deadline = start + budget - eval_s * (len(order) - i)
            model, stats = runner.train(row, recipe, seed=cfg.seed, deadline=deadline, log=log)
            if "make_c_wait_s" not in results:  # the -C set is needed from the first score on
                results["make_c_wait_s"] = round(_finish_make_c(proc, c_dir, make_c_log, dev.labels.numpy()), 1)
            t = time.monotonic()
            results["rows"][row] = {**score(model, clean, c_dir, device, cfg.bf16), **stats,
                                    "eval_s": round(time.monotonic() - t, 1), "epochs": recipe.epochs}
            log(f"{row}: clean error {results['rows'][row]['clean_error']:.2f} %, "
                f"mCE {results['rows'][row]['mce']:.2f} %")
            write()
    except BaseException as err:
        results["error"] = f"{type(err).__name__}: {err}"
        write()
        raise
    finally:
        torch.set_num_threads(threads)
        if proc.poll() is None:
            proc.terminate()
    results["rows"] = {r: results["rows"][r] for r in cfg.rows if r in results["rows"]}
    write()
    return results


def add_arguments(p: argparse.ArgumentParser) -> None:
    opt = lambda t: 0 if t == "all" else int(t)  # noqa: E731
    p.add_argument("--data", required=True,
                   help="CIFAR-10 training set: ImageFolder dir, cifar10:<root> or .tar.gz of an ImageFolder tree")
    p.add_argument("--dev", required=True, help="CIFAR-10 test images to score, clean and corrupted (same forms)")
    p.add_argument("--out", default="benchmarks/results", help="directory for compare-*.json and .md")
    p.add_argument("--work", default="runs/gpu-compare", help="scratch directory (extracted data, the -C set)")
    p.add_argument("--size", choices=tuple(SIZES), default="full", help="full (one GPU) or tiny (CPU rehearsal)")
    p.add_argument("--rows", nargs="+", default=list(DEFAULT_ROWS), metavar="ROW",
                   help=f"rows to train, from {' '.join(ROWS)} (default: the first four)")
    p.add_argument("--device", default="auto", help="cuda, cpu or auto")
    p.add_argument("--seed", type=int, default=0, help="seeds subsets, initialisation, augmentation, corruptions")
    p.add_argument("--epochs", type=int, help="epochs per row (default: the size's; full 16)")
    p.add_argument("--batch-size", type=int, help="default: the size's (full 512)")
    p.add_argument("--width", type=int, help="ResNet-9 base width (default: the size's; full 64)")
    p.add_argument("--train-limit", type=opt, help="training images, a seeded subset, or 'all' (default: the size's)")
    p.add_argument("--dev-limit", type=opt, help="dev images, a seeded subset, or 'all' (default: the size's)")
    p.add_argument("--backbone", default="edsr", help="AdA corruption network")
    p.add_argument("--ada-steps", type=int, help="M (default: the size's; full 2, the paper's is 10)")
    p.add_argument("--nu", type=float, default=paper.NU_EDSR_CIFAR10, help="AdA relative radius ν")
    p.add_argument("--ada-share", type=float, default=0.5, help="share of each batch given AdA in ada-share rows")
    p.add_argument("--chunk-size", type=int, help="AdA nano-batch (default: the size's; full 256)")
    p.add_argument("--workers", type=int, help="make-c processes (default: cores − 1, at most 16)")
    p.add_argument("--budget-s", type=float, help="seconds for the whole command (default: the size's; full 500)")
    p.add_argument("--deadline", type=float, metavar="UNIX_TIME",
                   help="end by this Unix time (s): the budget is cut to the time left, and the plan fits it")
    p.add_argument("--backbone-weights", metavar="FILE",
                   help="weights of AdA's corruption network: a .safetensors file or a published network file "
                        "(e.g. EDSR's edsr_baseline_x4.pt; default: adaaug's packaged weights)")
    p.add_argument("--fit", action=argparse.BooleanOptionalAction, default=True,
                   help="when the timed plan would exceed the budget, lower the epochs of every row alike down to "
                        "--min-epochs, then M to 1 (default: on)")
    p.add_argument("--min-epochs", type=int, help="the fewest epochs --fit keeps before lowering M (full: 10)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True, help="bfloat16 autocast on CUDA")
    p.add_argument("--overwrite", action="store_true", help="replace this run's compare-*.json and .md in --out")


def config_from_args(args: argparse.Namespace) -> CompareConfig:
    """The :class:`CompareConfig` of parsed ``adaaug gpu-compare`` arguments (options named as its fields)."""
    return CompareConfig(**{k: (tuple(v) if k == "rows" else v) for k, v in vars(args).items()
                            if k in CompareConfig.__dataclass_fields__})


def main(args: argparse.Namespace) -> int:
    results = run(config_from_args(args), overwrite=getattr(args, "overwrite", False))
    print(markdown(results))
    return 0
