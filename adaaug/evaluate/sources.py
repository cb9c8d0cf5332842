"""Image sources of an evaluation: arrays held in memory (:class:`ArraySource`) and ImageFolder trees decoded
batch by batch (:class:`FolderSource`), both :class:`ImageSource`; what size they are scored at
(:func:`eval_size`) and what was done to them (:func:`preprocessing`). :mod:`adaaug.evaluate.sets` opens
them from a path (the layouts are described there).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Protocol, Sequence

import numpy as np
import torch

from ..data.images import list_image_folder
from .c_checks import image_file_size, size_mismatch


def _spread(total: int, n: int) -> np.ndarray:
    """``n`` distinct, evenly spaced indices into ``range(total)`` (``n`` ≤ ``total``)."""
    if n <= 0:
        raise ValueError(f"a subset size must be positive, got {n}")
    return np.unique(np.linspace(0, total - 1, n).round().astype(np.int64))


class ImageSource(Protocol):
    labels: np.ndarray
    classes: list[str] | None
    numeric: bool  # labels are the values of class folders named 0, 1, ...

    def __len__(self) -> int: ...

    def relabel(self, labels: np.ndarray, classes: Sequence[str] | None) -> "ImageSource": ...

    def take(self, n: int | None) -> "ImageSource": ...

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]: ...


class ArraySource:
    """uint8 images ``N×H×W×3`` (numpy, memory-mapped numpy, or a torch ``N×3×H×W`` tensor) + labels."""

    def __init__(self, images, labels, classes: Sequence[str] | None = None, numeric: bool = False, *,
                 names_from: str | None = None) -> None:
        """``names_from``: where the class names come from, for messages: ``"folders"`` (class folders), the
        path of a class-list file, or None (given directly)."""
        if isinstance(images, torch.Tensor):
            if images.ndim != 4 or images.shape[1] != 3:
                raise ValueError(f"image tensor must be N×3×H×W, got {tuple(images.shape)}")
            images = images.permute(0, 2, 3, 1).numpy()
        images = np.asarray(images) if not isinstance(images, np.ndarray) else images
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 N×H×W×3, got {images.dtype} {images.shape}")
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
        if len(labels) != len(images):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels.astype(np.int64)
        self.classes = list(classes) if classes is not None else None
        self.numeric, self.names_from = numeric, names_from
        self.skipped: list[str] = []  # unreadable files left out (--skip-bad-images)
        if self.classes is not None and len(self.labels) and (self.labels.min() < 0
                                                              or self.labels.max() >= len(self.classes)):
            raise ValueError(f"labels reach {int(self.labels.max())} (minimum {int(self.labels.min())}) but only "
                             f"{len(self.classes)} class names are given; the class list must name every label")

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, n: int | None) -> "ArraySource":
        """``n`` evenly spaced examples, in order (class-balanced on class-sorted sets); all if None."""
        if n is None or n >= len(self):
            return self
        idx = _spread(len(self), n)
        return self._like(ArraySource(self.images[idx], self.labels[idx], self.classes, self.numeric,
                                      names_from=self.names_from))

    def relabel(self, labels: np.ndarray, classes: Sequence[str] | None) -> "ArraySource":
        """The same images with ``labels`` (N,) naming ``classes``."""
        return self._like(ArraySource(self.images, labels, classes, names_from=self.names_from))

    def _like(self, other: "ArraySource") -> "ArraySource":
        other.skipped = self.skipped
        return other

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        for lo in range(0, len(self), batch_size):
            chunk = torch.from_numpy(np.array(self.images[lo:lo + batch_size]))  # a writable copy
            yield chunk.permute(0, 3, 1, 2).float().div_(255)


class FolderSource:
    """An ImageFolder tree decoded batch by batch (never all in memory).

    An unreadable file stops :meth:`batches` with a :class:`~adaaug.data.images.BadImageError` naming it;
    :meth:`without_unreadable` leaves such files out (``skipped``) by decoding every file once first.

    ``size``: resize (shorter side ``round(size/0.875)``, bilinear) and centre-crop each image to
    ``size×size``; None: read as stored. ``expect``: ``(H, W)`` every image must have after that
    (``ValueError`` naming the first that does not); None: one size, whichever the first image has.
    """

    names_from = "folders"
    skipped: list[str] = []

    def __init__(self, root: str | os.PathLike, size: int | None = None,
                 expect: tuple[int, int] | None = None) -> None:
        root = Path(root)
        # an evaluation set may keep a class folder with no images: its labels are matched to the model by name
        self.files, labels, names = list_image_folder(root, allow_empty=True)
        numeric = all(n.isdigit() for n in names)
        self.labels = np.asarray([int(names[i]) for i in labels] if numeric else labels, dtype=np.int64)
        self.classes = None if numeric else names
        self.numeric, self.size, self.root, self.expect = numeric, size, root, expect

    def keys(self) -> list[str]:
        """Each image's path below the set's folder (``<class>/<file name>``, with the sub-folders between), in order:
        what names the same image at every severity."""
        return [f.relative_to(self.root).as_posix() for f in self.files]

    def select(self, keys: Sequence[str]) -> "FolderSource":
        """The images named by ``keys`` (from :meth:`keys`), in that order; ``KeyError`` for one not here."""
        where = {k: i for i, k in enumerate(self.keys())}
        idx = [where[k] for k in keys]
        out = FolderSource.__new__(FolderSource)
        out.__dict__.update(self.__dict__, files=[self.files[i] for i in idx], labels=self.labels[idx])
        return out

    def __len__(self) -> int:
        return len(self.files)

    def take(self, n: int | None) -> "FolderSource":
        """``n`` evenly spaced examples, in order (class-balanced on class-sorted sets); all if None."""
        if n is None or n >= len(self):
            return self
        idx = _spread(len(self), n)
        out = FolderSource.__new__(FolderSource)
        out.__dict__.update(self.__dict__, files=[self.files[i] for i in idx], labels=self.labels[idx])
        return out

    def relabel(self, labels: np.ndarray, classes: Sequence[str] | None) -> "FolderSource":
        """The same files with ``labels`` (N,) naming ``classes``."""
        labels = np.asarray(labels, dtype=np.int64)
        if labels.shape != self.labels.shape:
            raise ValueError(f"{len(labels)} labels for {len(self)} images")
        out = FolderSource.__new__(FolderSource)
        out.__dict__.update(self.__dict__, labels=labels, classes=list(classes) if classes is not None else None,
                            numeric=False)
        return out

    def without_unreadable(self, root: Path | None = None) -> "FolderSource":
        """This source without the files that cannot be decoded, their paths (relative to ``root``, default
        this set's folder) in ``skipped``; reads every file once."""
        from ..data.images import BadImageError, report_skipped

        keep, skipped = [], []
        for i, f in enumerate(self.files):
            try:
                self._load(f)
                keep.append(i)
            except BadImageError:
                skipped.append(str(f.relative_to(root or self.root)))
        report_skipped(root or self.root, skipped)
        out = FolderSource.__new__(FolderSource)
        out.__dict__.update(self.__dict__, files=[self.files[i] for i in keep], labels=self.labels[keep],
                            skipped=skipped)
        return out

    def _load(self, path: Path) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        from ..data.images import BadImageError

        try:
            return self._decode(path)
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:  # truncated, corrupt, not an image
            raise BadImageError(path, " ".join(str(err).split()) or type(err).__name__) from None

    def _decode(self, path: Path) -> np.ndarray:
        from PIL import Image

        with Image.open(path) as im:
            im = im.convert("RGB")
            if self.size is not None:
                short = round(self.size / 0.875)
                w, h = im.size
                scale = short / min(w, h)
                im = im.resize((max(self.size, round(w * scale)), max(self.size, round(h * scale))),
                               Image.BILINEAR)
                left, top = (im.size[0] - self.size) // 2, (im.size[1] - self.size) // 2
                im = im.crop((left, top, left + self.size, top + self.size))
            return np.asarray(im)

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        shape = None if self.expect is None else (*self.expect, 3)
        for lo in range(0, len(self), batch_size):
            arrays = [self._load(f) for f in self.files[lo:lo + batch_size]]
            for f, a in zip(self.files[lo:lo + batch_size], arrays):
                if self.expect is not None and a.shape != shape:
                    raise ValueError(size_mismatch(str(f), a.shape[:2], self.expect))
                shape = shape or a.shape
                if a.shape != shape:
                    raise ValueError(f"{f} is {a.shape[1]}×{a.shape[0]}, other images are {shape[1]}×{shape[0]}; "
                                     f"pass an image size (--image-size) to resize and centre-crop")
            yield torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255)


def eval_size(source: ImageSource) -> tuple[int, int] | None:
    """``(H, W)`` of ``source``'s images as they are scored (after any resizing); None for an empty folder."""
    if isinstance(source, ArraySource):
        return tuple(source.images.shape[1:3])
    if source.size is not None:
        return (source.size, source.size)
    if source.expect is not None:
        return tuple(source.expect)
    return image_file_size(source.files[0]) if source.files else None


def preprocessing(source: ImageSource) -> str:
    """What was done to ``source``'s images before scoring, in words."""
    size = eval_size(source)
    if isinstance(source, FolderSource) and source.size is not None:
        return (f"shorter side resized to {round(source.size / 0.875)} px (bilinear), centre {size[1]}×{size[0]} "
                f"kept (--image-size {source.size})")
    return "read as stored, not resized" + (f" ({size[1]}×{size[0]})" if size else "")
