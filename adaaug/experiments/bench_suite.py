"""``adaaug bench --suite``: the whole device benchmark as one command (``benchmarks/gpu.sh`` on a GPU).

Parts, each under its own time limit; a part that fails or runs out of time is recorded as
such and the suite goes on with the next one:

1. ``cuda-tests``: ``pytest -m cuda`` on the repository's tests (CUDA devices only);
2. ``per-example``: per backbone, per-example forward+backward through backbone + classifier
   (gradients for every δ⁽ⁿ⁾) batched the way AdA runs it, against ``vmap`` (adaaug ≤ 0.1),
   a Python loop over examples and one shared-weight pass (goals: loop/batched ≥ 20× on CUDA,
   ≥ 2.5× on a CPU; batched/shared ≤ 1.2×);
3. ``step``: per backbone, an AdA training step against its floor
   (:func:`~adaaug.experiments.bench_measure.run`; goal ≤ 1.2×);
4. ``sync``: per backbone, one ``ada(x, y)`` with no host synchronisation inside its M-step loop
   (CUDA: under ``torch.cuda.set_sync_debug_mode("error")``; :func:`~adaaug.experiments.bench_measure.loop_host_syncs`);
5. ``imagenet``: the ImageNet preset (App. E.2/E.4: ResNet-50, EDSR, M = 3, nano-batch 1, t = 0.7)
   training step at 128 px in images/s, with untrained backbone weights (no ImageNet weights
   are packaged; the time does not depend on the weight values);
6. ``memory``: peak memory of one ``ada(x, y)`` call against ``chunk_size``
   (CUDA: ``torch.cuda.max_memory_allocated``; CPU: peak resident set size).

Sizes: ``--sizes full`` (the default on CUDA, about 8 minutes on one GPU) or ``--sizes ci``
(the default on a CPU: tiny batches, under a minute). ``backbones`` narrows the per-backbone parts;
``budget_s`` bounds the whole suite (each part's limit is cut to the time left, and a part with none
left is recorded as ``timeout``, not started). Writes ``suite-<device>.json`` and
``suite-<device>.md`` under ``--out`` and prints the markdown.
"""
from __future__ import annotations

import json
import math
import platform
import signal
import subprocess
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from .. import paper
from . import bench_measure as measure
from ..runtime.markdown import table

BACKBONES = ("edsr", "cae", "vqvae", "unet")

#: per size profile: batch sizes, repeats and time limits (s) of every part
SIZES = {
    "full": dict(pe_batch=64, pe_chunk=8, pe_repeats=3, pe_size=32, pe_backbones=BACKBONES, step_backbones=BACKBONES,
                 step_batch=64, step_chunk=8, steps=paper.CIFAR10_STEPS, step_repeats=2, in_batch=64, in_size=128,
                 in_repeats=2, mem_batch=128, mem_chunks=[1, 8, 32, 128],
                 limits={"cuda-tests": 100, "per-example": 80, "step": 140, "sync": 20, "imagenet": 60,
                         "memory": 50}),
    "ci": dict(pe_batch=3, pe_chunk=2, pe_repeats=1, pe_size=16, pe_backbones=BACKBONES, step_backbones=("unet",),
               step_batch=2, step_chunk=1, steps=1, step_repeats=1, in_batch=2, in_size=16, in_repeats=1, mem_batch=2,
               mem_chunks=[1, 2],
               limits={"cuda-tests": 100, "per-example": 60, "step": 60, "sync": 30, "imagenet": 60, "memory": 60}),
}
PARTS = ("cuda-tests", "per-example", "step", "sync", "imagenet", "memory")


class PartTimeout(Exception):
    """A part ran past its time limit."""


@contextmanager
def time_limit(seconds: float):
    """Raise :class:`PartTimeout` in the main thread after ``seconds`` (SIGALRM; no-op elsewhere)."""
    if not hasattr(signal, "SIGALRM") or seconds <= 0:
        yield
        return

    def handler(signum, frame):
        raise PartTimeout(f"ran past its limit of {seconds:.0f} s")
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def environment(device: torch.device) -> dict:
    from ..runtime.provenance import source_commit

    commit = source_commit() or "unknown"  # a copy of the tree without git history names it in ADAAUG_COMMIT
    env = {"device": str(device), "torch": torch.__version__, "python": platform.python_version(),
           "machine": platform.machine(), "threads": torch.get_num_threads(), "commit": commit,
           "date": time.strftime("%Y-%m-%d %H:%M")}
    if device.type == "cuda":
        env.update(device_name=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version())
    else:
        env["device_name"] = f"{platform.machine()} CPU, {torch.get_num_threads()} thread(s)"
    return env


# ---- parts -------------------------------------------------------------------------------------
def part_cuda_tests(device: torch.device, s: dict, out: dict) -> None:
    if device.type != "cuda":
        out["skipped"] = "not a CUDA device"
        return
    tests = Path(__file__).resolve().parents[2] / "tests"
    if not tests.is_dir():
        out["skipped"] = f"no tests directory at {tests}"
        return
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", str(tests)],
                          capture_output=True, text=True, timeout=max(1, s["limits"]["cuda-tests"] - 5),
                          cwd=tests.parent)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    out.update(returncode=proc.returncode, summary=lines[-1] if lines else "", tail=lines[-15:])
    if proc.returncode not in (0, 5):  # 5: no tests collected
        raise RuntimeError(f"pytest -m cuda failed: {out['summary']}")


def part_per_example(device: torch.device, s: dict, out: dict) -> None:
    from ..backbones import build_backbone
    from ..models import build_classifier
    from .._reparam import TensorSlots, swapped
    from ..per_example import PerExampleBackbone, vmap_call

    torch.manual_seed(0)
    model = build_classifier("resnet20").to(device).eval()
    b, c, repeats, size = s["pe_batch"], s["pe_chunk"], s["pe_repeats"], s["pe_size"]
    x = torch.rand(b, 3, size, size, device=device)
    y = torch.randint(0, 10, (b,), device=device)
    out["config"] = {"batch": b, "chunk": c, "repeats": repeats, "classifier": "resnet20", "size": size}
    for name in s["pe_backbones"]:
        module = build_backbone(name).to(device).eval()
        slots = TensorSlots(module)
        params = {k: p.detach() for k, p in slots.params.items()}
        buffers = dict(slots.buffers)
        delta = {k: 1e-3 * p.abs().mean() * torch.randn(b, *p.shape, device=device) for k, p in params.items()}
        runner = PerExampleBackbone(module)

        def chunked(fn: Callable) -> Callable:
            def go():
                for sl in torch.arange(b, device=device).split(c):
                    leaves = {k: v[sl].requires_grad_(True) for k, v in delta.items()}
                    images = fn(x[sl], leaves).clamp(0, 1)
                    loss = F.cross_entropy(model(images), y[sl], reduction="sum")
                    torch.autograd.grad(loss, list(leaves.values()))
            return go

        def loop():
            for n in range(b):
                leaves = {k: v[n].requires_grad_(True) for k, v in delta.items()}
                w = {k: params[k] + leaves[k] for k in params}
                with swapped(slots, w):
                    images = module(x[n:n + 1]).clamp(0, 1)
                torch.autograd.grad(F.cross_entropy(model(images), y[n:n + 1]), list(leaves.values()))

        shared_w = {k: v.clone().requires_grad_(True) for k, v in params.items()}

        def shared():
            with swapped(slots, shared_w):
                images = module(x).clamp(0, 1)
            torch.autograd.grad(F.cross_entropy(model(images), y, reduction="sum"), list(shared_w.values()))

        r = {"batched_s": measure.median_time(chunked(lambda xs, d: runner(xs, d, params, buffers)), device, repeats),
             "vmap_s": measure.median_time(chunked(lambda xs, d: vmap_call(
                 module, {k: params[k] + d[k] for k in params}, buffers, xs, slots)), device, repeats),
             "shared_s": measure.median_time(shared, device, repeats),
             "loop_s": measure.median_time(loop, device, max(1, repeats - 1))}
        r["loop_over_batched"] = r["loop_s"] / r["batched_s"]
        r["batched_over_shared"] = r["batched_s"] / r["shared_s"]
        r["vmap_over_batched"] = r["vmap_s"] / r["batched_s"]
        r["direct_path"] = runner.direct
        out.setdefault("backbones", {})[name] = r


def part_step(device: torch.device, s: dict, out: dict) -> None:
    out["config"] = {"batch": s["step_batch"], "chunk": s["step_chunk"], "steps": s["steps"],
                     "repeats": s["step_repeats"], "classifier": "resnet20", "size": 32}
    for name in s["step_backbones"]:
        r = measure.run(name, s["step_batch"], s["steps"], s["step_chunk"], str(device), s["step_repeats"])
        out.setdefault("backbones", {})[name] = {k: v for k, v in r.items() if k != "memory"}


def part_sync(device: torch.device, s: dict, out: dict) -> None:
    for name in s["step_backbones"]:
        r = measure.loop_host_syncs(name, s["step_batch"], s["steps"], s["step_chunk"], str(device))
        out.setdefault("backbones", {})[name] = r
        if r["host_syncs"]:
            raise RuntimeError(f"{name}: {r['host_syncs']} host synchronisation(s) inside the M-step loop: {r['ops']}")


def part_imagenet(device: torch.device, s: dict, out: dict) -> None:
    from ..models import build_classifier
    from ..transform import AdversarialAugment

    torch.manual_seed(0)
    model = build_classifier("resnet50", num_classes=1000, normalize="imagenet").to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    ada = AdversarialAugment.imagenet(model, weights=None, generator=torch.Generator().manual_seed(0))
    ada.corruptors[0].module.to(device)
    b, size = s["in_batch"], s["in_size"]
    x = torch.rand(b, 3, size, size, device=device)
    y = torch.randint(0, 1000, (b,), device=device)

    def step(images):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), y).backward()
        opt.step()
    out["config"] = {"batch": b, "size": size, "classifier": "resnet50 (torchvision)", "backbone": "edsr",
                     "backbone_weights": "none (untrained; no ImageNet weights are packaged)",
                     "steps": ada.steps, "chunk_size": ada.chunk_size, "ssim_threshold": ada.ssim_threshold}
    nominal = measure.median_time(lambda: step(x), device, s["in_repeats"])
    ada_s = measure.median_time(lambda: step(ada(x, y)), device, s["in_repeats"])
    out.update(nominal_step_s=nominal, ada_step_s=ada_s, nominal_images_per_s=b / nominal,
               ada_images_per_s=b / ada_s)


def part_memory(device: torch.device, s: dict, out: dict) -> None:
    from ..backbones import build_backbone
    from ..models import build_classifier
    from ..transform import AdversarialAugment

    torch.manual_seed(0)
    model = build_classifier("resnet20").to(device)
    b = s["mem_batch"]
    x = torch.rand(b, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (b,), device=device)
    out["config"] = {"batch": b, "backbone": "edsr", "steps": s["steps"], "size": 32,
                     "measure": "max_memory_allocated − allocated before" if device.type == "cuda"
                     else "peak resident set size − resident size before"}
    for cs in s["mem_chunks"]:
        ada = AdversarialAugment(model, backbone=build_backbone("edsr").to(device), steps=s["steps"], chunk_size=cs)
        ada(x[:1], y[:1])  # warm-up: per-device state, weight storage for one example
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            before = torch.cuda.memory_allocated(device) / 2 ** 20
        else:
            before = _rss_mb()
        measure.reset_peak_memory(device)
        ada(x, y)
        measure._sync(device)
        out.setdefault("peak_mb", {})[str(cs)] = measure.peak_memory_mb(device) - before
        del ada


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


_RUNNERS = {"cuda-tests": part_cuda_tests, "per-example": part_per_example, "step": part_step,
            "sync": part_sync, "imagenet": part_imagenet, "memory": part_memory}


def run_suite(device: str = "cpu", sizes: str | None = None, parts: list[str] | None = None,
              out_dir: str | Path = "benchmarks/results", limit_scale: float = 1.0,
              backbones: list[str] | None = None, budget_s: float | None = None) -> dict:
    """Run the parts in turn (each under its time limit × ``limit_scale``); write JSON + markdown.

    ``backbones`` (default: the sizes') narrows ``per-example``, ``step`` and ``sync``; ``budget_s``
    (seconds, default none) bounds the whole suite: each part's limit is cut to the time left.

    Returns ``{"environment": …, "sizes": …, "parts": {name: {"status", "seconds", …}}}``;
    ``status`` is ``ok``, ``skipped``, ``failed`` (with ``error``) or ``timeout`` (with what the part
    had measured before its limit).
    """
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("no CUDA device is available here; run the CPU form with --device cpu")
    profile = sizes or ("full" if dev.type == "cuda" else "ci")
    if profile not in SIZES:
        raise ValueError(f"sizes must be one of {', '.join(SIZES)}, got {profile!r}")
    unknown = [p for p in parts or [] if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown suite parts {unknown}; known: {', '.join(PARTS)}")
    if budget_s is not None and not budget_s > 0:
        raise ValueError(f"--budget-s must be > 0 seconds, got {budget_s}")
    s = dict(SIZES[profile])
    if backbones:
        from ..backbones import available_backbones

        unknown = [b for b in backbones if b not in available_backbones()]
        if unknown:
            raise ValueError(f"unknown backbones {unknown}; known: {', '.join(available_backbones())}")
        s["pe_backbones"] = s["step_backbones"] = tuple(backbones)
    start = time.perf_counter()
    env = environment(dev)
    print(f"adaaug bench --suite on {env['device_name']} ({env['device']}), torch {env['torch']}, "
          f"sizes {profile}, commit {env['commit']}", flush=True)
    report = {"environment": env, "sizes": profile, "parts": {}}
    for name in parts or PARTS:
        result: dict = {}
        limit = s["limits"][name] * limit_scale
        t = time.perf_counter()
        left = None if budget_s is None else budget_s - (t - start)
        limit = limit if left is None else min(limit, left)
        try:
            if left is not None and left < 1:
                raise PartTimeout(f"not started: the suite's budget of {budget_s:.0f} s was spent")
            with time_limit(limit):
                _RUNNERS[name](dev, {**s, "limits": {**s["limits"], name: limit}}, result)
            status = "skipped" if "skipped" in result else "ok"
        except (PartTimeout, subprocess.TimeoutExpired) as e:
            status, result["error"] = "timeout", str(e)
        except Exception as e:  # noqa: BLE001 -- a failing part must not stop the others
            status, result["error"] = "failed", f"{type(e).__name__}: {e}"
            result["traceback"] = traceback.format_exc(limit=6)
        finally:
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        result.update(status=status, seconds=round(time.perf_counter() - t, 1), limit_s=round(max(limit, 0), 1))
        report["parts"][name] = result
        print(f"  {name}: {status} in {result['seconds']:.0f} s" +
              (f" ({result['error']})" if "error" in result else ""), flush=True)
        md = _write(report, Path(out_dir), dev.type)  # after every part: an interrupted run keeps what it has
    print(md)
    return report


def _write(report: dict, out: Path, kind: str) -> str:
    from ..runtime.files import write_text_atomic

    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / f"suite-{kind}.json", json.dumps(report, indent=2, default=str) + "\n")
    md = markdown(report)
    write_text_atomic(out / f"suite-{kind}.md", md)
    return md


def _f(v, fmt: str = ".3g") -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def markdown(report: dict) -> str:
    """The suite's report as markdown tables (one per part that measured something)."""
    env, parts = report["environment"], report["parts"]
    lines = [f"# adaaug device suite: {env['device_name']}", "",
             f"torch {env['torch']}" + (f", CUDA {env['cuda']}" if env.get("cuda") else "") +
             f", commit {env['commit']}, {env['date']}, sizes `{report['sizes']}`", ""]
    if report["sizes"] != "full" or not env["device"].startswith("cuda"):
        lines += ["**Not meaningful:** CI-sized or off a GPU; the figures only show that every part runs.", ""]
    # a note may be an error message over several lines, holding "|": table() keeps it in its cell
    lines += table(["part", "status", "seconds", "note"],
                   ([name, r["status"], f"{r['seconds']:.0f}", r.get("error") or r.get("skipped") or r.get("summary")
                     or ""] for name, r in parts.items()))
    pe = parts.get("per-example", {}).get("backbones")
    if pe:
        cfg = parts["per-example"]["config"]
        goal = "≥ 20" if env["device"].startswith("cuda") else "≥ 2.5"
        lines += ["", f"## Per-example forward+backward (batch {cfg['batch']}, nano-batch {cfg['chunk']}, "
                  f"backbone + {cfg['classifier']})", "",
                  f"| backbone | batched s | vmap s | loop s | shared s | loop/batched (goal {goal}) "
                  "| batched/shared (goal ≤ 1.2) | vmap/batched |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, r in pe.items():
            lines.append(f"| {name} | {_f(r['batched_s'])} | {_f(r['vmap_s'])} | {_f(r['loop_s'])} | "
                         f"{_f(r['shared_s'])} | {_f(r['loop_over_batched'], '.2f')} | "
                         f"{_f(r['batched_over_shared'], '.2f')} | {_f(r['vmap_over_batched'], '.2f')} |")
    st = parts.get("step", {}).get("backbones")
    if st:
        cfg = parts["step"]["config"]
        lines += ["", f"## AdA step vs its floor (batch {cfg['batch']}, M = {cfg['steps']}, nano-batch {cfg['chunk']})",
                  "", "| backbone | nominal s | AdA s | floor s | AdA/floor (goal ≤ 1.2) | per-example/shared pass "
                  "| projection % | line search % | init % | final forward % |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, r in st.items():
            lines.append(f"| {name} | {_f(r['nominal_step_s'])} | {_f(r['ada_step_s'])} | {_f(r['floor_s'])} | "
                         f"{_f(r['ada_over_floor'], '.2f')} | {_f(r['per_example_over_shared'], '.2f')} | "
                         f"{_f(100 * r['share_projection_step'], '.1f')} | {_f(100 * r['share_line_search'], '.1f')} "
                         f"| {_f(100 * r['share_random_init'], '.1f')} | {_f(100 * r['share_final_forward'], '.1f')} |")
    sy = parts.get("sync", {}).get("backbones")
    if sy:
        lines += ["", "## Host synchronisations inside the M-step loop (goal: none)", "",
                  "| backbone | batch | M | nano-batches checked | how | host syncs |",
                  "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {n} | {r['batch']} | {r['steps']} | {r['loops']} | {r['mode']} | {r['host_syncs']} |"
                  for n, r in sy.items()]
    im = parts.get("imagenet", {})
    if "ada_images_per_s" in im:
        cfg = im["config"]
        lines += ["", f"## ImageNet preset step ({cfg['classifier']}, {cfg['size']} px, batch {cfg['batch']}, "
                  f"M = {cfg['steps']}, nano-batch {cfg['chunk_size']}; backbone weights: {cfg['backbone_weights']})",
                  "", "| step | s | images/s |", "| --- | --- | --- |",
                  f"| nominal | {_f(im['nominal_step_s'])} | {_f(im['nominal_images_per_s'], '.1f')} |",
                  f"| AdA | {_f(im['ada_step_s'])} | {_f(im['ada_images_per_s'], '.1f')} |"]
    mem = parts.get("memory", {}).get("peak_mb")
    if mem:
        cfg = parts["memory"]["config"]
        lines += ["", f"## Peak memory of one ada(x, y) call (EDSR, batch {cfg['batch']}, M = {cfg['steps']}; "
                  f"{cfg['measure']})", "", "| chunk_size | peak MB |", "| --- | --- |"]
        lines += [f"| {cs} | {_f(v, '.0f')} |" for cs, v in mem.items()]
    return "\n".join(lines) + "\n"
