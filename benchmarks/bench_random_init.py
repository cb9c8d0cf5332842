"""δ⁰ (Algorithm 1, step 1): the counter-based draw on the device against the former per-example CPU draw.

``new``: ``adaaug.perturb.random_init`` (splitmix64 words + Box–Muller in int64/float32 tensor ops for
the whole nano-batch at once, on the parameters' device). ``old``: the implementation it replaced (one
``torch.Generator`` per example on the CPU, ``normal_`` + ``uniform_`` in float32, then a copy to the
device). Both produce ``{block: N × *φ_block.shape}`` for one nano-batch. Runs interleaved
(old, new, old, new, ...) and prints medians and their ratio.

    python benchmarks/bench_random_init.py --backbone edsr --nano-batch 8 --threads 1 --device cpu
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from adaaug.perturb import block_radii, example_seeds, random_init
from adaaug.weights import load_backbone


def old_random_init(params: dict, radii: dict, seeds: torch.Tensor) -> dict:
    sizes = [p.numel() for p in params.values()]
    n = len(seeds)
    gauss = torch.empty(n, sum(sizes))
    fractions = torch.empty(n, len(sizes))
    for row, seed in enumerate(seeds.tolist()):
        g = torch.Generator().manual_seed(seed)
        gauss[row].normal_(generator=g)
        fractions[row].uniform_(generator=g)
    first = next(iter(params.values()))
    gauss = gauss.to(device=first.device, dtype=first.dtype)
    fractions = fractions.to(device=first.device, dtype=first.dtype)
    delta = {}
    for i, ((k, p), direction) in enumerate(zip(params.items(), gauss.split(sizes, dim=1))):
        norm = direction.norm(dim=1, keepdim=True).clamp_min_(torch.finfo(direction.dtype).tiny)
        scale = fractions[:, i:i + 1].mul(radii[k].to(p.dtype)).div_(norm)
        delta[k] = direction.mul(scale).view(n, *p.shape)
    return delta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backbone", default="edsr")
    ap.add_argument("--nano-batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    net = load_backbone(args.backbone, "cifar10")
    params = {k: p.detach().to(device) for k, p in net.named_parameters()}
    radii = block_radii(params, 0.015)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times: dict[str, list[float]] = {"old": [], "new": []}
    fns = {"old": old_random_init, "new": random_init}
    for r in range(args.repeats + 1):
        for name, fn in fns.items():
            seeds = example_seeds(args.nano_batch, torch.Generator().manual_seed(r))
            sync()
            t0 = time.perf_counter()
            fn(params, radii, seeds)
            sync()
            if r:  # the first round warms up
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {"backbone": args.backbone, "parameters": sum(p.numel() for p in params.values()),
              "nano_batch": args.nano_batch, "threads": args.threads, "device": str(device),
              "torch": torch.__version__, "old_s": med["old"], "new_s": med["new"],
              "old_over_new": med["old"] / med["new"],
              "old_quartiles": statistics.quantiles(times["old"], n=4),
              "new_quartiles": statistics.quantiles(times["new"], n=4)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
