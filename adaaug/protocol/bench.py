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

``--suite`` runs the whole device benchmark instead (:mod:`adaaug.protocol.bench_suite`).

JSON per run under ``--out``; a table on stdout.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import paper


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn, device: torch.device, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def _timing(owner, names: list[str], totals: dict[str, float], device: torch.device, only=None):
    """Accumulate the wall time of ``owner.<name>`` calls (a module's functions or a class's
    methods) into ``totals[name]``; with ``only``, just the calls for which ``only()`` is true."""
    originals = {n: getattr(owner, n) for n in names}

    def wrap(name, fn):
        def timed(*a, **k):
            if only is not None and not only():
                return fn(*a, **k)
            _sync(device)
            t = time.perf_counter()
            out = fn(*a, **k)
            _sync(device)
            totals[name] = totals.get(name, 0.0) + time.perf_counter() - t
            return out
        return timed
    for n, fn in originals.items():
        setattr(owner, n, wrap(n, fn))
    try:
        yield
    finally:
        for n, fn in originals.items():
            setattr(owner, n, fn)


def run(backbone: str, batch_size: int, steps: int, chunk_size: int, device: str, repeats: int,
        arch: str = "resnet20", chunk_sizes: list[int] | None = None, memory_batches: list[int] | None = None) -> dict:
    """All measurements for one backbone; returns a JSON-ready dict."""
    from .. import transform as transform_module
    from ..backbones import build_backbone
    from ..models import build_classifier
    from ..transform import AdversarialAugment

    dev = torch.device(device)
    torch.manual_seed(0)
    model = build_classifier(arch).to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    bb = build_backbone(backbone).to(dev).eval()
    for p in bb.parameters():
        p.requires_grad_(False)
    x = torch.rand(batch_size, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (batch_size,), device=dev)

    def classifier_step(images):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), y).backward()
        opt.step()

    def make_ada(cs):
        return AdversarialAugment(model, backbone=bb, steps=steps, chunk_size=cs,
                                  ssim_threshold=paper.CIFAR10_SSIM_THRESHOLD)

    ada = make_ada(chunk_size)
    res: dict = {"backbone": backbone, "batch_size": batch_size, "steps": steps, "chunk_size": chunk_size}
    res["nominal_step_s"] = median_time(lambda: classifier_step(x), dev, repeats)
    res["ada_step_s"] = median_time(lambda: classifier_step(ada(x, y)), dev, repeats)
    shared = {k: v.detach().clone().requires_grad_(True) for k, v in bb.named_parameters()}
    buffers = dict(bb.named_buffers())

    def backbone_fb():
        out = torch.func.functional_call(bb, {**shared, **buffers}, (x,))
        torch.autograd.grad(out.square().mean(), list(shared.values()))

    def classifier_fb():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
    res["classifier_fwd_bwd_s"] = median_time(classifier_fb, dev, repeats)
    res["backbone_fwd_bwd_s"] = median_time(backbone_fb, dev, repeats)
    res["floor_s"] = (steps + 1) * res["classifier_fwd_bwd_s"] + steps * res["backbone_fwd_bwd_s"]
    res["ada_over_floor"] = res["ada_step_s"] / res["floor_s"]
    res["ada_over_nominal"] = res["ada_step_s"] / res["nominal_step_s"]
    corruptor = ada.corruptors[0]
    params, state_buffers, _ = corruptor.state(dev, torch.float32)

    def per_example_backbone_fb():
        for xs in x.split(chunk_size):
            delta = {k: torch.zeros(len(xs), *p.shape, device=dev).requires_grad_(True) for k, p in params.items()}
            out = corruptor.corrupt(xs, delta, params, state_buffers)
            torch.autograd.grad(out.square().mean(), list(delta.values()))
    res["per_example_backbone_fwd_bwd_s"] = median_time(per_example_backbone_fb, dev, repeats)
    res["per_example_over_shared"] = res["per_example_backbone_fwd_bwd_s"] / res["backbone_fwd_bwd_s"]
    res["per_example_floor_s"] = ((steps + 1) * res["classifier_fwd_bwd_s"]
                                  + steps * res["per_example_backbone_fwd_bwd_s"])
    res["ada_over_per_example_floor"] = res["ada_step_s"] / res["per_example_floor_s"]
    totals: dict[str, float] = {}
    # the final forward c_{φ+δ}(x) is the only backbone call made without grad
    with _timing(transform_module, ["random_init", "project_", "sign_step_", "pull_back"], totals, dev), \
            _timing(transform_module._Corruptor, ["corrupt"], totals, dev, only=lambda: not torch.is_grad_enabled()):
        t = time.perf_counter()
        classifier_step(ada(x, y))
        _sync(dev)
        total = time.perf_counter() - t
    res["share_projection_step"] = (totals.get("project_", 0) + totals.get("sign_step_", 0)) / total
    res["share_line_search"] = totals.get("pull_back", 0) / total  # the SSIM line search (App. F)
    res["share_random_init"] = totals.get("random_init", 0) / total
    res["share_final_forward"] = totals.get("corrupt", 0) / total
    memory = {}
    for cs in chunk_sizes or []:
        for b in memory_batches or [batch_size]:
            memory[f"chunk{cs}_batch{b}"] = {"chunk_size": cs, "batch": b,
                                             "peak_mb": ada_peak_memory(backbone, cs, b, steps, device, arch)}
    res["memory"] = memory
    return res


def ada_peak_memory(backbone: str, chunk_size: int, batch: int, steps: int, device: str, arch: str) -> float:
    """Peak memory (MB) added by one ``ada(x, y)`` call, measured in a fresh process.

    CUDA: ``max_memory_allocated`` after the call. CPU: peak resident set size during
    the call minus the resident size just before it (a fresh process per
    measurement, so earlier allocations do not mask the peak).
    """
    code = f"""
import torch
from adaaug.protocol.bench import reset_peak_memory, peak_memory_mb
from adaaug.backbones import build_backbone
from adaaug.models import build_classifier
from adaaug.transform import AdversarialAugment
dev = torch.device({device!r})
torch.manual_seed(0)
model = build_classifier({arch!r}).to(dev)
ada = AdversarialAugment(model, backbone=build_backbone({backbone!r}).to(dev), steps={steps}, chunk_size={chunk_size})
x = torch.rand({batch}, 3, 32, 32, device=dev); y = torch.randint(0, 10, ({batch},), device=dev)
ada(x[:1], y[:1])
reset_peak_memory(dev)
before = torch.cuda.memory_allocated(dev) / 2 ** 20 if dev.type == "cuda" else peak_memory_mb(dev)
ada(x, y)
print(peak_memory_mb(dev) - before)
"""
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


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
    p.add_argument("--backbones", nargs="+", type=_backbone_name, default=["edsr"], metavar="NAME",
                   help="corruption networks to time (untrained weights; speed does not depend on them)")
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
    p.add_argument("--suite", action="store_true",
                   help="run the whole device suite instead (CUDA tests, per-example passes, a step per backbone, "
                        "the ImageNet-preset step, memory against chunk_size); see benchmarks/gpu.sh")
    p.add_argument("--sizes", choices=["full", "ci"],
                   help="--suite sizes: full (default on CUDA, about 8 minutes) or ci (default on a CPU, tiny)")
    p.add_argument("--parts", nargs="+", help="--suite parts to run [all]: cuda-tests per-example step imagenet memory")


def main(args: argparse.Namespace) -> int:
    from .devices import resolve_checked

    dev = resolve_checked(args.device)  # one line before any work when this machine lacks the device
    args.device = str(dev)
    if args.threads:
        torch.set_num_threads(args.threads)
    if getattr(args, "suite", False):
        from .bench_suite import run_suite

        try:
            report = run_suite(args.device, args.sizes, args.parts, args.out)
        except ValueError as e:
            print(f"adaaug bench --suite: {e}", file=sys.stderr)
            return 2
        return 0 if all(r["status"] in ("ok", "skipped") for r in report["parts"].values()) else 1
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
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
    from .progress import bar

    for name in bar(args.backbones, desc="bench", unit="backbone"):
        r = run(name, args.batch_size, args.steps, args.chunk_size, args.device, args.repeats, args.arch,
                args.memory_chunks, args.memory_batches)
        r.update({"machine": machine, "torch": torch.__version__, "commit": commit, "date": time.strftime("%Y-%m-%d")})
        print(f"{name:<8}{r['nominal_step_s']:>10.3f}{r['ada_step_s']:>9.2f}{r['floor_s']:>9.2f}"
              f"{r['ada_over_floor']:>10.2f}{r['ada_over_nominal']:>12.1f}{100 * r['share_projection_step']:>8.1f}"
              f"{100 * r['share_line_search']:>9.1f}{100 * r['share_random_init']:>8.1f}"
              f"{100 * r['share_final_forward']:>12.1f}{r['per_example_over_shared']:>14.2f}")
        for m in r["memory"].values():
            print(f"    peak memory, chunk {m['chunk_size']:>3}, batch {m['batch']:>4}: {m['peak_mb']:.0f} MB")
        (out / f"step-{name}-{dev.type}.json").write_text(json.dumps(r, indent=2) + "\n")
