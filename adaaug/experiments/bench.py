"""``adaaug bench``: what an AdA training step costs, and where the time and memory go.

For one classifier, batch and device it measures (median wall time over repeats):

- a nominal training step (classifier forward+backward+SGD on clean images);
- an AdA training step (``ada(x, y)`` then the same classifier step on x');
- the floor: (M+1) classifier forward+backward + M backbone forward+backward with
  shared weights at the same batch size, i.e. the work AdA cannot avoid;
- the share of the AdA step spent in the sign step + projection and in the line search, and
  the other work outside the floor: the random init δ⁰ and the final forward c_{φ+δ}(x);
- the same backbone forward+backward with per-example weights (per nano-batch, the way AdA runs
  it: :mod:`adaaug.per_example`), which shows how much of the gap to the floor is the per-example
  convolutions themselves;
- peak memory of the AdA step against ``chunk_size`` (CUDA: max_memory_allocated;
  CPU: peak resident set size, reset through /proc/self/clear_refs).

``--suite`` runs the whole device benchmark instead (:mod:`adaaug.experiments.bench_suite`). The
measurements themselves are :mod:`adaaug.experiments.bench_measure`; this module is the command.

JSON per run under ``--out``; a table on stdout. ``--out`` collects results (other files there are kept): a
file of this run's name that is already there (``step-<backbone>-<device>.json``; with ``--suite``
``suite-<device>.json`` and ``.md``) is refused before any measurement unless ``--overwrite``.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from .. import paper
from .bench_measure import run


def _backbone_name(name: str) -> str:
    """argparse type of ``--backbones``: a registered backbone name."""
    from ..backbones import available_backbones

    if name not in available_backbones():
        raise argparse.ArgumentTypeError(f"unknown backbone {name!r}; known: {', '.join(available_backbones())}")
    return name


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backbones", nargs="+", type=_backbone_name, metavar="NAME",
                   help="corruption networks to time (untrained weights; speed does not depend on them) "
                        "[edsr; with --suite: the sizes' own]")
    p.add_argument("--batch-size", type=_positive, default=64, help="images per training step")
    p.add_argument("--steps", type=int, default=paper.CIFAR10_STEPS, help="M, AdA ascent steps (paper: 10)")
    p.add_argument("--chunk-size", type=_positive, default=paper.CIFAR10_NANO_BATCH,
                   help="AdA nano-batch (paper: 8)")
    p.add_argument("--memory-chunks", type=_positive, nargs="*", default=[1, 4, 8, 16],
                   help="chunk sizes for the peak-memory table (none: skip it)")
    p.add_argument("--memory-batches", type=_positive, nargs="*", default=[32, 64],
                   help="batch sizes for the peak-memory table")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (CUDA when available)")
    p.add_argument("--repeats", type=_positive, default=3, help="timed repeats per measurement (median reported)")
    p.add_argument("--threads", type=_positive, help="torch threads (default: torch's choice)")
    p.add_argument("--arch", choices=("resnet20", "preact_resnet50", "resnet50"), default="resnet20",
                   help="classifier")
    p.add_argument("--out", default="benchmarks/results", help="directory for the JSON results")
    p.add_argument("--overwrite", action="store_true",
                   help="replace this run's result files in --out when an earlier run left them there (other files "
                        "are kept; default: refuse before measuring)")
    p.add_argument("--suite", action="store_true",
                   help="run the whole device suite instead (CUDA tests, per-example passes, a step per backbone, "
                        "the ImageNet-preset step, memory against chunk_size); see benchmarks/gpu.sh")
    p.add_argument("--sizes", choices=["full", "ci"],
                   help="--suite sizes: full (default on CUDA, about 8 minutes) or ci (default on a CPU, tiny)")
    p.add_argument("--parts", nargs="+",
                   help="--suite parts to run [all]: cuda-tests per-example step sync imagenet memory")
    p.add_argument("--budget-s", type=float,
                   help="--suite: seconds for the whole suite; each part's limit is cut to the time left [none]")


def main(args: argparse.Namespace) -> int:
    from ..runtime.devices import resolve_checked

    dev = resolve_checked(args.device)  # one line before any work when this machine lacks the device
    args.device = str(dev)
    if args.threads:
        torch.set_num_threads(args.threads)
    from ..runtime.outdir import claim_output_files

    suite = getattr(args, "suite", False)
    names = [f"suite-{dev.type}.json", f"suite-{dev.type}.md"] if suite else [
        f"step-{name}-{dev.type}.json" for name in args.backbones]
    claim_output_files([Path(args.out) / n for n in names], overwrite=getattr(args, "overwrite", False),
                       what="results of an earlier adaaug bench", other="choose another --out")
    if suite:
        from .bench_suite import run_suite

        try:
            report = run_suite(args.device, args.sizes, args.parts, args.out, backbones=args.backbones,
                               budget_s=args.budget_s)
        except ValueError as e:
            print(f"adaaug bench --suite: {e}", file=sys.stderr)
            return 2
        return 0 if all(r["status"] in ("ok", "skipped") for r in report["parts"].values()) else 1
    from ..runtime.provenance import source_commit

    commit = source_commit() or "unknown"  # adaaug's own commit, not that of a repository around the working folder
    machine = torch.cuda.get_device_name(dev) if dev.type == "cuda" else \
        f"{platform.machine()} CPU, {torch.get_num_threads()} threads"
    print(f"{'backbone':<8}{'nominal s':>10}{'AdA s':>9}{'floor s':>9}{'AdA/floor':>10}{'AdA/nominal':>12}"
          f"{'proj %':>8}{'search %':>9}{'init %':>8}{'final fwd %':>12}{'per-ex/shared':>14}")
    out = Path(args.out)
    fresh = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        _bench_backbones(args, out, dev, machine, commit)
    except BaseException:
        if fresh and not any(out.iterdir()):  # failed before its first result: leave no empty folder behind
            out.rmdir()
        raise
    return 0


def _bench_backbones(args: argparse.Namespace, out: Path, dev: torch.device, machine: str, commit: str) -> None:
    from ..runtime.progress import bar
    from ..runtime.provenance import producer

    for name in bar(args.backbones or ["edsr"], desc="bench", unit="backbone"):
        r = run(name, args.batch_size, args.steps, args.chunk_size, args.device, args.repeats, args.arch,
                args.memory_chunks, args.memory_batches)
        r.update({"machine": machine, "torch": torch.__version__, "commit": commit, "date": time.strftime("%Y-%m-%d"),
                  "producer": producer("bench")})
        print(f"{name:<8}{r['nominal_step_s']:>10.3f}{r['ada_step_s']:>9.2f}{r['floor_s']:>9.2f}"
              f"{r['ada_over_floor']:>10.2f}{r['ada_over_nominal']:>12.1f}{100 * r['share_projection_step']:>8.1f}"
              f"{100 * r['share_line_search']:>9.1f}{100 * r['share_random_init']:>8.1f}"
              f"{100 * r['share_final_forward']:>12.1f}{r['per_example_over_shared']:>14.2f}")
        for m in r["memory"].values():
            print(f"    peak memory, chunk {m['chunk_size']:>3}, batch {m['batch']:>4}: {m['peak_mb']:.0f} MB")
        (out / f"step-{name}-{dev.type}.json").write_text(json.dumps(r, indent=2) + "\n")
