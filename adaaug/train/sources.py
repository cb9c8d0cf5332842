"""Where training batches come from: one small interface, an in-memory and a streaming implementation.

``adaaug train`` asks a :class:`DataSource` for ``batches(epoch)``: this process's share of
every global batch of the epoch, as uint8 images ``n×3×H×W`` (CPU; pinned on CUDA) with
int64 labels. Two implementations:

* :class:`MemorySource` (CIFAR-10 and other small sets): every image decoded once into a
  uint8 tensor; the standard augmentation (App. E.5) runs later, batched, in the
  :class:`~adaaug.augment.compose.AugmentationPipeline` with the process's generator.
* :class:`StreamSource` (ImageNet-sized ImageFolder trees): images decoded per batch in
  ``DataLoader`` worker processes, which also apply the standard augmentation per example
  (ImageNet: random-resized crop, area 8–100 %, resized bilinearly to 128, random flip;
  constants in :mod:`adaaug.paper`); only the file list is held, never the images.

Both follow the same global order (:func:`adaaug.train.distributed.epoch_order` of
``(seed, epoch)``), cut into global batches of ``batch_size`` (the last partial batch is
dropped), each split into contiguous per-process shards (:class:`EpochBatchSampler`).
A source keeps no state across epochs beyond what the checkpoint already holds: the
streaming augmentation of example ``i`` in epoch ``e`` is seeded from ``(seed, e, i)``,
so a run resumed at an epoch boundary sees exactly the batches of an uninterrupted run,
whatever the number of workers.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, NamedTuple, Protocol, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .. import paper
from . import distributed as D
from ..data.images import BadImageError, ImageSet, decode_image

#: ``--data-path auto`` streams an ImageFolder tree whose decoded images would exceed this (bytes per process).
STREAM_ABOVE_BYTES = 4 * 2**30


class Batch(NamedTuple):
    """One process's share of a global batch: uint8 ``n×3×H×W`` images, int64 labels ``n``,
    and the aligned DeepAugment images (uint8, same shape) or ``None``."""

    images: torch.Tensor
    labels: torch.Tensor
    deepaugment: torch.Tensor | None = None


class DataSource(Protocol):
    """The training data as ``adaaug train`` sees it.

    Attributes:
        classes: class names (label ``k`` is ``classes[k]``).
        augmented: ``True`` when ``batches`` already applied the standard augmentation.
        skipped: unreadable files this process left out of the last ``batches`` pass
            (``--skip-bad-images``); summed over processes, the total.
    """

    classes: list[str]
    augmented: bool
    skipped: int

    def __len__(self) -> int:
        """Training images (after ``--subset``)."""

    def steps_per_epoch(self) -> int:
        """Global batches per epoch: ``len(self) // batch_size``."""

    def batches(self, epoch: int) -> Iterator[Batch]:
        """This process's share of each global batch of ``epoch`` (0-based), in step order."""


def center_crop(images: torch.Tensor, size: int | None) -> torch.Tensor:
    """Central ``size × size`` crop of ``images`` (N×C×H×W, any dtype); identity when ``size`` is None."""
    if size is None:
        return images
    h, w = images.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"images are {w}×{h}, smaller than the {size}×{size} evaluation centre crop")
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top:top + size, left:left + size]


class EpochBatchSampler(Sampler):
    """This process's index shards of every global batch of an epoch; ``set_epoch`` as ``DistributedSampler``.

    Yields lists of ``(epoch, index)`` pairs (the epoch travels with each index so that
    DataLoader workers can seed the per-example augmentation without shared state).
    Every process computes the same permutation from ``(seed, epoch)`` and keeps its
    contiguous ``1/W`` of each global batch, as the in-memory path does.
    """

    def __init__(self, n: int, batch_size: int, env: D.DistEnv, seed: int) -> None:
        if batch_size % env.world_size or n < batch_size:
            raise ValueError(f"need world size | batch_size ≤ n, got {env.world_size}, {batch_size}, {n}")
        self.n, self.batch_size, self.env, self.seed, self.epoch = n, batch_size, env, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n // self.batch_size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = D.epoch_order(self.n, self.seed, self.epoch)
        for step in range(len(self)):
            idx = D.shard(order[step * self.batch_size:(step + 1) * self.batch_size], self.env)
            yield [(self.epoch, int(i)) for i in idx]


# ---- in memory ------------------------------------------------------------------------------
class MemorySource:
    """A decoded :class:`ImageSet` in memory (with aligned DeepAugment copies, possibly none).

    With several copies, each example's copy is drawn uniformly from ``generator`` (the
    process's augmentation generator, checkpointed with the run).
    """

    augmented = False

    def __init__(self, data: ImageSet, batch_size: int, env: D.DistEnv, seed: int,
                 deepaugment: Sequence[ImageSet] = (), generator: torch.Generator | None = None) -> None:
        self.data, self.deep, self.generator = data, list(deepaugment), generator
        self.classes = data.classes
        self.skipped = data.skipped if env.is_main else 0  # left out at load, from every epoch; counted once
        self.sampler = EpochBatchSampler(len(data), batch_size, env, seed)

    def __len__(self) -> int:
        return len(self.data)

    def steps_per_epoch(self) -> int:
        return len(self.sampler)

    def batches(self, epoch: int) -> Iterator[Batch]:
        self.sampler.set_epoch(epoch)
        for pairs in self.sampler:
            idx = torch.tensor([i for _, i in pairs], dtype=torch.int64)
            yield Batch(self.data.images[idx], self.data.labels[idx], deepaugment_batch(self.deep, idx, self.generator))


def deepaugment_batch(copies: Sequence[ImageSet], idx: torch.Tensor, generator: torch.Generator | None
                      ) -> torch.Tensor | None:
    """uint8 ``len(idx)×C×H×W``: each example from one DeepAugment copy, picked uniformly (no draw for one copy)."""
    if not copies:
        return None
    if len(copies) == 1:
        return copies[0].images[idx]
    dev = generator.device if generator is not None else torch.device("cpu")
    which = torch.randint(len(copies), (len(idx),), generator=generator, device=dev).cpu()
    out = copies[0].images[idx]
    for j in range(1, len(copies)):
        pick = which == j
        out[pick] = copies[j].images[idx[pick]]
    return out


# ---- streaming --------------------------------------------------------------------------------
class _Files:
    """File names as one fixed-width byte array (no per-file Python objects for workers to copy)."""

    def __init__(self, root: Path, files: Sequence[Path]) -> None:
        self.root = Path(root)
        self.names = np.array([str(Path(f).relative_to(self.root)).encode() for f in files], dtype=bytes)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> Path:
        return self.root / self.names[i].decode()


class _DecodeAugment(Dataset):
    """``dataset[(epoch, i)]`` → ``(uint8 3×H×W or None, label, None or (path, reason))``, in a worker.

    ``preset`` (``cifar10``/``imagenet``) applies :func:`~adaaug.augment.compose.standard_augment`
    to the one image with a generator seeded from ``(seed, epoch, i)``; ``crop`` instead resizes
    the shorter side to ``round(crop / 0.875)`` and takes the central ``crop × crop`` (evaluation).
    """

    def __init__(self, files: _Files, labels: np.ndarray, seed: int, preset: str | None = None,
                 crop: int | None = None) -> None:
        self.files, self.labels, self.seed, self.preset, self.crop = files, labels, seed, preset, crop

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: tuple[int, int]):
        epoch, i = key
        path = self.files[i]
        label = int(self.labels[i])
        try:
            array = decode_image(path) if self.crop is None else _resize_center(path, self.crop)
        except BadImageError as err:
            return None, label, (err.path, err.reason)
        x = torch.from_numpy(array).permute(2, 0, 1)
        if self.preset is not None:
            from ..augment.compose import standard_augment

            g = torch.Generator().manual_seed(D.derive_seed(self.seed, "standard", epoch, i))
            x = standard_augment(x[None], self.preset, g)[0]
        return x.contiguous(), label, None


def _resize_center(path: Path, crop: int) -> np.ndarray:
    """Shorter side to ``round(crop / 0.875)`` (bilinear), central ``crop × crop`` (ImageNet evaluation)."""
    from PIL import Image

    array = decode_image(path)
    im = Image.fromarray(array)
    short, (w, h) = round(crop / 0.875), im.size
    if min(w, h) != short:
        scale = short / min(w, h)
        im = im.resize((max(crop, round(w * scale)), max(crop, round(h * scale))), Image.BILINEAR)
    left, top = (im.size[0] - crop) // 2, (im.size[1] - crop) // 2
    return np.asarray(im.crop((left, top, left + crop, top + crop)))


def _collate(items: list) -> tuple[torch.Tensor, torch.Tensor, list[tuple[str, str]], list[tuple[int, int]]]:
    """Stack one batch in a worker; never raises there (a worker's exception reaches the user as a
    flattened traceback): unreadable files and the sizes of a mixed batch go back to the main process."""
    bad = [b for _, _, b in items if b is not None]
    good = [(x, y) for x, y, b in items if b is None]
    empty = torch.empty(0, 3, 0, 0, dtype=torch.uint8), torch.empty(0, dtype=torch.int64)
    if not good:
        return (*empty, bad, [])
    shapes = sorted({tuple(x.shape[-2:]) for x, _ in good})
    if len(shapes) > 1:
        return (*empty, bad, shapes)
    return torch.stack([x for x, _ in good]), torch.tensor([y for _, y in good], dtype=torch.int64), bad, []


#: How to get out of mixed image sizes, for training (the cifar10 preset keeps each image's size).
TRAIN_SIZES_FIX = (f"the cifar10 preset trains at the images' own size: resize them to one size, or pass --preset "
                   f"imagenet (random-resized crops to {paper.IMAGENET_TRAIN_SIZE}×{paper.IMAGENET_TRAIN_SIZE})")
#: ... and for evaluation without a crop.
EVAL_SIZES_FIX = "pass --eval-crop N to centre-crop them to one size, or resize them to one size"


def mixed_sizes_message(sizes: Sequence[tuple[int, int]], where: str, fix: str = TRAIN_SIZES_FIX) -> str:
    """The error for images of several sizes where one is needed, naming the ways out; ``sizes`` are ``(H, W)``,
    shown as width×height, the way image viewers and PIL give them (as every command's size messages)."""
    distinct = sorted(set(sizes))
    shown = ", ".join(f"{w}×{h}" for h, w in distinct[:4]) + (", ..." if len(distinct) > 4 else "")
    return f"images of {where} have different sizes ({shown}); {fix}"


class _Streamed:
    """Shared by the training and evaluation streams: a DataLoader over ``_DecodeAugment``, bad-file handling."""

    def __init__(self, dataset: _DecodeAugment, workers: int, pin_memory: bool, skip_bad: bool) -> None:
        self.dataset, self.workers, self.pin_memory, self.skip_bad = dataset, workers, pin_memory, skip_bad
        self.skipped = 0
        self.sizes_fix = TRAIN_SIZES_FIX if dataset.preset is not None else EVAL_SIZES_FIX

    def _iterate(self, batch_sampler) -> Iterator[Batch]:
        self.skipped = 0
        from ..runtime.interrupts import leave_interrupts_to_main  # Ctrl-C / SIGTERM: the main process stops them

        loader = DataLoader(self.dataset, batch_sampler=batch_sampler, num_workers=self.workers,
                            collate_fn=_collate, pin_memory=self.pin_memory,
                            worker_init_fn=leave_interrupts_to_main if self.workers else None)
        for images, labels, bad, mixed in loader:
            if mixed:
                from .checks import ConfigError

                raise ConfigError(mixed_sizes_message(mixed, f"one batch of {self.dataset.files.root}",
                                                      self.sizes_fix))
            if bad:
                if not self.skip_bad:
                    raise BadImageError(*bad[0])
                self.skipped += len(bad)
                if not len(labels):
                    raise ValueError(f"every image of a batch is unreadable (first: {bad[0][0]})")
            yield Batch(images, labels)


class StreamSource(_Streamed):
    """An ImageFolder tree decoded batch by batch in ``DataLoader`` workers (see the module docstring).

    Args:
        root, files, labels, classes: the tree (:func:`~adaaug.data.images.list_image_folder`),
            already restricted to the training subset.
        batch_size: global batch; ``env``: this process's place; ``seed``: the run's seed.
        preset: standard augmentation applied per example in the workers (``cifar10``/``imagenet``).
        workers: ``DataLoader`` worker processes (0: decode in this process).
        pin_memory: pin batches for asynchronous copies to CUDA.
        skip_bad: skip unreadable files (counted in ``skipped``) instead of raising
            :class:`~adaaug.data.images.BadImageError`.
    """

    augmented = True

    def __init__(self, root: Path, files: Sequence[Path], labels: Sequence[int], classes: list[str],
                 batch_size: int, env: D.DistEnv, seed: int, preset: str, workers: int = 0,
                 pin_memory: bool = False, skip_bad: bool = False) -> None:
        dataset = _DecodeAugment(_Files(root, files), np.asarray(labels, dtype=np.int64), seed, preset=preset)
        super().__init__(dataset, workers, pin_memory, skip_bad)
        self.classes = classes
        self.sampler = EpochBatchSampler(len(dataset), batch_size, env, seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def steps_per_epoch(self) -> int:
        return len(self.sampler)

    def batches(self, epoch: int) -> Iterator[Batch]:
        self.sampler.set_epoch(epoch)
        return self._iterate(self.sampler)


# ---- evaluation --------------------------------------------------------------------------------
class MemoryEval:
    """Evaluation batches of an in-memory set: this process's contiguous ``1/W``, centre-cropped to ``crop``."""

    def __init__(self, data: ImageSet, batch_size: int, crop: int | None, env: D.DistEnv) -> None:
        self.data, self.batch_size, self.crop, self.env = data, batch_size, crop, env
        self.classes = data.classes

    def __len__(self) -> int:
        return len(self.data)

    def batches(self) -> Iterator[Batch]:
        mine = torch.arange(len(self.data)).tensor_split(self.env.world_size)[self.env.rank]
        for idx in mine.split(self.batch_size):
            yield Batch(center_crop(self.data.images[idx], self.crop), self.data.labels[idx])


class StreamEval(_Streamed):
    """Evaluation batches decoded in workers; with ``crop``: shorter side to ``crop/0.875``, centre ``crop``."""

    def __init__(self, root: Path, files: Sequence[Path], labels: Sequence[int], classes: list[str],
                 batch_size: int, crop: int | None, env: D.DistEnv, workers: int = 0, pin_memory: bool = False,
                 skip_bad: bool = False) -> None:
        dataset = _DecodeAugment(_Files(root, files), np.asarray(labels, dtype=np.int64), 0, crop=crop)
        super().__init__(dataset, workers, pin_memory, skip_bad)
        self.classes, self.batch_size, self.env = classes, batch_size, env

    def __len__(self) -> int:
        return len(self.dataset)

    def batches(self) -> Iterator[Batch]:
        mine = torch.arange(len(self.dataset)).tensor_split(self.env.world_size)[self.env.rank]
        return self._iterate([[(0, int(i)) for i in chunk] for chunk in mine.split(self.batch_size)])


# ---- choosing a path ---------------------------------------------------------------------------
def sampled_sizes(files: Sequence[Path], sample: int = 32) -> list[tuple[int, int]]:
    """``(H, W)`` of up to ``sample`` evenly spaced files, read from their headers (no decoding).

    Files that cannot be opened are left out (the decoding step names them later).
    """
    from PIL import Image

    if not len(files):
        return []
    picks = np.unique(np.linspace(0, len(files) - 1, min(sample, len(files))).round().astype(int))
    sizes = []
    for i in picks:
        try:
            with Image.open(files[i]) as im:
                sizes.append((im.size[1], im.size[0]))
        except OSError:
            continue
    return sizes


def estimated_bytes(files: Sequence[Path], sample: int = 32) -> tuple[int, bool]:
    """``(bytes the decoded images would take as uint8, whether the sampled sizes differ)``.

    Reads the headers of up to ``sample`` evenly spaced files (no decoding).
    """
    sizes = sampled_sizes(files, sample)
    if not sizes:
        return 0, False
    mean_pixels = sum(w * h for h, w in sizes) / len(sizes)
    return int(mean_pixels * 3 * len(files)), len(set(sizes)) > 1


def choose_data_path(mode: str, files: Sequence[Path] | None, threshold: int | None = None) -> str:
    """``"memory"`` or ``"stream"`` for ``--data-path mode`` (``auto``, ``memory``, ``stream``).

    ``files`` is the ImageFolder file list (``None`` for ``cifar10:<root>``, always in memory).
    ``auto`` streams when the decoded images would exceed ``threshold`` bytes
    (:data:`STREAM_ABOVE_BYTES`) or when the sampled images differ in size.
    """
    if mode not in ("auto", "memory", "stream"):
        raise ValueError(f"unknown data path {mode!r}; use auto, memory or stream")
    if mode != "auto" or files is None:
        return "memory" if files is None else mode
    size, mixed = estimated_bytes(files)
    return "stream" if mixed or size > (STREAM_ABOVE_BYTES if threshold is None else threshold) else "memory"


def default_workers() -> int:
    """DataLoader workers per process: the CPUs per local process, at most 8 (0 on a single CPU)."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, cpus // max(local, 1) - 1))
