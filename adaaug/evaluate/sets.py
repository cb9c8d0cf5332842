"""Evaluation image sets: clean test sets, -C corruption directories, distribution-shift sets.

Every set is an :class:`ImageSource`: ``len()``, int64 ``labels`` (N,), optional class names
(label ``k`` is ``classes[k]``; None: labels are class indices), and ``batches(batch_size)`` yielding
float32 ``B×3×H×W`` tensors in [0, 1] in label order. Sets are read as they are stored; the
evaluation maps their labels to the model's outputs by class name
(:func:`adaaug.evaluate.labels.align`).

Layouts read:

- ``cifar10:<root>`` (torchvision's CIFAR10 test split) or an ImageFolder tree ``<root>/<class>/<img>``
  (classes sorted by name; class folders named ``0``, ``1``, ... as in ImageNet-v2 are read as
  class indices). With ``size`` set, images are resized (shorter side ``size/0.875``, bilinear)
  and centre-cropped to ``size×size``, the standard ImageNet evaluation; otherwise all images must
  share one size.
- numpy: a directory holding ``*data.npy`` (uint8 ``N×H×W×3``) and ``*labels.npy`` (``N``), e.g.
  CIFAR-10.1's ``cifar10.1_v6_data.npy`` / ``cifar10.1_v6_labels.npy``, or ``images.npy``/``labels.npy``.
  Labels are class indices, named by a class list next to them when there is one (``classes.json``,
  ``classes.txt`` with one name per line, or the ``classes`` of ``make_c.json``).
- -C directories: ``<corruption>.npy`` (uint8 ``(5·N)×H×W×3``, severities 1..5 stacked) with one
  ``labels.npy`` (``5·N``), the CIFAR-10-C layout (also what ``adaaug make-c`` writes); or the
  ImageNet-C layout ``<corruption>/<severity>/<class>/<img>`` (each severity folder may hold any
  subset of the classes). -C images are read as stored, never resized: a -C set is stored at its
  evaluation size, which must be the size the clean set is scored at. Only the files a ``make_c.json``
  lists are read (:mod:`adaaug.evaluate.c_checks`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..corruptions import ALL
from .c_checks import image_file_size, size_mismatch
# the image sources live in .sources; importing them from here keeps working
from .sources import ArraySource, FolderSource, ImageSource, _spread, eval_size, preprocessing  # noqa: F401


def _npy_pair(root: Path) -> tuple[Path, Path] | None:
    data = sorted(root.glob("*data.npy")) or sorted(root.glob("images.npy"))
    labels = sorted(root.glob("*labels.npy"))
    if len(data) == 1 and len(labels) == 1:
        return data[0], labels[0]
    if data or labels:
        raise ValueError(f"{root}: expected exactly one *data.npy (or images.npy) and one *labels.npy, "
                         f"found {[p.name for p in data + labels]}")
    return None


def _with_names(source: ArraySource, classes: list[str] | None, root: Path) -> ArraySource:
    """``source`` with its labels named by ``classes`` (a class-list file found next to them), checked."""
    if classes is None:
        return source
    try:
        return source.relabel(source.labels, classes)
    except ValueError as err:
        raise ValueError(f"{root}: {err} (the class list next to its labels)") from None


def _stored_at(source: ArraySource, size: int | None, where: str) -> ArraySource:
    """``source`` (arrays, never resized) when ``size`` is None or its images are ``size×size``; else ``ValueError``."""
    h, w = source.images.shape[1:3]
    if size is not None and (h, w) != (size, size):
        raise ValueError(f"--image-size {size} resizes image folders only, and {where} holds {w}×{h} arrays, which are "
                         f"read as stored: leave out --image-size (or pass --image-size {h} when the images are square)"
                         if h == w else f"--image-size {size} resizes image folders only, and {where} holds {w}×{h} "
                         f"arrays, which are read as stored: leave out --image-size")
    return source


def open_image_set(spec: str | os.PathLike, size: int | None = None, skip_bad: bool = False) -> ImageSource:
    """A clean or distribution-shift evaluation set (see the module docstring for layouts).

    ``size``: image folders are resized and centre-cropped to ``size×size`` (:class:`FolderSource`); array
    sets (``.npy``, ``cifar10:``) are read as stored and refused (``ValueError``) unless they are ``size×size``.
    ``skip_bad``: leave out image files that cannot be decoded (their paths in the set's ``skipped``)
    instead of raising :class:`~adaaug.data.images.BadImageError`.
    """
    spec = str(spec)
    if spec.startswith("cifar10:"):
        from ..data.images import load_cifar10

        data = load_cifar10(spec.split(":", 1)[1], train=False)
        return _stored_at(ArraySource(data.images, data.labels.numpy(), data.classes), size, spec)
    root = Path(spec)
    if not root.exists():
        raise FileNotFoundError(f"evaluation set {root} does not exist")
    if root.is_file() and root.suffix == ".npy":
        root = root.parent
    pair = _npy_pair(root)
    if pair is not None:
        from .labels import class_list_file, class_list_near

        names_file = class_list_file(root)
        source = _with_names(ArraySource(np.load(pair[0], mmap_mode="r"), np.load(pair[1]),
                                         names_from=None if names_file is None else str(names_file)),
                             class_list_near(root), root)
        _stored_at(source, size, str(pair[0]))
        return source
    if size is None:
        from ..data.images import load_image_folder

        data = load_image_folder(root, skip_bad=skip_bad)
        if all(c.isdigit() for c in data.classes):
            source = ArraySource(data.images, np.asarray([int(data.classes[i]) for i in data.labels]), numeric=True,
                                 names_from="folders")
        else:
            source = ArraySource(data.images, data.labels.numpy(), data.classes, names_from="folders")
        source.skipped = list(data.skipped_files)
        return source
    return FolderSource(root, size).without_unreadable() if skip_bad else FolderSource(root, size)


class CorruptionDir:
    """A -C directory: ``source(name, severity)`` gives the images of one corruption and severity, as stored.

    With ``make_c.json`` (written by ``adaaug make-c``), only the files it lists are read, each checked
    against its record (:mod:`adaaug.evaluate.c_checks`); ``ignored`` names other ``<corruption>.npy``.
    """

    def __init__(self, root: str | os.PathLike, size: int | tuple[int, int] | None = None,
                 classes: Sequence[str] | None = None, skip_bad: bool = False) -> None:
        """``size``: the ``(H, W)`` (an int: square) that every image must have, which is what the clean set's
        preprocessing yields; images are never resized (a -C set is stored at its evaluation size), so one
        of another size is refused (``ValueError``); None: not checked. ``classes``: the model's class names in
        logit order, which the evaluation maps this directory's class names to (default: unknown, see
        :func:`~adaaug.evaluate.labels.align`). ``skip_bad``: leave out image files of the folder layout that
        cannot be decoded; their paths (relative to ``root``) gather in ``skipped``."""
        from .c_checks import read_manifest

        self.root, self.skip_bad = Path(root), skip_bad
        self.skipped: list[str] = []
        self.size = (size, size) if isinstance(size, int) else (tuple(size) if size is not None else None)
        self.classes = list(classes) if classes is not None else None
        if not self.root.is_dir():
            raise FileNotFoundError(f"corruption directory {self.root} does not exist")
        npy = {n: self.root / f"{n}.npy" for n in ALL if (self.root / f"{n}.npy").is_file()}
        self.manifest, self.npy, self.ignored = read_manifest(self.root, npy)
        self.folders = {n: self.root / n for n in ALL if n not in npy and (self.root / n / "1").is_dir()}
        if not self.npy and not self.folders:
            raise FileNotFoundError(f"{self.root} holds no corruption data: expected <corruption>.npy files with "
                                    f"labels.npy (CIFAR-10-C layout) or <corruption>/<severity>/ folders "
                                    f"(ImageNet-C layout), for corruptions among {', '.join(ALL)}")
        self._subsets: dict[int | None, tuple[list, list, int]] = {}
        self.labels: np.ndarray | None = None
        self.label_names: list[str] | None = None  # names of the npy layout's label indices, from a class list
        self.names_from: str | None = None  # the class-list file that names them
        if self.npy:
            path = self.root / "labels.npy"
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing: a CIFAR-10-C-layout directory needs labels.npy "
                                        f"next to the <corruption>.npy files")
            self.labels = np.load(path)
            if self.labels.ndim != 1 or not np.issubdtype(self.labels.dtype, np.integer):
                raise ValueError(f"{path} must be a 1-D integer array, got {self.labels.dtype} {self.labels.shape}")
            if len(self.labels) % 5:
                raise ValueError(f"{path} has {len(self.labels)} labels, not a multiple of 5 (5 severities)")
            for name, file in self.npy.items():
                shape = np.load(file, mmap_mode="r").shape
                if len(shape) != 4 or shape[-1] != 3:
                    raise ValueError(f"{file} has shape {shape}; expected (5·N, H, W, 3)")
                if shape[0] != len(self.labels):
                    raise ValueError(f"{file} holds {shape[0]} images but labels.npy has {len(self.labels)} labels; "
                                     f"both must be 5·N (severities 1..5 stacked)")
                if self.size is not None and tuple(shape[1:3]) != self.size:
                    raise ValueError(size_mismatch(str(file), shape[1:3], self.size))
            from .labels import class_list_file, class_list_near

            self.label_names = class_list_near(self.root)
            names_file = class_list_file(self.root)
            self.names_from = None if names_file is None else str(names_file)
            if self.label_names is not None and len(self.labels) and self.labels.max() >= len(self.label_names):
                raise ValueError(f"{path} has labels up to {int(self.labels.max())} but the class list next to it "
                                 f"names {len(self.label_names)} classes; the class list must name every label")
        if self.size is not None:  # one header per severity folder here; every image as it is decoded
            for name, folder in self.folders.items():
                for severity in range(1, 6):
                    files = FolderSource(folder / str(severity)).files if (folder / str(severity)).is_dir() else []
                    size = self._first_size(files)
                    if size is not None and size[0] != self.size:
                        raise ValueError(size_mismatch(str(size[1]), size[0], self.size))

    def _first_size(self, files: list[Path]) -> tuple[tuple[int, int], Path] | None:
        """``((H, W), file)`` of the first readable file's header (with ``skip_bad``, unreadable ones are passed
        over: :meth:`source` leaves them out and names them); None for no file."""
        from ..data.images import BadImageError

        for f in files:
            try:
                return image_file_size(f), f
            except BadImageError:
                if not self.skip_bad:
                    raise
        return None

    @property
    def names(self) -> list[str]:
        """Corruptions present, in benchmark order (the 15, then the extras)."""
        return [n for n in ALL if n in self.npy or n in self.folders]

    def subset(self, limit: int | None) -> tuple[list[int], list[str], int]:
        """The images every corruption and severity is scored on: ``(row indices within a severity of the
        npy files, <class>/<file> keys of the folders, images left out because some severity lacks them)``.

        ``limit``: that many, evenly spaced (None: all). The same images at every severity: the npy files
        hold ``N`` per severity; the folders' keys are those present in every severity folder.
        """
        if limit not in self._subsets:
            from .c_checks import common_subset

            rows = list(range(len(self.labels) // 5)) if self.npy else []
            if limit is not None and limit < len(rows):
                rows = _spread(len(rows), limit).tolist()
            keys = [FolderSource(folder / str(s)).keys() for folder in self.folders.values() for s in range(1, 6)
                    if (folder / str(s)).is_dir()]
            chosen, left_out = common_subset(keys, limit) if keys else ([], 0)
            self._subsets[limit] = (rows, chosen, left_out)
        return self._subsets[limit]

    def source(self, name: str, severity: int, limit: int | None = None) -> ImageSource:
        """The images of ``name`` at ``severity`` as stored (labels not yet mapped to the model's classes); with
        ``limit``, the :meth:`subset` of ``limit`` images, the same at every severity."""
        if name not in self.names:
            raise KeyError(f"{name} is not in {self.root}")
        if severity not in (1, 2, 3, 4, 5):
            raise ValueError(f"severity must be in 1..5, got {severity}")
        if name in self.npy:
            array = np.load(self.npy[name], mmap_mode="r")
            n = len(array) // 5
            if limit is None:
                sl = slice((severity - 1) * n, severity * n)
                return ArraySource(array[sl], self.labels[sl], self.label_names, names_from=self.names_from)
            rows = (severity - 1) * n + np.asarray(self.subset(limit)[0], dtype=np.int64)
            return ArraySource(array[rows], self.labels[rows], self.label_names, names_from=self.names_from)
        folder = FolderSource(self.folders[name] / str(severity), None, self.size)
        folder = folder if limit is None else folder.select(self.subset(limit)[1])
        if self.skip_bad:  # unreadable files are left out at this severity, named in ``skipped``
            folder = folder.without_unreadable(self.root)
            self.skipped += [f for f in folder.skipped if f not in self.skipped]
        return folder
