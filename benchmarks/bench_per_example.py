"""Ways to run a backbone with per-example weights φ + δ⁽ⁿ⁾, measured side by side (A/B, interleaved).

For each backbone, forward+backward (gradients with respect to every δ⁽ⁿ⁾) over a batch in
nano-batches of ``--chunk-size``, with these implementations of the per-example pass:

- ``vmap``: ``vmap(functional_call)`` with φ + δ formed inside (adaaug ≤ 0.1, the "before");
- ``direct``: :mod:`adaaug.per_example` without ``vmap`` (grouped convolutions, 1×1 as bmm),
  φ + δ freshly allocated on every call;
- ``direct+storage``: the same with φ + δ written into reused storage (what AdA runs now);
- ``im2col``: ``direct+storage`` with convolutions on maps of ≤ ``--im2col-max`` output pixels
  as unfold + batched matrix products;
- ``channels_last``: ``direct+storage`` with the grouped convolutions in channels-last layout;
- ``compile`` (``--compile``): ``torch.compile`` of the ``direct`` pass (compile time reported);

against ``shared``: one shared weight set over the whole batch (the floor), and ``shared/nano``:
shared weights, run per nano-batch. With ``--loop`` it also times the batched call (current
corruptor, then the classifier, per nano-batch) against a Python loop over examples, each with its
own ``functional_call`` (as ``bench_perturbation.py``), before and after.

Times are CPU time of this process (one thread), medians over ``--repeats`` rounds in which every
variant runs once in turn, so that load from other processes affects all of them alike; the
1-minute load average is recorded. Prints a table, writes JSON.

    python benchmarks/bench_per_example.py --backbones vqvae cae --batch-size 32 --repeats 7
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap

import adaaug.per_example as pe
from adaaug.backbones import build_backbone
from adaaug.models import build_classifier

_conv2d = pe._conv2d


def _out_size(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def conv_im2col(max_pixels: int):
    """A per-example conv2d that uses unfold + bmm on small output maps, else the grouped one."""
    def conv(x, w, b, stride=1, padding=0, dilation=1, groups=1):
        st, pd, dl = pe._pair(stride), pe._pair(padding), pe._pair(dilation)
        k = tuple(w.shape[-2:])
        if groups != 1 or isinstance(pd, str) or k == (1, 1):
            return _conv2d(x, w, b, stride, padding, dilation, groups)
        ho, wo = (_out_size(x.shape[2 + i], k[i], st[i], pd[i], dl[i]) for i in range(2))
        if ho * wo > max_pixels:
            return _conv2d(x, w, b, stride, padding, dilation, groups)
        n = x.shape[0]
        cols = F.unfold(x, k, dl, pd, st)
        w2 = w.reshape(n, w.shape[1], -1)
        out = torch.bmm(w2, cols) if b is None else torch.baddbmm(b.unsqueeze(-1), w2, cols)
        return out.view(n, w.shape[1], ho, wo)
    return conv


def conv_channels_last(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    if groups == 1 and w.shape[-2:] == (1, 1):
        return _conv2d(x, w, b, stride, padding, dilation, groups)
    n = x.shape[0]
    xx = x.reshape(1, n * x.shape[1], *x.shape[2:]).contiguous(memory_format=torch.channels_last)
    ww = w.reshape(n * w.shape[1], *w.shape[2:]).contiguous(memory_format=torch.channels_last)
    out = F.conv2d(xx, ww, None if b is None else b.reshape(-1), stride, padding, dilation, n * groups)
    return out.contiguous().view(n, w.shape[1], *out.shape[2:])


def make_variants(module, args) -> dict:
    """name → fn(x, delta, params, buffers) returning the unclamped per-example outputs."""
    runner = pe.PerExampleBackbone(module)

    def vmapped(x, delta, params, buffers):
        def one(d, xi):
            return functional_call(module, {**{k: params[k] + d[k] for k in params}, **buffers},
                                   (xi.unsqueeze(0),)).squeeze(0)
        return vmap(one)(delta, x)

    def direct(x, delta, params, buffers):
        return pe.per_example_call(module, {k: params[k] + delta[k] for k in params}, buffers, x)

    def with_conv(conv):
        def fn(x, delta, params, buffers):
            pe._conv2d = conv
            try:
                return runner(x, delta, params, buffers)
            finally:
                pe._conv2d = _conv2d
        return fn

    variants = {"vmap": vmapped, "direct": direct, "direct+storage": runner,
                "im2col": with_conv(conv_im2col(args.im2col_max)), "channels_last": with_conv(conv_channels_last)}
    if args.compile:
        variants["compile"] = torch.compile(direct)
    return {k: v for k, v in variants.items() if k in args.variants or k == "compile"}


def cpu_time(fn) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def run_backbone(name: str, args) -> dict:
    torch.manual_seed(0)
    module = build_backbone(name).eval()
    for p in module.parameters():
        p.requires_grad_(False)
    params = {k: p.detach() for k, p in module.named_parameters()}
    buffers = dict(module.named_buffers())
    x = torch.rand(args.batch_size, 3, args.size, args.size)
    g = torch.Generator().manual_seed(1)
    chunks = list(x.split(args.chunk_size))
    deltas = [{k: 1e-3 * p.abs().mean() * torch.randn(len(xs), *p.shape, generator=g) for k, p in params.items()}
              for xs in chunks]
    variants = make_variants(module, args)
    record: dict = {"backbone": name, "params": sum(p.numel() for p in params.values())}

    def per_example(fn):
        def go():
            for xs, d0 in zip(chunks, deltas):
                leaves = {k: v.clone().requires_grad_(True) for k, v in d0.items()}
                out = fn(xs, leaves, params, buffers).clamp(0, 1)
                torch.autograd.grad(out.square().mean(), list(leaves.values()))
        return go

    def shared(parts):
        def go():
            for xs in parts:
                w = {k: v.clone().requires_grad_(True) for k, v in params.items()}
                out = functional_call(module, {**w, **buffers}, (xs,)).clamp(0, 1)
                torch.autograd.grad(out.square().mean(), list(w.values()))
        return go

    # the variants agree with the first one (vmap) on the first nano-batch
    with torch.no_grad():
        ref = variants[next(iter(variants))](chunks[0], deltas[0], params, buffers)
        record["max_abs_diff"] = {k: (fn(chunks[0], deltas[0], params, buffers) - ref).abs().max().item()
                                  for k, fn in variants.items()}
    fns = {"shared": shared([x]), "shared/nano": shared(chunks)}
    fns.update({k: per_example(fn) for k, fn in variants.items()})
    if "compile" in variants:
        t = time.perf_counter()
        fns["compile"]()
        record["compile_s"] = time.perf_counter() - t
    if args.loop:
        classifier = build_classifier("resnet20").eval()
        y = torch.randint(0, 10, (args.batch_size,), generator=g)
        before, after = variants.get("vmap"), variants["direct+storage"]

        def batched(fn):
            def go():
                for xs, ys, d0 in zip(chunks, y.split(args.chunk_size), deltas):
                    leaves = {k: v.clone().requires_grad_(True) for k, v in d0.items()}
                    loss = F.cross_entropy(classifier(fn(xs, leaves, params, buffers).clamp(0, 1)), ys,
                                           reduction="sum")
                    torch.autograd.grad(loss, list(leaves.values()))
            return go

        def loop():
            i = 0
            for xs, ys, d0 in zip(chunks, y.split(args.chunk_size), deltas):
                for n in range(len(xs)):
                    leaves = {k: v[n].clone().requires_grad_(True) for k, v in d0.items()}
                    out = functional_call(module, {**{k: params[k] + leaves[k] for k in params}, **buffers},
                                          (xs[n:n + 1],)).clamp(0, 1)
                    torch.autograd.grad(F.cross_entropy(classifier(out), ys[n:n + 1]), list(leaves.values()))
                    i += 1
        fns["loop (with classifier)"] = loop
        fns["batched after (with classifier)"] = batched(after)
        if before is not None:
            fns["batched before (with classifier)"] = batched(before)
    for fn in fns.values():  # warm-up
        fn()
    times = {k: [] for k in fns}
    loads = []
    for _ in range(args.repeats):
        for k, fn in fns.items():
            times[k].append(cpu_time(fn))
        loads.append(os.getloadavg()[0])
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    record["cpu_s"] = med
    record["over_shared"] = {k: med[k] / med["shared"] for k in list(variants) + ["shared/nano"]}
    if args.loop:
        record["loop_over_batched"] = {"after": med["loop (with classifier)"] / med["batched after (with classifier)"]}
        if "batched before (with classifier)" in med:
            record["loop_over_batched"]["before"] = (med["loop (with classifier)"]
                                                     / med["batched before (with classifier)"])
    record["load_1min"] = [min(loads), max(loads)]
    return record


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbones", nargs="+", default=["edsr", "cae", "vqvae", "unet"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--chunk-size", type=int, default=8)
    p.add_argument("--size", type=int, default=32, help="image side [32]")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--variants", nargs="+", default=["vmap", "direct", "direct+storage", "im2col", "channels_last"])
    p.add_argument("--im2col-max", type=int, default=64, help="largest output map (pixels) for im2col [64 = 8×8]")
    p.add_argument("--compile", action="store_true", help="also time torch.compile of the direct pass")
    p.add_argument("--loop", action="store_true", help="also time the Python loop over examples")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.backbones:
        r = run_backbone(name, args)
        r.update({"args": vars(args), "machine": f"{platform.machine()} CPU, {torch.get_num_threads()} thread(s)",
                  "torch": torch.__version__, "commit": commit, "date": time.strftime("%Y-%m-%d")})
        print(f"\n{name} (batch {args.batch_size}, chunk {args.chunk_size}, {args.size} px, CPU time, "
              f"load {r['load_1min'][0]:.1f}–{r['load_1min'][1]:.1f}); shared pass {r['cpu_s']['shared']:.3f} s")
        print(f"{'variant':<36}{'CPU s':>9}{'/shared':>9}{'max |Δ|':>11}")
        for k, s in r["cpu_s"].items():
            ratio = r["over_shared"].get(k)
            diff = r["max_abs_diff"].get(k)
            print(f"{k:<36}{s:>9.3f}{'' if ratio is None else f'{ratio:.2f}':>9}"
                  f"{'' if diff is None else f'{diff:.1e}':>11}")
        for k, v in r.get("loop_over_batched", {}).items():
            print(f"loop / batched ({k}): {v:.2f}×")
        if "compile_s" in r:
            print(f"torch.compile: first call {r['compile_s']:.0f} s")
        (out / f"per-example-{name}-cpu.json").write_text(json.dumps(r, indent=2) + "\n")


if __name__ == "__main__":
    main()
