"""Throughput of the companion augmentations: DeepAugment (EDSR, CAE) and AugMix, in images/s.

    python benchmarks/bench_augment.py [--device cpu] [--batch-size 256] [--repeats 3]

Each augmentation is called once to warm up, then ``--repeats`` times on a batch of
random ``--size``×``--size`` images; the table reports the median time per batch and
images/s, with the undistorted backbone pass (``*-plain``) as the floor. Backbones are
freshly initialised unless ``--weights`` names a tag (speed does not depend on the
weight values). Results go to ``benchmarks/results/augment-<device>.json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adaaug.augment.augmix import AugMix  # noqa: E402
from adaaug.augment.deepaugment import DeepAugment  # noqa: E402
from adaaug.weights import load_backbone  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, x: torch.Tensor, repeats: int, device: torch.device) -> list[float]:
    with torch.no_grad():
        fn(x)  # warm-up
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.no_grad():
            fn(x)
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--size", type=int, default=32, help="image side (32: CIFAR-10)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--chunk-size", type=int, default=16, help="DeepAugment examples per vmap chunk")
    p.add_argument("--weights", default="none", help="backbone weights tag, or 'none'")
    p.add_argument("--only", nargs="*",
                   choices=("edsr-plain", "deepaugment-edsr", "cae-plain", "deepaugment-cae", "augmix"))
    p.add_argument("--out", help="JSON path (default benchmarks/results/augment-<device>.json)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    weights = None if args.weights.lower() == "none" else args.weights
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    x = torch.rand(args.batch_size, 3, args.size, args.size, generator=g).to(device)
    def plain(name: str):
        """The undistorted backbone on the whole batch: the floor DeepAugment's overhead is measured against."""
        net = load_backbone(name, weights).to(device)
        return lambda t: net(t).clamp(0, 1)

    cases = {
        "edsr-plain": lambda: plain("edsr"),
        "deepaugment-edsr": lambda: DeepAugment("edsr", weights=weights, generator=g, chunk_size=args.chunk_size),
        "cae-plain": lambda: plain("cae"),
        "deepaugment-cae": lambda: DeepAugment("cae", weights=weights, generator=g, chunk_size=args.chunk_size),
        "augmix": lambda: AugMix(generator=g),
    }
    rows = []
    for name, build in cases.items():
        if args.only and name not in args.only:
            continue
        aug = build()
        times = _time(aug, x, args.repeats, device)
        med = statistics.median(times)
        rows.append({"augmentation": name, "batch": args.batch_size, "median_s": round(med, 4),
                     "images_per_s": round(args.batch_size / med, 1), "times_s": [round(t, 4) for t in times]})
    print(f"device {device}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
          f"{args.size}×{args.size}, {args.repeats} repeats")
    print(f"{'augmentation':<18} {'s/batch':>9} {'images/s':>10}")
    for r in rows:
        print(f"{r['augmentation']:<18} {r['median_s']:>9.3f} {r['images_per_s']:>10.1f}")
    out = Path(args.out) if args.out else Path(__file__).resolve().parent / "results" / f"augment-{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
            else platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "size": args.size, "chunk_size": args.chunk_size, "weights": weights,
            "repeats": args.repeats}
    out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
