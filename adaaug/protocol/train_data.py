"""Stage 1 of ``adaaug train``: the training and evaluation data as data sources, checked against the config.

:func:`load_training_data` picks the data path (``--data-path``: in memory, streamed, or
``auto`` by size; :mod:`adaaug.protocol.data_sources`), applies ``--subset``, and raises
:class:`~adaaug.protocol.train_config.ConfigError` for data that cannot serve the
configuration before anything is trained or written.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from . import distributed as D
from .data import BadImageError, ImageSet, list_image_folder, load_images, subset_indices
from .data_sources import (DataSource, MemoryEval, MemorySource, StreamEval, StreamSource, choose_data_path,
                           default_workers)
from .train_config import ConfigError, TrainConfig


@dataclass
class TrainData:
    """What the training loop reads.

    Attributes:
        source: training batches (:class:`~adaaug.protocol.data_sources.DataSource`).
        evaluation: evaluation batches (``MemoryEval``/``StreamEval``) or ``None``.
        num_classes: classifier outputs.
        path: ``"memory"`` or ``"stream"``, the data path chosen.
    """

    source: DataSource
    evaluation: MemoryEval | StreamEval | None
    num_classes: int
    path: str


def load_training_data(cfg: TrainConfig, env: D.DistEnv, generator: torch.Generator) -> TrainData:
    """Training and evaluation sources for ``cfg`` on this process (``generator``: DeepAugment copy draws).

    Raises :class:`ConfigError` naming the flag to change: a subset larger than the set, fewer
    images than one global batch, labels beyond ``--num-classes``, a DeepAugment copy not
    aligned with the training set, evaluation classes that differ from the training classes,
    images smaller than the evaluation crop, an unreadable image (unless ``--skip-bad-images``).
    """
    try:
        return _load(cfg, env, generator)
    except BadImageError as err:
        raise ConfigError(str(err)) from None


def _load(cfg: TrainConfig, env: D.DistEnv, generator: torch.Generator) -> TrainData:
    folder = None if cfg.data.startswith("cifar10:") else list_image_folder(cfg.data)
    path = choose_data_path(cfg.data_path, None if folder is None else folder[0])
    if cfg.data_path == "stream" and folder is None:
        raise ConfigError("--data-path stream needs an ImageFolder directory; cifar10:<root> is held in memory")
    if path == "stream" and cfg.deepaugment_dirs:
        raise ConfigError("the deepaugment methods need the in-memory data path (aligned copies); pass "
                          "--data-path memory, or train without DeepAugment")
    workers = default_workers() if cfg.workers is None else cfg.workers
    pin = env.device.type == "cuda"
    if path == "memory":
        full = _load_memory(cfg.data, True, cfg, env)
        total = len(full)
    else:
        files, labels, classes = folder
        total = len(files)
    if cfg.subset is not None and cfg.subset > total:
        raise ConfigError(f"--subset {cfg.subset} exceeds the {total} images of {cfg.data}")
    if min(total, cfg.subset or total) < cfg.batch_size:
        raise ConfigError(f"the training set has {min(total, cfg.subset or total)} images, fewer than one batch of "
                          f"{cfg.batch_size}; lower --batch-size (the last partial batch of each epoch is dropped)")
    if path == "memory":
        train_set = full.subset(cfg.subset, cfg.seed)
        classes, top = train_set.classes, int(train_set.labels.max())
        deep = [_aligned_copy(spec, full, cfg).subset(cfg.subset, cfg.seed) for spec in cfg.deepaugment_dirs]
        source: DataSource = MemorySource(train_set, cfg.batch_size, env, cfg.seed, deep, generator)
    else:
        keep = subset_indices(total, cfg.subset, cfg.seed).tolist()
        picked = [labels[i] for i in keep]
        top = max(picked)
        source = StreamSource(Path(cfg.data), [files[i] for i in keep], picked, classes, cfg.batch_size, env,
                              cfg.seed, cfg.preset, workers=workers, pin_memory=pin, skip_bad=cfg.skip_bad_images)
    num_classes = cfg.num_classes or len(classes)
    if top >= num_classes:
        raise ConfigError(f"labels reach {top} but the classifier has {num_classes} outputs; fix --num-classes")
    evaluation = _evaluation(cfg, env, path, classes, workers, pin)
    return TrainData(source, evaluation, num_classes, path)


def _load_memory(spec: str, train: bool, cfg: TrainConfig, env: D.DistEnv) -> ImageSet:
    """Load into memory; with ``--download`` rank 0 fetches first while the others wait."""
    skip = cfg.skip_bad_images
    if cfg.download and env.distributed:
        if env.is_main:
            data = load_images(spec, train=train, download=True, skip_bad=skip)
        D.barrier(env)
        if not env.is_main:
            data = load_images(spec, train=train, download=False, skip_bad=skip)
        return data
    return load_images(spec, train=train, download=cfg.download, skip_bad=skip)


def _aligned_copy(spec: str, full: ImageSet, cfg: TrainConfig) -> ImageSet:
    copy = load_images(spec, skip_bad=cfg.skip_bad_images)
    same_labels = len(copy) == len(full) and torch.equal(copy.labels, full.labels)
    if not same_labels or copy.images.shape[1:] != full.images.shape[1:]:
        raise ConfigError(
            f"--deepaugment-data {spec} is not aligned with --data {cfg.data}: {len(copy)} vs {len(full)} "
            f"images, sizes {tuple(copy.images.shape[1:])} vs {tuple(full.images.shape[1:])}, labels "
            f"{'equal' if same_labels else 'differ'}; write it from the same training set with "
            f"`adaaug deepaugment-data`")
    return copy


def _evaluation(cfg: TrainConfig, env: D.DistEnv, path: str, classes: list[str], workers: int,
                pin: bool) -> MemoryEval | StreamEval | None:
    spec = cfg.eval_data or (cfg.data if cfg.data.startswith("cifar10:") else None)
    if spec is None:
        return None
    if path == "stream" and not spec.startswith("cifar10:"):
        files, labels, eval_classes = list_image_folder(spec)
        _same_classes(eval_classes, classes)
        return StreamEval(Path(spec), files, labels, eval_classes, cfg.eval_batch_size, cfg.eval_crop, env,
                          workers=workers, pin_memory=pin, skip_bad=cfg.skip_bad_images)
    data = _load_memory(spec, False, cfg, env)
    _same_classes(data.classes, classes)
    h, w = data.images.shape[-2:]
    if cfg.eval_crop is not None and min(h, w) < cfg.eval_crop:
        raise ConfigError(f"evaluation images are {h}×{w}, smaller than the {cfg.eval_crop} centre crop; "
                          f"pass --eval-crop none or store them larger (e.g. resized to 256)")
    return MemoryEval(data, cfg.eval_batch_size, cfg.eval_crop, env)


def _same_classes(eval_classes: list[str], classes: list[str]) -> None:
    if eval_classes != classes:
        raise ConfigError(f"evaluation classes {eval_classes[:5]}... differ from the training classes "
                          f"{classes[:5]}...")
