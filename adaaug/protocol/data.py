"""Image data for the protocol: ImageFolder directories or torchvision's CIFAR10, as uint8 tensors.

Small datasets (CIFAR-10: 50,000 × 3×32×32 = 150 MB as uint8) are decoded once
into memory; augmentation then runs batched on tensors. ``../shared/data`` style
ImageFolder trees (``<root>/<class>/<image>``) and ``torchvision.datasets.CIFAR10``
(with ``download=True`` for users who have internet) are both supported.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class ImageSet:
    """Images as ``uint8`` ``N×3×H×W`` with ``int64`` labels ``N`` and class names."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]

    def __len__(self) -> int:
        return int(self.labels.numel())

    def subset(self, n: int | None, seed: int = 0) -> "ImageSet":
        """A class-balanced-by-chance random subset of ``n`` examples (all if ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(self), generator=g)[:n].sort().values
        return ImageSet(self.images[idx], self.labels[idx], self.classes)


def _decode_folder(root: Path) -> ImageSet:
    from PIL import Image

    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise ValueError(f"{root} has no class sub-directories; expected the ImageFolder layout <root>/<class>/<image>")
    arrays, labels = [], []
    for label, cls in enumerate(classes):
        for f in sorted((root / cls).iterdir()):
            if f.suffix.lower() not in {".jpg", ".jpeg", ".png", ".bmp", ".webp"}:
                continue
            with Image.open(f) as im:
                arrays.append(np.asarray(im.convert("RGB")))
            labels.append(label)
    if not arrays:
        raise ValueError(f"no images found under {root}")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"images under {root} have different sizes {sorted(shapes)[:3]}...; resize them first")
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return ImageSet(images, torch.tensor(labels, dtype=torch.int64), classes)


def load_image_folder(root: str | os.PathLike, cache: bool = True) -> ImageSet:
    """Decode an ImageFolder tree of same-sized images into memory.

    With ``cache=True`` the decoded arrays are kept in ``<root>/.adaaug-cache.npz``
    when the directory is writable, so later runs skip JPEG decoding.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data directory {root} does not exist")
    cache_file = root / ".adaaug-cache.npz"
    if cache and cache_file.exists():
        z = np.load(cache_file, allow_pickle=False)
        return ImageSet(torch.from_numpy(z["images"]), torch.from_numpy(z["labels"]), [str(c) for c in z["classes"]])
    data = _decode_folder(root)
    if cache and os.access(root, os.W_OK):
        tmp = root / f".adaaug-cache.{os.getpid()}.tmp.npz"  # unique: ranks may race to write it
        np.savez(tmp, images=data.images.numpy(), labels=data.labels.numpy(), classes=np.array(data.classes))
        os.replace(tmp, cache_file)
    return data


def load_cifar10(root: str | os.PathLike, train: bool, download: bool = False) -> ImageSet:
    """torchvision's CIFAR10 (``download=True`` fetches it) as an :class:`ImageSet`."""
    from torchvision.datasets import CIFAR10

    ds = CIFAR10(str(root), train=train, download=download)
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return ImageSet(images, torch.tensor(ds.targets, dtype=torch.int64), list(ds.classes))


def load_images(spec: str, train: bool = True, download: bool = False) -> ImageSet:
    """Load a dataset named by ``spec``.

    ``spec`` is either an ImageFolder directory, or ``cifar10:<root>`` for
    torchvision's CIFAR10 stored (or downloaded, with ``download``) under ``<root>``.
    """
    if spec.startswith("cifar10:"):
        return load_cifar10(spec.split(":", 1)[1], train=train, download=download)
    return load_image_folder(spec)


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
