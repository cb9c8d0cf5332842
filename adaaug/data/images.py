"""Image data for the protocol: ImageFolder directories or torchvision's CIFAR10, as uint8 tensors.

Small datasets (CIFAR-10: 50,000 × 3×32×32 = 150 MB as uint8) are decoded once into
memory; augmentation then runs batched on tensors. Decoded folders are cached outside
the data (:mod:`adaaug.data.cache`). Large trees (ImageNet) are streamed instead
(:mod:`adaaug.train.sources`), decoding with the same :func:`decode_image`.

Supported specs: an ImageFolder tree ``<root>/<class>/<image>`` and ``cifar10:<root>``
(``torchvision.datasets.CIFAR10``; ``download=True`` fetches it).
"""
from __future__ import annotations

import errno
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch



_DISK_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, getattr(errno, "EDQUOT", errno.ENOSPC)}
# torchvision's ImageFolder extensions (``torchvision.datasets.folder.IMG_EXTENSIONS``), any case: a tree it reads,
# adaaug reads the same way
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"})
SKIP_HINT = "pass --skip-bad-images to skip unreadable files"


class BadImageError(ValueError):
    """An image file that cannot be decoded (truncated, corrupt, not an image); names the file."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path, self.reason = str(path), reason
        super().__init__(f"{self._base()}, or {SKIP_HINT}")

    def _base(self) -> str:
        return (f"cannot read image {self.path} ({self.reason}); the file is truncated or not an image: "
                f"replace or delete it")

    def for_command(self, has_option) -> str:
        """The message for a command: the advice to pass ``--skip-bad-images`` only where ``has_option`` says
        the command has it (``adaaug train``, ``make-c``, ``eval``)."""
        return str(self) if has_option("--skip-bad-images") else self._base()


#: The commands' ways out of mixed image sizes, each naming its command's option.
MIXED_SIZE_WAYS = ("train on them as they are (adaaug train --data-path stream)",
                   "resize and centre-crop each image to N×N (adaaug eval --image-size N, e.g. 224)",
                   "resize each image's shorter side to N and keep its centre N×N (adaaug make-c --resize N)")


class MixedSizesError(ValueError):
    """Images of different sizes under one folder, which cannot be stacked; ``root`` and ``shapes`` (a few
    ``H×W×3`` shapes found) let a command name its own way out (:meth:`for_command`)."""

    def __init__(self, root: str | os.PathLike, shapes: list[tuple[int, ...]],
                 hint: str = "resize them to one size first") -> None:
        self.root, self.shapes, self.hint = str(root), shapes, hint
        super().__init__(f"images under {root} have different sizes ({self.sizes()}); {hint}")

    def for_command(self, has_option: Callable[[str], bool]) -> str:
        """The message for a command: with the way out of :data:`MIXED_SIZE_WAYS` whose option the command has."""
        for way in MIXED_SIZE_WAYS:
            if has_option(re.search(r"adaaug [a-z-]+ (--[a-z-]+)", way).group(1)):
                return f"images under {self.root} have different sizes ({self.sizes()}); {self.hint}, or {way}"
        return str(self)

    def sizes(self, k: int = 3) -> str:
        """A few of the sizes found, as ``W×H`` (the way image viewers and PIL give them)."""
        shown = ", ".join(f"{s[1]}×{s[0]}" for s in self.shapes[:k])
        return shown + (f", ... ({len(self.shapes)} sizes)" if len(self.shapes) > k else "")


@dataclass
class ImageSet:
    """Images as ``uint8`` ``N×3×H×W`` with ``int64`` labels ``N`` and class names.

    ``skipped``: how many unreadable files were left out when loading (``skip_bad=True``);
    ``skipped_files``: their paths relative to the folder.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    skipped: int = 0
    skipped_files: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.labels.numel())

    def subset(self, n: int | None, seed: int = 0) -> "ImageSet":
        """A class-balanced-by-chance random subset of ``n`` examples (all if ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        idx = subset_indices(len(self), n, seed)
        return ImageSet(self.images[idx], self.labels[idx], self.classes, self.skipped, self.skipped_files)


def subset_indices(total: int, n: int | None, seed: int = 0) -> torch.Tensor:
    """Sorted indices of the random ``n``-subset of ``range(total)`` used by :meth:`ImageSet.subset` (all if None)."""
    if n is None or n >= total:
        return torch.arange(total)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(total, generator=g)[:n].sort().values


def _hidden(path: Path) -> bool:
    return path.name.startswith(".")


def class_folders(root: str | os.PathLike) -> list[str]:
    """The class folders of an ImageFolder tree ``<root>/<class>/<image>``: its sub-directories, sorted by name.

    Hidden ones (a name starting with ``.``) are not classes: ``.ipynb_checkpoints`` (Jupyter), ``.git``,
    ``.Trash``; torchvision's ``ImageFolder`` would count them and shift every label after them.
    """
    return sorted(d.name for d in Path(root).iterdir() if d.is_dir() and not _hidden(d))


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files in ``folder`` and its sub-folders, in torchvision's ImageFolder order: folders by path,
    files by name within each; suffixes :data:`IMAGE_SUFFIXES` (any case). Symbolic links are followed (a
    folder reached twice is read once).

    Hidden files and folders are left out: macOS writes a ``._<name>`` companion (AppleDouble metadata, about
    4 kB) beside each file it copies to an exFAT, FAT or network volume, with the image's own suffix.
    """
    found, seen = [], set()
    for top, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:  # a link back up the tree: walking it again would never end
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.append((top, sorted(Path(top, n) for n in names if Path(n).suffix.lower() in IMAGE_SUFFIXES
                                  and not n.startswith(".") and os.path.isfile(os.path.join(top, n)))))
    return [f for _, files in sorted(found, key=lambda entry: entry[0]) for f in files]


def list_image_folder(root: str | os.PathLike, *,
                      allow_empty: bool = False) -> tuple[list[Path], list[int], list[str]]:
    """``(files, labels, classes)`` of an ImageFolder tree: :func:`class_folders` and, within each,
    :func:`image_files`; labels index ``classes``.

    Raises ``FileNotFoundError`` when ``root`` is not a directory and ``ValueError`` when it has no class
    sub-directories, no image files, or (unless ``allow_empty``, as torchvision's ImageFolder) a class folder
    without image files.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data directory {root} does not exist")
    classes = class_folders(root)
    if not classes:
        raise ValueError(f"{root} has no class sub-directories; expected the ImageFolder layout <root>/<class>/<image>")
    files, labels = [], []
    for label, cls in enumerate(classes):
        found = image_files(root / cls)
        files += found
        labels += [label] * len(found)
    if not files:
        raise ValueError(f"no images found under {root} (expected {', '.join(sorted(IMAGE_SUFFIXES))} files "
                         f"in <root>/<class>/)")
    present = set(labels)
    empty = [] if allow_empty else [c for i, c in enumerate(classes) if i not in present]
    if empty:  # a class no image has: the model would get an output that never trains (ImageFolder refuses too)
        shown = ", ".join(empty[:5]) + (f", ... ({len(empty)} folders)" if len(empty) > 5 else "")
        raise ValueError(f"{root} has class folders with no image files in them ({shown}); each would still be "
                         f"a class of the model: remove them, or put images in them")
    return files, labels, classes


def decode_image(path: str | os.PathLike) -> np.ndarray:
    """Decode one image file fully to uint8 ``H×W×3`` RGB; :class:`BadImageError` names a file that cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.array(im.convert("RGB"))  # a writable copy
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as err:  # truncated, corrupt, not an image
        raise BadImageError(path, str(err) or type(err).__name__) from None


def _decode_folder(root: Path, files: list[Path], labels: list[int], classes: list[str],
                   skip_bad: bool) -> tuple[ImageSet, list[str]]:
    arrays, kept, skipped = [], [], []
    for f, label in zip(files, labels):
        try:
            arrays.append(decode_image(f))
        except BadImageError:
            if not skip_bad:
                raise
            skipped.append(str(f.relative_to(root)))
            continue
        kept.append(label)
    if not arrays:
        raise ValueError(f"no readable images under {root} ({len(skipped)} unreadable)")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise MixedSizesError(root, sorted(shapes))
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return ImageSet(images, torch.tensor(kept, dtype=torch.int64), classes, len(skipped), tuple(skipped)), skipped


def report_skipped(root: str | os.PathLike, skipped: list[str]) -> None:
    """One line on stderr: how many unreadable images were skipped under ``root`` (the first few named)."""
    if skipped:
        names = ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        print(f"warning: skipped {len(skipped)} unreadable image(s) under {root}: {names}", file=sys.stderr)


def load_image_folder(root: str | os.PathLike, cache: bool = True, skip_bad: bool = False) -> ImageSet:
    """Decode an ImageFolder tree of same-sized images into memory.

    Args:
        root: ``<root>/<class>/<image>``; classes are the sorted sub-directory names.
        cache: keep the decoded arrays in the cache directory (:mod:`adaaug.data.cache`;
            never in ``root``), keyed to the file list, sizes and modification times.
        skip_bad: skip files that cannot be decoded (their count and first names go to stderr)
            instead of raising :class:`BadImageError`.
    """
    from . import cache as cache_mod

    root = Path(root)
    files, labels, classes = list_image_folder(root)
    entry = cache_mod.entry_path(root, cache_mod.folder_key(root, files)) if cache else None
    hit = cache_mod.load_entry(entry)
    if hit is not None:
        skipped = [str(s) for s in hit["skipped"]]
        if skipped and not skip_bad:
            raise BadImageError(root / skipped[0], f"and {len(skipped) - 1} more" if len(skipped) > 1
                                else "unreadable")
        report_skipped(root, skipped)
        return ImageSet(torch.from_numpy(hit["images"]), torch.from_numpy(hit["labels"]),
                        [str(c) for c in hit["classes"]], len(skipped), tuple(skipped))
    data, skipped = _decode_folder(root, files, labels, classes, skip_bad)
    report_skipped(root, skipped)
    cache_mod.save_entry(entry, images=data.images.numpy(), labels=data.labels.numpy(),
                         classes=np.array(data.classes), skipped=np.array(skipped, dtype=str))
    return data


CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


class DownloadError(ConnectionError):
    """A download that failed for want of a network (or of the server); says how to get the files without one."""

    says_what_to_do = True  # the command line prints this message as it is


def load_cifar10(root: str | os.PathLike, train: bool, download: bool = False) -> ImageSet:
    """torchvision's CIFAR10 (``download=True`` fetches it) as an :class:`ImageSet`.

    Raises:
        FileNotFoundError: without ``download``, when ``root`` holds no ``cifar-10-batches-py``.
        DownloadError: the download failed (no network, the server unreachable); the message says how to
            fetch and place the archive by hand.
    """
    from torchvision.datasets import CIFAR10

    if not download and not (Path(root) / "cifar-10-batches-py").is_dir():
        raise FileNotFoundError(f"CIFAR-10 is not under {root} (no {Path(root) / 'cifar-10-batches-py'}): extract "
                                f"{CIFAR10_URL} there, or fetch it with download=True (adaaug train: --download)")
    try:
        ds = CIFAR10(str(root), train=train, download=download)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
        raise ValueError(f"CIFAR-10 under {root} is incomplete or damaged ({err}): delete "
                         f"{Path(root) / 'cifar-10-batches-py'} and extract {CIFAR10_URL} there again, or fetch it "
                         f"with download=True (adaaug train: --download)") from err
    except OSError as err:
        if not download or isinstance(err, (FileNotFoundError, PermissionError)) or err.errno in _DISK_ERRNOS:
            raise  # not the network's fault: the command's one line says what failed
        reason = " ".join(str(getattr(err, "reason", None) or err).split()) or type(err).__name__
        raise DownloadError(f"could not download CIFAR-10 into {root} ({reason}): check the network connection "
                            f"(or proxy settings), or fetch {CIFAR10_URL} on a machine with a network, extract it "
                            f"into {root} (giving {Path(root) / 'cifar-10-batches-py'}) and run again without "
                            f"download=True (adaaug train: without --download)") from err
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return ImageSet(images, torch.tensor(ds.targets, dtype=torch.int64), list(ds.classes))


def load_images(spec: str, train: bool = True, download: bool = False, skip_bad: bool = False) -> ImageSet:
    """Load a dataset named by ``spec`` into memory.

    ``spec`` is either an ImageFolder directory, or ``cifar10:<root>`` for torchvision's
    CIFAR10 stored (or downloaded, with ``download``) under ``<root>``. ``skip_bad``: see
    :func:`load_image_folder`.
    """
    if spec.startswith("cifar10:"):
        return load_cifar10(spec.split(":", 1)[1], train=train, download=download)
    return load_image_folder(spec, skip_bad=skip_bad)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``N×C×H×W`` → float32 in [0, 1]."""
    return images.float().div_(255)


def iterate_batches(n: int, batch_size: int, shuffle: bool, generator: torch.Generator | None = None,
                    drop_last: bool = False):
    """Yield index tensors of size ``batch_size`` covering ``range(n)``."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]
