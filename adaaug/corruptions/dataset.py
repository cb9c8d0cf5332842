"""``adaaug make-c``: write a corruption benchmark in the CIFAR-10-C file format from any image set.

Layout (as CIFAR-10-C, Hendrycks & Dietterich 2019): ``OUT/<corruption>.npy``, uint8, shape
``(5·N, H, W, 3)``, severities 1..5 stacked in that order (rows ``(s-1)·N .. s·N-1`` hold
severity ``s``, images in the source's order), and ``OUT/labels.npy``, int64 ``(5·N,)``, the source
labels tiled five times. ``OUT/make_c.json`` records how the files were made, a run id, ``"storage"``
(``"jpeg-q85"``: each corrupted image went through a quality-85 JPEG file, as the released ImageNet-C's;
``"lossless"``) and each file's size and sha256 (``"files"``), which ``adaaug eval`` checks and reads alone.

The 15 benchmark corruptions and the 4 extra ones (speckle noise, Gaussian blur, spatter,
saturate) are written by default; :mod:`adaaug.corruptions` implements them with
CIFAR-10-C's severities (set for 32×32 images) or ImageNet-C's (set for 224×224), no extra package
needed. ``size="auto"`` (``--size auto``) picks CIFAR-10-C's for images of at most 32×32, ImageNet-C's
for larger ones. Images of mixed sizes are brought to one with ``resize=N`` (``--resize N``): each
image's shorter side is resized to N and its centre N×N (or ``crop``×``crop``) is kept, as torchvision's
``Resize(N)`` + ``CenterCrop`` do (ImageNet-C was made from ``Resize(256)`` + ``CenterCrop(224)``:
``--resize 256 --crop 224``).

Seeded: every (corruption, severity, chunk of images) draws from its own
``numpy.random.default_rng([seed, corruption index, severity, chunk index])``, so a given seed
gives identical files, whatever the number of worker processes, and one corruption's file does not
depend on which others were requested. A chunk holds ``CHUNK`` images up to 64×64 pixels and
proportionally fewer for larger images (:func:`chunk_size`: 40 at 224×224), to bound the memory per task.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from .catalog import ALL, corrupt
from .loading import load_source, resize_center_crop

JPEG_QUALITY = 85  # the released ImageNet-C's files: make_imagenet_c.py saves each image with quality=85
CHUNK = 500  # images per seeded chunk up to 64×64; fixed so that outputs do not depend on memory settings
AUTO_CIFAR_MAX = 32  # size="auto": CIFAR-10-C severities when both sides are at most this, ImageNet-C above
_LABEL = {"cifar": "CIFAR-10-C", "imagenet": "ImageNet-C"}


def chunk_size(height: int, width: int) -> int:
    """Images per seeded chunk: :data:`CHUNK` up to 64×64 pixels, proportionally fewer above (at least 1)."""
    return max(1, min(CHUNK, CHUNK * 64 * 64 // (height * width)))


def jpeg_round_trip(images: np.ndarray, quality: int = JPEG_QUALITY) -> np.ndarray:
    """Each uint8 ``H×W×3`` image of ``images`` (``N×H×W×3``) saved as a JPEG file of ``quality`` by Pillow (its
    default 4:2:0 chroma subsampling) and decoded again, as ImageNet-C's generator saved its files; uint8, same shape."""
    import io

    from PIL import Image

    out = np.empty_like(images)
    for i, image in enumerate(images):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            out[i] = np.asarray(decoded.convert("RGB"))
    return out


def _chunk_task(images_file: str, out: str, name: str, severity: int, chunk: int, size: int, params: str,
                seed: int, jpeg: int | None = None) -> float:
    """Corrupt images ``chunk·size .. (chunk+1)·size − 1`` at ``severity`` into rows of ``out/.<name>.tmp.npy``;
    returns the seconds taken.

    The images are read from the ``.npy`` file ``images_file`` (memory-mapped) and the output file,
    created beforehand, is written in place, so that several processes can fill disjoint rows of it.
    The chunk's random numbers come from ``default_rng([seed, corruption index, severity, chunk index])``:
    the rows do not depend on which process writes them, nor on the order. ``jpeg``: a JPEG quality to round
    the corrupted images through (:func:`jpeg_round_trip`), None to store them losslessly.
    """
    start = time.perf_counter()
    images = np.load(images_file, mmap_mode="r")
    n = images.shape[0]
    lo, hi = chunk * size, min((chunk + 1) * size, n)
    rng = np.random.default_rng([seed, ALL.index(name), severity, chunk])
    array = np.load(Path(out) / f".{name}.tmp.npy", mmap_mode="r+")
    corrupted = corrupt(np.ascontiguousarray(images[lo:hi]), name, severity, params=params, rng=rng)
    array[(severity - 1) * n + lo:(severity - 1) * n + hi] = corrupted if jpeg is None else jpeg_round_trip(
        corrupted, jpeg)
    array.flush()
    del array
    return time.perf_counter() - start


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _single_threaded() -> None:
    """Pool initialiser: one thread per library in each worker (the processes share the cores). The BLAS
    variables must also be set before a worker starts (:func:`_write_all` does): BLAS reads them when
    numpy is first imported, which unpickling this initialiser already does."""
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # OpenCV is needed only by some corruptions, which then say so
        pass


def _write_all(images: np.ndarray, out: Path, names: list[str], params: str, seed: int, workers: int,
               tick, jpeg: int | None = None) -> dict[str, float]:
    """Write ``out/<name>.npy`` for every name, chunk by chunk, in ``workers`` processes (1: here).

    Each file is filled under a temporary name and renamed when complete. Returns the seconds spent
    on each corruption (summed over its chunks and processes).
    """
    n, h, w = images.shape[:3]
    size = chunk_size(h, w)
    images_file = out / ".make_c.images.tmp.npy"
    np.save(images_file, images)
    for name in names:
        np.lib.format.open_memmap(out / f".{name}.tmp.npy", mode="w+", dtype=np.uint8, shape=(5 * n, h, w, 3)).flush()
    tasks = [(str(images_file), str(out), name, severity, chunk, size, params, seed, jpeg)
             for name in names for severity in range(1, 6) for chunk in range(-(-n // size))]
    seconds = dict.fromkeys(names, 0.0)
    from ..runtime.interrupts import check as check_interrupt

    try:
        if workers > 1 and len(tasks) > 1:
            from ..runtime.interrupts import process_pool

            saved = {var: os.environ.get(var) for var in _THREAD_VARS}
            os.environ.update(dict.fromkeys(_THREAD_VARS, "1"))  # inherited by the workers spawned below
            try:  # an interrupt (Ctrl-C, SIGTERM) stops the workers at once; the temporary files go below
                with process_pool(min(workers, len(tasks)), initializer=_single_threaded) as pool:
                    futures = [pool.submit(_chunk_task, *task) for task in tasks]
                    for future in futures:
                        future.add_done_callback(lambda _: tick(1))
                    for task, future in zip(tasks, futures):
                        seconds[task[2]] += future.result()
                        check_interrupt()
            finally:
                for var, value in saved.items():  # this process's settings as they were
                    if value is None:
                        os.environ.pop(var, None)
                    else:
                        os.environ[var] = value
        else:
            for task in tasks:
                check_interrupt()
                seconds[task[2]] += _chunk_task(*task)
                tick(1)
        for name in names:
            os.replace(out / f".{name}.tmp.npy", out / f"{name}.npy")
    finally:
        images_file.unlink(missing_ok=True)
        for name in names:
            (out / f".{name}.tmp.npy").unlink(missing_ok=True)
    return {name: round(s, 2) for name, s in seconds.items()}


def remove_leftovers(out: Path) -> list[str]:
    """Remove the hidden temporary files (``.<corruption>.tmp.npy``, ``.make_c.images.tmp.npy``) that a run
    killed outright (SIGKILL, a power cut) left in ``out``; returns their names. A run that is interrupted
    (Ctrl-C, SIGTERM) or fails removes its own."""
    names = [f".{name}.tmp.npy" for name in (*ALL, "make_c.images")]
    found = [p for p in (out / n for n in names) if p.is_file()] if out.is_dir() else []
    for p in found:
        p.unlink(missing_ok=True)
    return [p.name for p in found]


def resolve_params(size: str, height: int, width: int) -> str:
    """``"cifar"`` or ``"imagenet"`` from ``size``: ``"cifar"``, ``"imagenet"``, or ``"auto"``, which picks
    CIFAR-10-C's severities when both sides are at most :data:`AUTO_CIFAR_MAX` (32) pixels, the size they
    were set for, and ImageNet-C's (set for 224×224) for anything larger."""
    if size == "auto":
        return "cifar" if max(height, width) <= AUTO_CIFAR_MAX else "imagenet"
    if size not in ("cifar", "imagenet"):
        raise ValueError(f"size must be 'cifar', 'imagenet' or 'auto', got {size!r}")
    return size


def auto_note(size: str, params: str, height: int, width: int) -> str:
    """What ``size="auto"`` chose and why, in both spellings ("" when ``size`` was given explicitly)."""
    if size != "auto":
        return ""
    if params == "cifar":
        return (f"size='auto' (--size auto) chose CIFAR-10-C severities because the images are {height}×{width}, "
                f"at most {AUTO_CIFAR_MAX}×{AUTO_CIFAR_MAX}; pass size='imagenet' (--size imagenet) for ImageNet-C's")
    return (f"size='auto' (--size auto) chose ImageNet-C severities because the images are {height}×{width}, "
            f"larger than {AUTO_CIFAR_MAX}×{AUTO_CIFAR_MAX}; pass size='cifar' (--size cifar) for CIFAR-10-C's")


def check_size(size: str, params: str, height: int, width: int, names: list[str]) -> None:
    """Raise ``ValueError`` before any work when the chosen severities cannot corrupt ``height×width`` images.

    ImageNet-C severities take any size from 4×4 (pixelate must keep a pixel), CIFAR-10-C's any size from
    2×2, except frost, whose photographs CIFAR-10-C shrinks to a fifth: at most 62×104. The message names
    the setting in both spellings (``size=`` / ``--size``), says what ``auto`` chose and why, and what to
    pass instead.
    """
    from .catalog import MIN_SIZE
    from .weather import frost_max_size

    why = auto_note(size, params, height, width)
    why = why.split(";")[0] + "; " if why else ""
    label = _LABEL[params]
    least = MIN_SIZE[params]
    if min(height, width) < least:
        raise ValueError(f"{why}{label} severities need images of at least {least}×{least} (pixelate shrinks "
                         f"them), these are {height}×{width}: pass resize=N (--resize N) to enlarge them")
    if params == "cifar" and "frost" in names:
        mh, mw = frost_max_size()
        if height > mh or width > mw:
            raise ValueError(f"{why}frost with CIFAR-10-C severities (size='cifar', --size cifar) takes images of at "
                             f"most {mh}×{mw} (CIFAR-10-C shrinks its frost photographs to a fifth), these are "
                             f"{height}×{width}: pass size='imagenet' (--size imagenet) for ImageNet-C severities, "
                             f"which take any size, or leave frost out (corruptions= / --corruptions with the "
                             f"others)")


def make_c(source, out: str | os.PathLike, *, size: str = "auto", seed: int = 0, limit: int | None = None,
           corruptions: list[str] | tuple[str, ...] | None = None, workers: int = 1, resize: int | None = None,
           crop: int | None = None, skip_bad: bool = False, lossless: bool = False, overwrite: bool = False,
           verbose: bool = True) -> dict:
    """Write a CIFAR-10-C-format directory; returns the metadata written to ``OUT/make_c.json``.

    Args:
        source: an :class:`~adaaug.data.images.ImageSet`, or a spec for
            :func:`~adaaug.data.images.load_images` (ImageFolder directory, or ``cifar10:<root>``,
            read as the test split).
        out: output directory: new or empty, or with ``overwrite`` one an earlier ``make_c`` wrote.
        size: ``"cifar"`` (CIFAR-10-C severities, set for 32×32 images), ``"imagenet"`` (ImageNet-C's, set
            for 224×224; any size from 4×4) or ``"auto"`` (cifar when both sides are at most 32 pixels,
            imagenet otherwise; decided on the images after ``resize``). CIFAR-10-C's frost takes at
            most 62×104 images.
        seed: non-negative integer; the same seed gives identical files.
        limit: use a seeded random subset of this many images (kept in source order); default all.
        corruptions: names from :data:`~adaaug.corruptions.ALL`; default all 19.
        workers: processes (spawned) sharing the work, one chunk of :data:`CHUNK` images of one
            corruption and severity at a time (1: all in this process). The files are byte-identical
            for any number of workers.
        resize: for image sets of mixed (or unwanted) sizes: resize each image's shorter side to this
            many pixels and keep its centre ``crop×crop`` (:func:`resize_center_crop`, as torchvision's
            ``Resize`` + ``CenterCrop``). Default: images as they are (all of one size).
        crop: side of the centre crop after ``resize`` (at most ``resize``; default ``resize``).
            ImageNet-C's preprocessing is ``resize=256, crop=224``.
        skip_bad: leave out image files that cannot be decoded (``--skip-bad-images``) instead of raising
            :class:`~adaaug.data.images.BadImageError`; they are named on stderr and in ``make_c.json``
            (``"skipped"``: their count and paths).
        lossless: store the corrupted images exactly. Default: as the released sets hold them, which with
            ImageNet-C severities means each corrupted image goes through a JPEG file of quality 85
            (:func:`jpeg_round_trip`; ``make_imagenet_c.py`` saves JPEG files), and with CIFAR-10-C's
            means lossless (CIFAR-10-C is ``.npy``). ``make_c.json``'s ``"storage"`` records which.
        overwrite: write into a folder that is not empty: the files an earlier ``make_c`` recorded in its
            ``make_c.json`` are removed first, anything else is left alone (and not read by ``adaaug eval``,
            which reads only the files ``make_c.json`` lists). Default: such a folder is refused.
        verbose: a progress bar on stderr when bars are on (``adaaug make-c`` without ``--no-progress``,
            or ``ADAAUG_PROGRESS=1``).

    Raises:
        ValueError: bad arguments; images of mixed sizes without ``resize``; sizes the chosen severities
            cannot take (:func:`check_size`), before any file is written.
        FileExistsError: ``out`` is not empty and ``overwrite`` is false (before any image is read).
    """
    from ..runtime.outdir import claim_output_dir

    stale = remove_leftovers(Path(out))  # hidden files of a run killed outright: ours, never a user's
    if stale and verbose:
        print(f"make-c: removed {len(stale)} temporary file(s) of an earlier run that was killed: "
              f"{', '.join(stale)}", file=sys.stderr)
    if not overwrite:
        claim_output_dir(out, overwrite=False, flag="--overwrite (overwrite=True)")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit <= 0):
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    for key, value in (("resize", resize), ("crop", crop)):
        if value is not None and (not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1):
            raise ValueError(f"{key} must be a positive integer (pixels), got {value!r}")
    if crop is not None and (resize is None or crop > resize):
        raise ValueError(f"crop={crop} (--crop {crop}) keeps the centre of the resized images: pass resize=N "
                         f"(--resize N) with N ≥ {crop} as well (ImageNet-C's preprocessing: --resize 256 "
                         f"--crop 224)")
    names = list(ALL if corruptions is None else corruptions)
    unknown = [n for n in names if n not in ALL]
    if unknown or not names:
        raise ValueError(f"unknown corruption(s) {unknown}; choose from {', '.join(ALL)}")
    data, spec = load_source(source, resize, crop, limit, int(seed), skip_bad)
    if len(data) == 0:
        raise ValueError(f"{spec} holds no {'readable ' if data.skipped else ''}images")
    images = data.images.permute(0, 2, 3, 1).contiguous().numpy()  # N×H×W×3 uint8
    if images.dtype != np.uint8 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB images, got {images.dtype} with {images.shape[-1]} channels")
    n, h, w = images.shape[:3]
    params = resolve_params(size, h, w)
    check_size(size, params, h, w, names)
    out = Path(out)
    from ..runtime.devices import removed_on_failure
    from ..runtime.outdir import file_record
    from ..runtime.progress import bar

    claim_output_dir(out, overwrite=True, earlier=earlier_files(out))
    mine = [out / f"{name}.npy" for name in names] + [out / "labels.npy", out / "make_c.json"]
    foreign = [p.name for p in mine if os.path.lexists(p)]
    if foreign:
        raise FileExistsError(f"{out} holds {', '.join(foreign)}, which no make_c.json there lists, and make-c would "
                              f"replace: move them away or choose a new or empty folder")
    jpeg = None if lossless or params == "cifar" else JPEG_QUALITY

    chunks = -(-n // chunk_size(h, w))
    with removed_on_failure(out, *mine), bar(total=5 * chunks * len(names), desc=f"make-c {params}",
                                      unit="chunk") as progress:  # a failed run leaves no folder of its own
        out.mkdir(parents=True, exist_ok=True)
        if not verbose:
            progress.disable = True
        timings = _write_all(images, out, names, params, int(seed), workers, progress.update, jpeg)
        np.save(out / "labels.npy", np.tile(data.labels.numpy().astype(np.int64), 5))
        files = {f: file_record(out / f) for f in [f"{name}.npy" for name in names] + ["labels.npy"]}
        meta = {"run_id": uuid.uuid4().hex, "source": spec, "images": n, "height": h, "width": w, "size": size,
                "params": params, "storage": f"jpeg-q{jpeg}" if jpeg else "lossless", "resize": resize,
                "crop": crop if crop is not None or resize is None else resize, "seed": int(seed),
                "limit": limit, "skipped": {"count": data.skipped, "files": list(data.skipped_files)},
                "corruptions": names, "classes": list(data.classes), "seconds": timings,
                "files": files,
                "layout": "<corruption>.npy uint8 (5·N, H, W, 3), severities 1..5 stacked; labels.npy int64 (5·N,)",
                "reference": "Hendrycks & Dietterich, ICLR 2019 (CIFAR-10-C / ImageNet-C severities)"}
        (out / ".make_c.json.tmp").write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(out / ".make_c.json.tmp", out / "make_c.json")
    return meta


def earlier_files(out: str | os.PathLike) -> list[str]:
    """The files an earlier :func:`make_c` wrote into ``out``, relative to it, as its ``make_c.json`` lists them
    (``"files"``; before 0.3, ``"corruptions"``), with the manifest itself and the temporary files of a run that
    stopped half-way."""
    temporary = [".make_c.images.tmp.npy", ".make_c.json.tmp"] + [f".{c}.tmp.npy" for c in ALL]
    try:
        meta = json.loads((Path(out) / "make_c.json").read_text())
    except (OSError, ValueError):
        return temporary
    names = list(meta.get("files") or []) or [f"{c}.npy" for c in meta.get("corruptions", []) if c in ALL] + [
        "labels.npy"]
    return [f for f in names if isinstance(f, str)] + ["make_c.json"] + temporary


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="ImageFolder directory or cifar10:<root> (test split)")
    p.add_argument("out", help="output directory for <corruption>.npy and labels.npy")
    p.add_argument("--size", choices=("cifar", "imagenet", "auto"), default="auto",
                   help="severity table: cifar (CIFAR-10-C's, set for 32×32; frost takes at most 62×104) or imagenet "
                        "(ImageNet-C's, set for 224×224; any size from 4×4); auto: cifar when both sides are at "
                        "most 32 pixels, imagenet otherwise (after --resize)")
    p.add_argument("--seed", type=int, default=0, help="the same seed writes identical files")
    p.add_argument("--limit", type=int, help="use a seeded random subset of this many images (default: all)")
    p.add_argument("--corruptions", nargs="+", choices=ALL, metavar="NAME",
                   help=f"subset of corruptions (default: all 19: {', '.join(ALL)})")
    p.add_argument("--workers", type=int, default=1,
                   help="processes sharing the work (e.g. the number of cores); the files do not depend on it")
    p.add_argument("--resize", type=int, metavar="N",
                   help="for images of mixed sizes: resize each image's shorter side to N pixels (bilinear) and "
                        "keep its centre N×N, as torchvision's Resize(N) + CenterCrop(N) (default: images as they "
                        "are)")
    p.add_argument("--lossless", action="store_true",
                   help="store the corrupted images exactly (default: as the released sets: ImageNet-C severities "
                        "go through a JPEG file of quality 85, as ImageNet-C's files; CIFAR-10-C's are lossless)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty OUT, replacing the files an earlier make-c recorded in its "
                        "make_c.json (other files are kept; default: refuse)")
    p.add_argument("--crop", type=int, metavar="M",
                   help="with --resize N: keep the centre M×M instead (M ≤ N); ImageNet-C's preprocessing is "
                        "--resize 256 --crop 224")
    p.add_argument("--skip-bad-images", action="store_true",
                   help="leave out image files that cannot be decoded (named on stderr and in make_c.json) instead "
                        "of stopping (default: stop, naming the file)")


def main(args: argparse.Namespace) -> int:
    meta = make_c(args.src, args.out, size=args.size, seed=args.seed, limit=args.limit,
                  corruptions=args.corruptions, workers=args.workers, resize=args.resize, crop=args.crop,
                  skip_bad=args.skip_bad_images, lossless=args.lossless,
                  overwrite=args.overwrite)
    note = auto_note(args.size, meta["params"], meta["height"], meta["width"])
    if note:
        print(f"make-c: {note}", file=sys.stderr)
    print(json.dumps({k: meta[k] for k in ("images", "height", "width", "params", "storage", "seed",
                                         "corruptions", "skipped")}))
    return 0
