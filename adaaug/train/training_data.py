"""Stage 1 of ``adaaug train``: the training and evaluation data as data sources, checked against the config.

:func:`load_training_data` picks the data path (``--data-path``: in memory, streamed, or
``auto`` by size; :mod:`adaaug.train.sources`), applies ``--subset``, and raises
:class:`~adaaug.train.config.ConfigError` for data that cannot serve the
configuration before anything is trained or written.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from . import distributed as D
from .. import paper
from ..data.images import BadImageError, ImageSet, list_image_folder, load_images, subset_indices
from .sources import (DataSource, MemoryEval, MemorySource, StreamEval, StreamSource, choose_data_path,
                           EVAL_SIZES_FIX, default_workers, mixed_sizes_message, sampled_sizes)
from .config import ConfigError, TrainConfig


@dataclass
class TrainData:
    """What the training loop reads.

    Attributes:
        source: training batches (:class:`~adaaug.train.sources.DataSource`).
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

    Raises :class:`ConfigError` naming the flag to change: image sizes the preset or the AdA
    backbone cannot train (:func:`check_image_sizes`, from a sample of image headers before anything
    is decoded), a subset larger than the set, fewer images than one global batch, labels beyond ``--num-classes``, a DeepAugment copy not
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
    # sizes against the preset and the backbones from a sample of headers, before anything is decoded
    check_image_sizes(cfg, [(32, 32)] if folder is None else sampled_sizes(folder[0]), path)
    if path == "stream" and cfg.deepaugment_dirs:
        raise ConfigError("the deepaugment methods need the in-memory data path (aligned copies); pass "
                          "--data-path memory, or train without DeepAugment")
    workers = default_workers() if cfg.workers is None else cfg.workers
    pin = env.device.type == "cuda"
    if path == "memory":
        full = _load_memory(cfg.data, True, cfg, env)
        total = len(full)
        check_image_sizes(cfg, [tuple(full.images.shape[-2:])], path)  # every image, now that they are decoded
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


def training_sizes(cfg: TrainConfig, sizes: list[tuple[int, int]], path: str) -> list[tuple[int, int]]:
    """The ``(H, W)`` the classifier and AdA will see for stored image ``sizes`` (``path``: the data path).

    The ``imagenet`` preset crops and resizes every image to 128×128; the ``cifar10`` preset pads
    and crops each image back to its own size, so every image must have the same one.
    Raises :class:`ConfigError` naming the fix when ``sizes`` differ where one size is needed.
    """
    distinct = sorted(set(sizes))
    if len(distinct) > 1:
        if cfg.preset != "imagenet":
            raise ConfigError(mixed_sizes_message(distinct, f"--data {cfg.data}"))
        if path == "memory":
            raise ConfigError(mixed_sizes_message(
                distinct, f"--data {cfg.data}", "the in-memory data path holds images of one size: pass "
                "--data-path stream (or auto), or resize them to one size"))
    if cfg.preset == "imagenet":
        return [(paper.IMAGENET_TRAIN_SIZE, paper.IMAGENET_TRAIN_SIZE)] if distinct else []
    return distinct


def check_image_sizes(cfg: TrainConfig, sizes: list[tuple[int, int]], path: str) -> None:
    """Raise :class:`ConfigError` unless images of ``sizes`` (``(H, W)``) can be trained as ``cfg`` says.

    Checks one size where the preset or the data path needs it (:func:`training_sizes`) and, for the
    AdA methods, the sides the backbone takes: divisible by its ``multiple_of`` (the registry's;
    ``cae``, ``vqvae``, ``unet``: 4; ``all``: every paper backbone's) and, with the SSIM line search,
    at least 11 (SSIM's window). The message names the nearest sizes that work and the flags to change.
    """
    trained = training_sizes(cfg, sizes, path)
    if not cfg.uses_ada:
        return
    from ..backbones import PAPER_BACKBONES, backbone_spec

    names = list(PAPER_BACKBONES) if cfg.backbone == "all" else [cfg.backbone]
    multiple = max(backbone_spec(n).multiple_of for n in names)
    for h, w in trained:
        if h % multiple or w % multiple:
            down, up = (f"{(w // multiple) * multiple}×{(h // multiple) * multiple}",
                        f"{-(-w // multiple) * multiple}×{-(-h // multiple) * multiple}")
            raise ConfigError(f"--backbone {cfg.backbone} needs image sides divisible by {multiple}, but the training "
                              f"images of --data {cfg.data} are {w}×{h}: crop them to {down} or pad them to {up}, "
                              f"or pick a backbone that takes any size (--backbone edsr)")
        if cfg.line_search and min(h, w) < 11:
            raise ConfigError(f"the training images of --data {cfg.data} are {w}×{h}, smaller than the 11×11 window "
                              f"of the SSIM line search: use larger images or pass --no-line-search")


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
    if not cfg.data.startswith("cifar10:"):  # image i is paired with copy i: the same <class>/<name> in both
        names = [[f.relative_to(d).with_suffix("").as_posix() for f in list_image_folder(d)[0]]
                 for d in (cfg.data, spec)]
        first = next((i for i, (a, b) in enumerate(zip(*names)) if a != b), None)
        if first is not None:
            raise ConfigError(f"--deepaugment-data {spec} is not aligned with --data {cfg.data}: image {first} is "
                              f"{names[0][first]} in --data but {names[1][first]} in the copy; write the copy from the "
                              f"same training set with `adaaug deepaugment-data`")
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
        sizes = sorted(set(sampled_sizes(files)))
        if cfg.eval_crop is None and len(sizes) > 1:  # batches of one size are needed without a crop
            raise ConfigError(mixed_sizes_message(sizes, f"--eval-data {spec}", EVAL_SIZES_FIX))
        return StreamEval(Path(spec), files, labels, eval_classes, cfg.eval_batch_size, cfg.eval_crop, env,
                          workers=workers, pin_memory=pin, skip_bad=cfg.skip_bad_images)
    data = _load_memory(spec, False, cfg, env)
    _same_classes(data.classes, classes)
    h, w = data.images.shape[-2:]
    if cfg.eval_crop is not None and min(h, w) < cfg.eval_crop:
        raise ConfigError(f"evaluation images are {w}×{h}, smaller than the {cfg.eval_crop} centre crop; "
                          f"pass --eval-crop none or store them larger (e.g. resized to 256)")
    return MemoryEval(data, cfg.eval_batch_size, cfg.eval_crop, env)


def _same_classes(eval_classes: list[str], classes: list[str]) -> None:
    if eval_classes != classes:
        raise ConfigError(f"evaluation classes {eval_classes[:5]}... differ from the training classes "
                          f"{classes[:5]}...")
