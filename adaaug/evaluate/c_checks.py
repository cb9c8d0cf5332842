"""What an evaluation checks of its -C sets: the files ``make_c.json`` lists, image sizes, ``--limit`` subsets.

``adaaug make-c`` lists every file it wrote in ``make_c.json`` (``"files"``: size, sha256, sampled sha256).
An evaluation reads only those files (:func:`read_manifest`): a ``<corruption>.npy`` the manifest does not
list (left by another run) is ignored and reported, and a listed file whose size or sampled sha256
differs from the record (replaced by another run) is refused. A directory without ``make_c.json`` (the
released CIFAR-10-C, ImageNet-C) is read as it is.

A ``--limit`` subset is drawn once per directory from the images present at every severity of every
corruption (:func:`common_subset`), so that each severity scores the same images (RobustBench #47).

Every set of one evaluation is scored at the size the clean set's preprocessing yields; -C sets are
read as stored, never resized (RobustBench #59), so one of another size is refused (:func:`size_mismatch`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

MANIFEST = "make_c.json"
FIX = "make the set again (adaaug make-c SRC OUT --overwrite, or into a new folder)"


def read_manifest(root: Path, npy: dict[str, Path]) -> tuple[dict | None, dict[str, Path], list[str]]:
    """``(manifest or None, the npy files to read, the names of those ignored)`` of the -C directory ``root``.

    ``npy``: corruption → ``<corruption>.npy`` present in ``root``. With a ``make_c.json`` listing its files,
    only listed ones are read, each checked against its record (``ValueError`` when missing or different,
    ``labels.npy`` included); an older ``make_c.json`` (no ``"files"``) limits the corruptions to its
    ``"corruptions"``; a ``make_c.json`` naming neither (a class list only) limits nothing.
    """
    from ..runtime.outdir import check_file_record

    path = root / MANIFEST
    if not path.is_file():
        return None, npy, []
    try:
        meta = json.loads(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path} is not valid JSON ({err}): {FIX}") from None
    if not isinstance(meta, dict):
        return None, npy, []
    files = meta.get("files")
    if isinstance(files, dict):
        listed = {Path(f).stem for f in files if f.endswith(".npy") and f != "labels.npy"}
        where = f"{path} (written by make-c run {meta.get('run_id', '?')})"
        for name in sorted(listed) + ["labels"]:
            check_file_record(root / f"{name}.npy", files[f"{name}.npy"] if f"{name}.npy" in files else {},
                              where, FIX)
    elif isinstance(meta.get("corruptions"), list):
        listed = set(meta["corruptions"])
    else:
        return meta, npy, []
    missing = sorted(listed - set(npy))
    if missing:
        raise ValueError(f"{path} lists {', '.join(missing)}, which {root} does not hold: {FIX}")
    return meta, {n: p for n, p in npy.items() if n in listed}, [p.name for n, p in npy.items() if n not in listed]


def common_subset(keys: Sequence[Sequence[str]], limit: int | None) -> tuple[list[str], int]:
    """``(subset, left out)``: the keys present in every list of ``keys`` (one list per corruption and
    severity), in sorted order, ``limit`` of them evenly spaced (all when ``limit`` is None or larger), and how
    many keys of the lists were left out because some other list lacks them."""
    common = set(keys[0]).intersection(*keys[1:]) if keys else set()
    union = set().union(*keys) if keys else set()
    ordered = sorted(common)
    if limit is not None and limit < len(ordered):
        idx = np.unique(np.linspace(0, len(ordered) - 1, limit).round().astype(np.int64))
        ordered = [ordered[i] for i in idx]
    return ordered, len(union) - len(common)


def storage_note(meta: dict | None) -> str:
    """How a -C directory's images were stored, in words, from its ``make_c.json`` (released sets: as found)."""
    if not meta or "storage" not in meta:
        return "as found (no make_c.json records how)" if not meta else "lossless (make-c before 0.3)"
    storage = str(meta["storage"])
    sev = {"cifar": "CIFAR-10-C", "imagenet": "ImageNet-C"}.get(meta.get("params"), meta.get("params"))
    how = f"JPEG quality {storage[6:]}, as the released ImageNet-C" if storage.startswith("jpeg-q") else storage
    return f"{sev} severities, stored {how} (make-c run {meta.get('run_id', '?')})"


def size_mismatch(where: str, found: Sequence[int], expect: Sequence[int]) -> str:
    """The message for a set whose images are not the size of the clean set's after its preprocessing."""
    return (f"{where} holds {found[1]}×{found[0]} images, but the clean set (--data) is scored at {expect[1]}×"
            f"{expect[0]}: every set of one evaluation must be scored at one size, and a -C set is read as stored "
            f"(resizing it again would change the benchmark, RobustBench #59): pass the --image-size the -C set was "
            f"made at, or make the -C set at this size (adaaug make-c SRC OUT --resize N)")


def image_file_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(H, W)`` of an image file, from its header (nothing decoded); :class:`~adaaug.data.images.BadImageError`
    naming the file when it is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    from ..data.images import BadImageError

    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:
        raise BadImageError(path, " ".join(str(err).split()) or type(err).__name__) from None
