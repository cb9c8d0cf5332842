"""``adaaug deepaugment-data SRC DST``: a DeepAugment-processed copy of an ImageFolder dataset.

The AdA paper trains "+ DeepAugment" models by drawing each sample either from the
clean training set or from a DeepAugment-processed copy of it (App. E.5). This writes
that copy: ``DST/<class>/<stem>.png`` for every ``SRC/<class>/<image>`` (sub-folders of a class kept),
same layout, same file stems, so sample ``i`` of both trees is the same image (both are read in the
order of :func:`adaaug.data.images.load_image_folder`). Images must all have
the same size (a limit of ``load_image_folder``). Seeded: the same seed, batch size,
backbone and weights give the same files on CPU.

Everything is checked before the first file is written (``--device``, the image size against the
backbone, the weights); a failed or interrupted run (Ctrl-C, SIGTERM) removes the folders it created,
so the rerun needs no ``--overwrite``. A run killed outright (SIGKILL) cannot clean up: it leaves a
marker (:data:`MARKER`) listing what it created, and the next run into DST removes those first.
``DST/deepaugment_data.json`` lists the files written; ``--overwrite`` removes those (and class folders
left empty) before writing, keeps anything else, and refuses a DST whose class folders still hold images
no run recorded (training would read them beside the new ones).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..data.images import class_folders, image_files

MANIFEST = "deepaugment_data.json"  # what a run wrote into DST: --overwrite removes exactly these files


def earlier_files(dst: Path) -> list[str]:
    """The files (relative to ``dst``) an earlier run recorded in ``dst/deepaugment_data.json``, and that record."""
    try:
        listed = json.loads((dst / MANIFEST).read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [f for f in listed if isinstance(f, str)] + [MANIFEST]


def _listing(root: Path, classes: list[str]) -> list[str]:
    """Where each image's copy goes, relative to DST: ``<class>/<sub-folders>/<stem>.png``, in
    ``load_image_folder``'s order.

    Training pairs an image with its copy by position, so the copies must keep the images' order and their
    names must differ: ``ValueError`` names the files when two images of a folder share a stem (``a.jpg``,
    ``a.png``) or when their copies would sort in another order (``a.jpg``, ``a.k.png``).
    """
    listing = []
    for cls in classes:
        files = image_files(root / cls)
        for a, b in zip(files, files[1:]):
            copy_a, copy_b = a.stem + ".png", b.stem + ".png"
            if a.parent == b.parent and copy_a >= copy_b:
                problem = "share a name" if copy_a == copy_b else "would sort in another order"
                raise ValueError(f"{a.relative_to(root).as_posix()} and {b.relative_to(root).as_posix()} {problem} "
                                 f"once written as {copy_a} and {copy_b}: rename one of them")
        listing += [f.relative_to(root).with_suffix(".png").as_posix() for f in files]
    return listing


#: Written into DST while a run is under way: what that run created, for a rerun after a kill (SIGKILL).
MARKER = ".deepaugment-data.unfinished.json"


def _remove_unfinished(dst: Path) -> str:
    """Remove what an earlier run that was killed outright (SIGKILL) created in ``dst``, as its marker lists it
    (the class folders it created, ``dst`` itself when it created it); returns a summary ("" for nothing)."""
    import shutil

    marker = dst / MARKER
    if not marker.is_file():
        return ""
    try:
        record = json.loads(marker.read_text())
        created = [str(c) for c in record.get("created", []) if c and "/" not in str(c) and str(c) not in (".", "..")]
    except (ValueError, AttributeError, TypeError):
        record, created = {}, []
    for cls in created:
        shutil.rmtree(dst / cls, ignore_errors=True)
    marker.unlink(missing_ok=True)
    if record.get("created_dst") and not any(dst.iterdir()):
        dst.rmdir()
    return f"{len(created)} class folder(s)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``adaaug deepaugment-data``."""
    parser.add_argument("src", help="ImageFolder directory <src>/<class>/<image> (images of one size)")
    parser.add_argument("dst", help="output directory; gets the same layout, PNG files")
    parser.add_argument("--backbone", choices=("edsr", "cae"), default="edsr",
                        help="DeepAugment network (Hendrycks et al. use both, one copy each)")
    parser.add_argument("--weights", default="cifar10", help="backbone weights: a tag (cifar10: adaaug's packaged "
                        "networks; deepaugment: DeepAugment's published EDSR and CAE, downloaded and checked on first "
                        "use), a .safetensors file or a published checkpoint file; 'none' for an untrained network "
                        "(testing only)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the distortions")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch")
    parser.add_argument("--chunk-size", type=int, default=16, help="examples per vmap chunk (memory)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (CUDA when available)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into a non-empty DST, replacing the files an earlier run recorded in its "
                             "deepaugment_data.json (other files are kept; default: refuse)")


def main(args: argparse.Namespace) -> int:
    """Write the processed copy; prints a JSON summary. Returns the exit status."""
    from ..augment.deepaugment import DeepAugment
    from ..data.images import load_image_folder
    from ..runtime.devices import removed_on_failure, resolve_checked

    src, dst = Path(args.src), Path(args.dst)
    if not src.is_dir():
        raise FileNotFoundError(f"SRC {src} is not a directory (expected an ImageFolder tree <src>/<class>/<image>)")
    if args.batch_size < 1 or args.chunk_size < 1:
        raise ValueError(f"--batch-size and --chunk-size must be ≥ 1, got {args.batch_size} and {args.chunk_size}")
    if src.resolve() == dst.resolve():
        raise ValueError("DST must differ from SRC")
    stale = _remove_unfinished(dst)
    if stale:
        print(f"deepaugment-data: removed {stale} of an earlier run into {dst} that was killed before it finished",
              file=sys.stderr)
    from ..runtime.outdir import claim_output_dir

    if not args.overwrite:
        claim_output_dir(dst, overwrite=False)  # refused before any work
    device = resolve_checked(args.device)
    files = _listing(src, class_folders(src))  # before decoding anything
    data = load_image_folder(src, cache=False)
    if len(files) != len(data):
        raise RuntimeError(f"listed {len(files)} files but decoded {len(data)} images under {src}")
    h, w = data.images.shape[-2:]
    if args.backbone == "cae" and (h % 4 or w % 4):
        raise ValueError(f"--backbone cae needs image sides divisible by 4, but the images under {src} are {w}×{h}: "
                         f"crop or pad them (e.g. to {w - w % 4}×{h - h % 4}), or pass --backbone edsr (any size)")
    weights = None if str(args.weights).lower() == "none" else args.weights
    generator = torch.Generator().manual_seed(args.seed)  # CPU draws: the same distortions on any device
    torch.manual_seed(args.seed)  # only matters for --weights none (a freshly initialised network)
    da = DeepAugment(args.backbone, weights=weights, generator=generator, chunk_size=args.chunk_size)
    earlier = earlier_files(dst)
    claim_output_dir(dst, overwrite=True, earlier=earlier)
    for folder in sorted({dst / Path(f).parent for f in earlier}, key=lambda p: len(p.parts), reverse=True):
        while folder != dst and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # a folder the earlier run made, now empty (an empty class folder is refused by training)
            folder = folder.parent
    foreign = sorted(str(f.relative_to(dst)) for cls in data.classes if (dst / cls).is_dir()
                     for f in image_files(dst / cls))
    if foreign:
        raise FileExistsError(f"{dst} holds images that no earlier deepaugment-data run recorded writing "
                              f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}), which training "
                              f"would read beside the new ones: move them away or choose a new or empty DST")
    created, fresh = [cls for cls in data.classes if not (dst / cls).exists()], not dst.exists()
    with removed_on_failure(dst, *(dst / cls for cls in created), dst / MANIFEST):
        dst.mkdir(parents=True, exist_ok=True)  # the marker says what to remove should this run be killed outright
        (dst / MARKER).write_text(json.dumps({"created_dst": fresh, "created": created}) + "\n")
        try:
            seconds = _write(da, data, files, dst, device, args)
            (dst / MANIFEST).write_text(json.dumps({"src": str(src), "backbone": args.backbone, "weights": weights,
                                                    "seed": args.seed,
                                                    "files": files},
                                                   indent=2) + "\n")
        except BaseException:
            (dst / MARKER).unlink(missing_ok=True)
            raise
        (dst / MARKER).unlink()
    print(json.dumps({"src": str(src), "dst": str(dst), "images": len(data), "backbone": args.backbone,
                      "weights": weights, "seed": args.seed, "seconds": round(seconds, 2),
                      "images_per_s": round(len(data) / max(seconds, 1e-9), 2)}, indent=2))
    return 0


def _write(da, data, files: list[str], dst: Path, device: torch.device, args: argparse.Namespace) -> float:
    """Process and write every image (``files``: from :func:`_listing`); returns the seconds it took."""
    from PIL import Image

    for folder in sorted({(dst / f).parent for f in files}):
        folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    from ..runtime.progress import bar

    from ..runtime.interrupts import check as check_interrupt

    for lo in bar(range(0, len(data), args.batch_size), desc=f"DeepAugment ({args.backbone})", unit="batch"):
        check_interrupt()
        batch = data.images[lo:lo + args.batch_size].to(device)
        out = da(batch).permute(0, 2, 3, 1).cpu().numpy()  # uint8 in, uint8 out
        for k, array in enumerate(out):
            Image.fromarray(np.ascontiguousarray(array)).save(dst / files[lo + k])
    return time.perf_counter() - start
