"""``adaaug make-c``: write a corruption benchmark in the CIFAR-10-C file format from any image set.

Layout (as CIFAR-10-C, Hendrycks & Dietterich 2019): ``OUT/<corruption>.npy``, uint8, shape
``(5·N, H, W, 3)``, severities 1..5 stacked in that order (rows ``(s-1)·N .. s·N-1`` hold
severity ``s``, images in the source's order), and ``OUT/labels.npy``, int64 ``(5·N,)``, the source
labels tiled five times. ``OUT/make_c.json`` records how the files were made.

The 15 benchmark corruptions and the 4 extra ones (speckle noise, Gaussian blur, spatter,
saturate) are written by default; :mod:`adaaug.protocol.corruptions` implements them with
CIFAR-10-C's severities (32×32 images) or ImageNet-C's (224×224). Seeded: every
(corruption, severity, chunk of ``CHUNK`` images) draws from its own
``numpy.random.default_rng([seed, corruption index, severity, chunk index])``, so a given seed
gives identical files, and one corruption's file does not depend on which others were requested.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from .corruptions import ALL, corrupt

CHUNK = 500  # images per seeded chunk; fixed so that outputs do not depend on memory settings


def _write_corruption(images: np.ndarray, out: Path, name: str, params: str, seed: int, tick=None) -> float:
    """Write ``out/<name>.npy`` (via a temporary file, renamed when complete); returns the seconds taken.

    ``tick``: called after each severity (progress).
    """
    start = time.perf_counter()
    n, h, w = images.shape[:3]
    index = ALL.index(name)
    tmp = out / f".{name}.tmp.npy"
    array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(5 * n, h, w, 3))
    for severity in range(1, 6):
        for chunk, lo in enumerate(range(0, n, CHUNK)):
            rng = np.random.default_rng([seed, index, severity, chunk])
            hi = min(lo + CHUNK, n)
            array[(severity - 1) * n + lo:(severity - 1) * n + hi] = corrupt(
                images[lo:hi], name, severity, params=params, rng=rng)
        if tick is not None:
            tick(1)
    array.flush()
    del array
    os.replace(tmp, out / f"{name}.npy")
    return round(time.perf_counter() - start, 2)


def resolve_params(size: str, height: int, width: int) -> str:
    """``"cifar"`` or ``"imagenet"`` from ``size`` (``cifar``, ``imagenet`` or ``auto``: cifar for 32×32 images)."""
    if size == "auto":
        return "cifar" if (height, width) == (32, 32) else "imagenet"
    if size not in ("cifar", "imagenet"):
        raise ValueError(f"size must be 'cifar', 'imagenet' or 'auto', got {size!r}")
    return size


def make_c(source, out: str | os.PathLike, *, size: str = "auto", seed: int = 0, limit: int | None = None,
           corruptions: list[str] | tuple[str, ...] | None = None, workers: int = 1, verbose: bool = True) -> dict:
    """Write a CIFAR-10-C-format directory; returns the metadata written to ``OUT/make_c.json``.

    Args:
        source: an :class:`~adaaug.protocol.data.ImageSet`, or a spec for
            :func:`~adaaug.protocol.data.load_images` (ImageFolder directory, or ``cifar10:<root>``,
            read as the test split).
        out: output directory (created; existing corruption files in it are replaced).
        size: ``"cifar"`` (CIFAR-10-C severities), ``"imagenet"`` (ImageNet-C) or ``"auto"``
            (cifar for 32×32 images, imagenet otherwise).
        seed: non-negative integer; the same seed gives identical files.
        limit: use a seeded random subset of this many images (kept in source order); default all.
        corruptions: names from :data:`~adaaug.protocol.corruptions.ALL`; default all 19.
        workers: processes writing corruptions in parallel (1: in this process). Outputs do not
            depend on it.
        verbose: a progress bar on stderr when bars are on (``adaaug make-c`` without ``--no-progress``,
            or ``ADAAUG_PROGRESS=1``).
    """
    from .data import ImageSet, load_images

    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit <= 0):
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    names = list(ALL if corruptions is None else corruptions)
    unknown = [n for n in names if n not in ALL]
    if unknown or not names:
        raise ValueError(f"unknown corruption(s) {unknown}; choose from {', '.join(ALL)}")
    if isinstance(source, ImageSet):
        data, spec = source, "<ImageSet>"
    elif isinstance(source, (str, os.PathLike)):
        data, spec = load_images(str(source), train=False), str(source)
    else:
        raise TypeError(f"source must be an ImageSet or a data spec string, got {type(source).__name__}")
    data = data.subset(limit, seed)
    if len(data) == 0:
        raise ValueError(f"{spec} holds no images")
    images = data.images.permute(0, 2, 3, 1).contiguous().numpy()  # N×H×W×3 uint8
    if images.dtype != np.uint8 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB images, got {images.dtype} with {images.shape[-1]} channels")
    n, h, w = images.shape[:3]
    params = resolve_params(size, h, w)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(images, out, name, params, int(seed)) for name in names]
    from .progress import bar

    with bar(total=5 * len(names), desc=f"make-c {params}", unit="severity") as progress:
        if not verbose:
            progress.disable = True
        if workers > 1 and len(names) > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(min(workers, len(names)), mp_context=ctx) as pool:
                futures = [pool.submit(_write_corruption, *job) for job in jobs]
                for future in futures:
                    future.add_done_callback(lambda _: progress.update(5))
                seconds = [f.result() for f in futures]
        else:
            seconds = [_write_corruption(*job, tick=progress.update) for job in jobs]
    timings = dict(zip(names, seconds))
    np.save(out / "labels.npy", np.tile(data.labels.numpy().astype(np.int64), 5))
    meta = {"source": spec, "images": n, "height": h, "width": w, "params": params, "seed": int(seed),
            "limit": limit, "corruptions": names, "classes": list(data.classes), "seconds": timings,
            "layout": "<corruption>.npy uint8 (5·N, H, W, 3), severities 1..5 stacked; labels.npy int64 (5·N,)",
            "reference": "Hendrycks & Dietterich, ICLR 2019 (CIFAR-10-C / ImageNet-C severities)"}
    (out / "make_c.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="ImageFolder directory or cifar10:<root> (test split)")
    p.add_argument("out", help="output directory for <corruption>.npy and labels.npy")
    p.add_argument("--size", choices=("cifar", "imagenet", "auto"), default="auto",
                   help="severity parameters: CIFAR-10-C (32×32) or ImageNet-C (224×224); auto picks by image size")
    p.add_argument("--seed", type=int, default=0, help="the same seed writes identical files")
    p.add_argument("--limit", type=int, help="use a seeded random subset of this many images (default: all)")
    p.add_argument("--corruptions", nargs="+", choices=ALL, metavar="NAME",
                   help=f"subset of corruptions (default: all 19: {', '.join(ALL)})")
    p.add_argument("--workers", type=int, default=1, help="processes writing corruptions in parallel")


def main(args: argparse.Namespace) -> int:
    meta = make_c(args.src, args.out, size=args.size, seed=args.seed, limit=args.limit,
                  corruptions=args.corruptions, workers=args.workers)
    print(json.dumps({k: meta[k] for k in ("images", "height", "width", "params", "seed", "corruptions")}))
    return 0
