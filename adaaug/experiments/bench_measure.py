"""What an AdA training step costs, measured: timings, the floor, and peak memory (``adaaug bench``).

:func:`run` measures one backbone (the quantities are listed in :mod:`adaaug.experiments.bench`);
:func:`median_time`, :func:`reset_peak_memory` and :func:`peak_memory_mb` are the timers and memory
probes that ``adaaug bench --suite`` (:mod:`adaaug.experiments.bench_suite`) shares.
"""
from __future__ import annotations

import statistics
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import paper
from ..runtime.cost import floor_seconds  # the cost model adaaug train warns with


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
    res["floor_s"] = floor_seconds(res["classifier_fwd_bwd_s"], res["backbone_fwd_bwd_s"], steps)
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
    res["per_example_floor_s"] = floor_seconds(res["classifier_fwd_bwd_s"], res["per_example_backbone_fwd_bwd_s"],
                                               steps)
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
from adaaug.experiments.bench_measure import reset_peak_memory, peak_memory_mb
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


def loop_host_syncs(backbone: str, batch: int, steps: int, chunk_size: int, device: str) -> dict:
    """One ``ada(x, y)`` call with every host synchronisation inside its M-step loop caught.

    The loop is ``AdversarialAugment._maximise`` (one call per nano-batch of ``chunk_size``). On CUDA it
    runs under ``torch.cuda.set_sync_debug_mode("error")``, so a synchronisation raises ``RuntimeError``
    naming the operation. On a CPU every ``aten._local_scalar_dense`` (what ``.item()``, ``bool()``,
    ``float()`` or a Python ``if`` on a tensor dispatch to) is counted instead.

    Returns ``{"backbone", "batch", "steps", "chunk_size", "loops": nano-batches run, "mode",
    "host_syncs": count (CPU), "ops": their names}``.
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    from ..backbones import build_backbone
    from ..models import build_classifier
    from ..transform import AdversarialAugment

    dev = torch.device(device)
    torch.manual_seed(0)
    model = build_classifier("resnet20").to(dev).train()
    ada = AdversarialAugment(model, backbone=build_backbone(backbone).to(dev), steps=steps, chunk_size=chunk_size,
                             ssim_threshold=paper.CIFAR10_SSIM_THRESHOLD)
    x, y = torch.rand(batch, 3, 32, 32, device=dev), torch.randint(0, 10, (batch,), device=dev)
    ada(x[:chunk_size], y[:chunk_size])  # warm-up outside the check: first-call work of the device
    ops: list[str] = []

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten._local_scalar_dense.default:
                ops.append(str(func))
            return func(*args, **(kwargs or {}))

    loop, loops = ada._maximise, []

    def checked(*args, **kwargs):
        loops.append(1)
        if dev.type != "cuda":
            with Count():
                return loop(*args, **kwargs)
        torch.cuda.synchronize(dev)
        torch.cuda.set_sync_debug_mode("error")
        try:
            return loop(*args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    ada._maximise = checked  # this instance only
    ada(x, y)
    mode = 'torch.cuda.set_sync_debug_mode("error")' if dev.type == "cuda" else "aten._local_scalar_dense counted"
    return {"backbone": backbone, "batch": batch, "steps": steps, "chunk_size": chunk_size, "loops": len(loops),
            "mode": mode, "host_syncs": len(ops), "ops": sorted(set(ops))}
