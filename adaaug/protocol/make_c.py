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


def _chunk_task(images_file: str, out: str, name: str, severity: int, chunk: int, size: int, params: str,
                seed: int) -> float:
    """Corrupt images ``chunk·size .. (chunk+1)·size − 1`` at ``severity`` into rows of ``out/.<name>.tmp.npy``;
    returns the seconds taken.

    The images are read from the ``.npy`` file ``images_file`` (memory-mapped) and the output file,
    created beforehand, is written in place, so that several processes can fill disjoint rows of it.
    The chunk's random numbers come from ``default_rng([seed, corruption index, severity, chunk index])``:
    the rows do not depend on which process writes them, nor on the order.
    """
    start = time.perf_counter()
    images = np.load(images_file, mmap_mode="r")
    n = images.shape[0]
    lo, hi = chunk * size, min((chunk + 1) * size, n)
    rng = np.random.default_rng([seed, ALL.index(name), severity, chunk])
    array = np.load(Path(out) / f".{name}.tmp.npy", mmap_mode="r+")
    array[(severity - 1) * n + lo:(severity - 1) * n + hi] = corrupt(
        np.ascontiguousarray(images[lo:hi]), name, severity, params=params, rng=rng)
    array.flush()
    del array
    return time.perf_counter() - start


def _single_threaded() -> None:
    """Pool initialiser: one thread per library in each worker (the processes share the cores)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # OpenCV is needed only by some corruptions, which then say so
        pass


def _write_all(images: np.ndarray, out: Path, names: list[str], params: str, seed: int, workers: int,
               tick) -> dict[str, float]:
    """Write ``out/<name>.npy`` for every name, chunk by chunk, in ``workers`` processes (1: here).

    Each file is filled under a temporary name and renamed when complete. Returns the seconds spent
    on each corruption (summed over its chunks and processes).
    """
    n, h, w = images.shape[:3]
    images_file = out / ".make_c.images.tmp.npy"
    np.save(images_file, images)
    for name in names:
        np.lib.format.open_memmap(out / f".{name}.tmp.npy", mode="w+", dtype=np.uint8, shape=(5 * n, h, w, 3)).flush()
    tasks = [(str(images_file), str(out), name, severity, chunk, CHUNK, params, seed)
             for name in names for severity in range(1, 6) for chunk in range(-(-n // CHUNK))]
    seconds = dict.fromkeys(names, 0.0)
    try:
        if workers > 1 and len(tasks) > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=ctx,
                                     initializer=_single_threaded) as pool:
                futures = [pool.submit(_chunk_task, *task) for task in tasks]
                for future in futures:
                    future.add_done_callback(lambda _: tick(1))
                for task, future in zip(tasks, futures):
                    seconds[task[2]] += future.result()
        else:
            for task in tasks:
                seconds[task[2]] += _chunk_task(*task)
                tick(1)
        for name in names:
            os.replace(out / f".{name}.tmp.npy", out / f"{name}.npy")
    finally:
        images_file.unlink(missing_ok=True)
        for name in names:
            (out / f".{name}.tmp.npy").unlink(missing_ok=True)
    return {name: round(s, 2) for name, s in seconds.items()}


def resolve_params(size: str, height: int, width: int) -> str:
    """``"cifar"`` or ``"imagenet"`` from ``size`` (``cifar``, ``imagenet`` or ``auto``: cifar for 32×32 images)."""
    if size == "auto":
        return "cifar" if (height, width) == (32, 32) else "imagenet"
    if size not in ("cifar", "imagenet"):
        raise ValueError(f"size must be 'cifar', 'imagenet' or 'auto', got {size!r}")
    return size


def check_size(size: str, params: str, height: int, width: int, names: list[str]) -> None:
    """Raise ``ValueError`` before any work when the chosen severities cannot corrupt ``height×width`` images.

    The message names the setting in both spellings (``size=`` / ``--size``), says what ``auto`` chose
    and why, and what to pass instead.
    """
    from .corruptions import IMAGENET_C_OWN, frost_max_size

    why = (f"size='auto' (--size auto) chose ImageNet-C severities because the images are {height}×{width}, "
           f"not 32×32; " if size == "auto" and params == "imagenet" else "")
    if params == "imagenet" and min(height, width) < 32 and any(n not in IMAGENET_C_OWN for n in names):
        raise ValueError(f"{why}ImageNet-C severities need images of at least 32×32, these are {height}×{width}: "
                         f"pass size='cifar' (--size cifar) for CIFAR-10-C severities, which take small images")
    if params == "cifar" and "frost" in names:
        mh, mw = frost_max_size()
        if height > mh or width > mw:
            raise ValueError(f"frost with CIFAR-10-C severities (size='cifar', --size cifar) takes images of at most "
                             f"{mh}×{mw} (its textures are shrunk to a fifth), these are {height}×{width}: pass "
                             f"size='imagenet' (--size imagenet) for larger images, or leave frost out (corruptions= / "
                             f"--corruptions with the others)")


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
        workers: processes (spawned) sharing the work, one chunk of :data:`CHUNK` images of one
            corruption and severity at a time (1: all in this process). The files are byte-identical
            for any number of workers.
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
    check_size(size, params, h, w, names)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    from .progress import bar

    chunks = -(-n // CHUNK)
    with bar(total=5 * chunks * len(names), desc=f"make-c {params}", unit="chunk") as progress:
        if not verbose:
            progress.disable = True
        timings = _write_all(images, out, names, params, int(seed), workers, progress.update)
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
    p.add_argument("--workers", type=int, default=1,
                   help="processes sharing the work (e.g. the number of cores); the files do not depend on it")


def main(args: argparse.Namespace) -> int:
    meta = make_c(args.src, args.out, size=args.size, seed=args.seed, limit=args.limit,
                  corruptions=args.corruptions, workers=args.workers)
    print(json.dumps({k: meta[k] for k in ("images", "height", "width", "params", "seed", "corruptions")}))
    return 0
