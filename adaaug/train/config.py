"""Configuration of ``adaaug train``: the paper's presets (App. E.1–E.5), overrides, validation.

A :class:`TrainConfig` is resolved in three layers, later ones winning:

1. the preset (``cifar10`` or ``imagenet``): every number of the paper's protocol;
2. a JSON file (``--config file.json``; ``<out>/config.json`` of an earlier run is one);
3. explicit keyword arguments / command-line flags.

A run's record (``config.json``, :meth:`TrainConfig.record`) describes the run, not how a process was
started: :data:`START_KEYS` (``resume``, ``download``, ``progress``) are left out of it and ignored in a
settings file, so ``adaaug train --config RUN/config.json --out NEW`` is a new run; continuing a run
takes ``--resume``.

:meth:`TrainConfig.validate` checks everything that can be checked without reading
the data and raises :class:`ConfigError` (a ``ValueError``; :class:`ConfigTypeError`
is also a ``TypeError``) with a message naming the flag to change. Data-dependent
checks (subset size, batch size against the training set, DeepAugment alignment)
run in :func:`adaaug.train.loop.train` after loading and before the first step.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import paper
from ..augment.compose import METHODS  # the rows of Tables 1 and 2
from .checks import (ConfigError, ConfigTypeError, _choice, _data_spec, _device, _int,  # noqa: F401
                            _real, _type)

ARCHS = ("resnet20", "preact_resnet50", "resnet50")
CHECKPOINT_NAME = "checkpoint.pt"

#: Preset defaults; ``None`` fields of a :class:`TrainConfig` are filled from here.
PRESETS: dict[str, dict[str, Any]] = {
    # App. E.1: pre-activation ResNet-50 (3×3 stem), 300 epochs, batch 1024, SGD Nesterov 0.9,
    # weight decay 1e-4, cosine with 5 warm-up epochs, base LR 0.1. App. E.4: EDSR ν 0.015,
    # M = 10 steps, SSIM threshold 0.3, nano-batch 8. Standard augmentation: pad 4, crop 32, flip.
    "cifar10": dict(arch="preact_resnet50", epochs=paper.CIFAR10_EPOCHS, batch_size=paper.CIFAR10_BATCH,
                    weight_decay=paper.CIFAR10_WEIGHT_DECAY, ada_steps=paper.CIFAR10_STEPS,
                    nu=paper.NU_EDSR_CIFAR10, chunk_size=paper.CIFAR10_NANO_BATCH, step_scale=1.0,
                    ssim_threshold=paper.CIFAR10_SSIM_THRESHOLD, backbone_weights="cifar10", eval_crop=None),
    # App. E.2: torchvision ResNet-50, 90 epochs, batch 4096, weight decay 5e-4, same optimiser and
    # schedule; random crop 224 resized to 128 + flip for training, 224 centre crop for evaluation.
    # App. E.4: M = 3 steps with η × 10/3, SSIM threshold 0.7, nano-batch 1.
    "imagenet": dict(arch="resnet50", epochs=paper.IMAGENET_EPOCHS, batch_size=paper.IMAGENET_BATCH,
                     weight_decay=paper.IMAGENET_WEIGHT_DECAY, ada_steps=paper.IMAGENET_STEPS,
                     nu=paper.NU_EDSR_CIFAR10, chunk_size=paper.IMAGENET_NANO_BATCH,
                     step_scale=paper.IMAGENET_STEP_SCALE, ssim_threshold=paper.IMAGENET_SSIM_THRESHOLD,
                     backbone_weights="deepaugment", eval_crop=paper.IMAGENET_EVAL_SIZE),
}

_PAPER_BACKBONE_CHOICES = ("edsr", "cae", "vqvae", "unet", "all")
#: Keys that may differ between a checkpoint's run and the run resuming it.
RESUME_FREE_KEYS = frozenset({"out", "resume", "progress", "device", "threads", "data", "eval_data",
                              "deepaugment_data", "download", "eval_batch_size", "eval_every", "workers",
                              "skip_bad_images"})
DATA_PATHS = ("auto", "memory", "stream")
#: How a process was started, not what the run is: left out of a run's record (``config.json``, the
#: checkpoint's config) and ignored when a settings file is read, so that replaying a record is a new run.
START_KEYS = ("resume", "download", "progress")


@dataclass
class TrainConfig:
    """Everything ``adaaug train`` needs; ``None`` means "the preset's value" where noted.

    Attributes:
        preset: ``"cifar10"`` (App. E.1) or ``"imagenet"`` (App. E.2).
        data: training set: an ImageFolder directory of same-sized images, or ``cifar10:<root>``
            (torchvision's CIFAR10; ``download=True`` fetches it).
        eval_data: evaluation set (same spec forms). Default: the CIFAR10 test split when ``data``
            is ``cifar10:<root>``, otherwise no evaluation.
        download: let torchvision download CIFAR-10 into ``<root>``.
        data_path: ``memory`` (decode every image once into a uint8 tensor; CIFAR-10), ``stream``
            (decode per batch in DataLoader workers, which also apply the standard augmentation;
            ImageNet), or ``auto``: stream an ImageFolder tree whose decoded images would exceed
            4 GiB per process or differ in size (:mod:`adaaug.train.sources`).
        workers: DataLoader worker processes per training process for the streaming path
            (``None``: the CPUs per local process minus one, at most 8).
        skip_bad_images: skip image files that cannot be decoded (their count goes to stderr)
            instead of stopping with an error naming the file.
        out: run directory: ``checkpoint.pt``, ``metrics.jsonl``, ``config.json``, ``final.safetensors``.
        arch: ``resnet20``, ``preact_resnet50`` or ``resnet50`` (torchvision). Preset.
        num_classes: classifier outputs; ``None`` = number of classes in ``data``.
        method: one of :data:`METHODS` (Tables 1–2 rows).
        backbone: AdA corruption network: ``edsr``, ``cae``, ``vqvae``, ``unet`` (or another
            registered name), or ``all`` (each serves an equal share of every batch, App. E.4).
        backbone_weights: weights tag (``cifar10``; ``deepaugment``: DeepAugment's EDSR and CAE, the
            paper's, downloaded on first use), a file (``.safetensors`` or a published checkpoint), one
            per backbone (``edsr=deepaugment,cae=deepaugment,vqvae=FILE,unet=FILE``), or ``None``
            (untrained backbone: tests only). Preset: ``cifar10`` / ``deepaugment``.
        ada_steps: M, projected sign-gradient steps (10 CIFAR-10, 3 ImageNet). Preset.
        nu: relative radius ν of the weight perturbation (0.015). Preset.
        chunk_size: AdA nano-batch, examples per vmap chunk (8 CIFAR-10, 1 ImageNet). Preset.
        step_scale: multiplies AdA's step size η (10/3 on ImageNet). Preset.
        ssim_threshold: SSIM-distance threshold t of the line search (0.3 / 0.7, App. F). Preset.
        line_search: run the SSIM line search after AdA (App. F). Default on.
        deepaugment_data: ImageFolder copy (or list of copies) of ``data`` written by ``adaaug
            deepaugment-data``, aligned image for image; required by the ``deepaugment`` methods.
            Hendrycks et al. (2020a) use two copies, EDSR and CAE; a string is one copy.
        deepaugment_prob: probability of drawing a sample from a DeepAugment copy instead of the
            clean set (App. E.5); with several copies, one is picked uniformly per sample.
            ``None`` (default): the reference's share k/(k + 1) for k copies, as when the clean
            set and the copies are concatenated (2/3 with EDSR + CAE, 1/2 with one copy).
        jsd: AugMix's Jensen–Shannon consistency loss (three views per image); AugMix methods only.
        epochs: training epochs (300 / 90). Preset.
        batch_size: global batch over all processes (1024 / 4096); divisible by the world size. Preset.
        lr: base learning rate; the peak is ``max(lr · batch_size / 256, lr)`` (App. E.1). 0.1.
        momentum: SGD momentum (0.9); ``nesterov`` Nesterov momentum (on).
        weight_decay: L2 weight decay on every parameter (1e-4 / 5e-4). Preset.
        warmup_epochs: linear warm-up epochs before the cosine decay (5); must be < ``epochs``.
        eval_batch_size: evaluation batch per process (500). eval_every: evaluate every N epochs
            and after the last one (1).
        eval_crop: centre-crop side for evaluation images (ImageNet: 224), ``None`` for none. Preset.
        subset: train on this many random images (all when ``None``).
        seed: base seed; model init, data order and per-process augmentation seeds derive from it.
        device: ``auto`` (``cuda:<LOCAL_RANK>`` when CUDA is available, else CPU), ``cpu``, ``cuda``, ``cuda:N``.
        amp: bf16 autocast for the classifier's training/eval passes; ``None`` = on for CUDA, off on CPU.
        channels_last: channels-last memory format; ``None`` = on for CUDA, off on CPU.
        sync_bn: synchronise BatchNorm statistics across processes (off: per-process statistics).
        threads: ``torch.set_num_threads`` per process (``None``: torch's default).
        progress: tqdm progress bar on rank 0.
        resume: continue from ``<out>/checkpoint.pt`` (start afresh when there is none).
    """

    preset: str = "cifar10"
    data: str | None = None
    eval_data: str | None = None
    download: bool = False
    data_path: str = "auto"
    workers: int | None = None
    skip_bad_images: bool = False
    out: str = "runs/train"
    arch: str | None = None
    num_classes: int | None = None
    method: str = "nominal"
    backbone: str = "edsr"
    backbone_weights: str | None = field(default="preset")
    ada_steps: int | None = None
    nu: float | None = None
    chunk_size: int | None = None
    step_scale: float | None = None
    ssim_threshold: float | None = None
    line_search: bool = True
    deepaugment_data: str | list[str] | None = None
    deepaugment_prob: float | None = None
    jsd: bool = True
    epochs: int | None = None
    batch_size: int | None = None
    lr: float = paper.BASE_LR
    momentum: float = paper.MOMENTUM
    nesterov: bool = True
    weight_decay: float | None = None
    warmup_epochs: int = paper.WARMUP_EPOCHS
    eval_batch_size: int = 500
    eval_every: int = 1
    eval_crop: int | None = field(default=-1)
    subset: int | None = None
    seed: int = 0
    device: str = "auto"
    amp: bool | None = None
    channels_last: bool | None = None
    sync_bn: bool = False
    threads: int | None = None
    progress: bool = True
    resume: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.preset, str) or self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; known presets: {', '.join(PRESETS)}")
        defaults = PRESETS[self.preset]
        for key, value in defaults.items():
            current = getattr(self, key)
            if current is None and key not in ("backbone_weights", "eval_crop"):
                setattr(self, key, value)
        if self.backbone_weights == "preset":
            self.backbone_weights = defaults["backbone_weights"]
        elif isinstance(self.backbone_weights, str) and self.backbone_weights.lower() == "none":
            self.backbone_weights = None
        if self.eval_crop == -1:
            self.eval_crop = defaults["eval_crop"]

    # ---- construction --------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_sources(cls, file: str | os.PathLike | None = None, **overrides: Any) -> "TrainConfig":
        """Preset ← JSON ``file`` ← ``overrides`` (keys are field names; unknown keys raise).

        The file's :data:`START_KEYS` are ignored: ``resume`` and the rest are given as ``overrides`` (flags).
        """
        values: dict[str, Any] = {}
        if file is not None:
            path = Path(file)
            if not path.is_file():
                raise ConfigError(f"config file {path} does not exist")
            try:
                loaded = json.loads(path.read_text())
            except json.JSONDecodeError as err:
                raise ConfigError(f"config file {path} is not valid JSON: {err}") from None
            if not isinstance(loaded, dict):
                raise ConfigError(f"config file {path} must hold a JSON object of settings, got "
                                  f"{type(loaded).__name__}")
            values.update({k: v for k, v in loaded.items() if k not in START_KEYS})  # flags, not settings
        values.update(overrides)
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}"
                              f"{f' in {file}' if file is not None else ''}; known: {', '.join(cls.field_names())}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict; ``TrainConfig.from_sources(**d)`` rebuilds the config."""
        return dataclasses.asdict(self)

    def record(self) -> dict[str, Any]:
        """:meth:`to_dict` without :data:`START_KEYS`: what ``config.json`` and the checkpoint hold."""
        return {k: v for k, v in self.to_dict().items() if k not in START_KEYS}

    # ---- derived values ------------------------------------------------------------------
    @property
    def peak_lr(self) -> float:
        """``max(lr · batch_size / 256, lr)`` (App. E.1), the LR after warm-up."""
        return max(self.lr * self.batch_size / paper.LR_SCALE_BATCH, self.lr)

    @property
    def deepaugment_dirs(self) -> list[str]:
        """``deepaugment_data`` as a list (empty when unset)."""
        d = self.deepaugment_data
        return [] if d is None else [d] if isinstance(d, str) else list(d)

    @property
    def deepaugment_share(self) -> float:
        """``deepaugment_prob``, or the reference's k/(k + 1) for k copies when it is ``None``."""
        if self.deepaugment_prob is not None:
            return float(self.deepaugment_prob)
        return paper.deepaugment_share(max(len(self.deepaugment_dirs), 1))

    @property
    def uses_ada(self) -> bool:
        return "ada" in self.method.split("+")

    @property
    def uses_augmix(self) -> bool:
        return "augmix" in self.method.split("+")

    @property
    def uses_deepaugment(self) -> bool:
        return "deepaugment" in self.method.split("+")

    def ada_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :class:`adaaug.AdversarialAugment` (App. E.4)."""
        return dict(steps=self.ada_steps, nu=self.nu, chunk_size=self.chunk_size, step_scale=self.step_scale,
                    ssim_threshold=self.ssim_threshold if self.line_search else None)

    # ---- validation ----------------------------------------------------------------------
    def validate(self, world_size: int = 1, *, check_paths: bool = True, overwrite: bool = False) -> "TrainConfig":
        """Raise :class:`ConfigError` / :class:`ConfigTypeError` on any bad setting; returns ``self``.

        Args:
            world_size: number of training processes (``WORLD_SIZE`` under torchrun).
            check_paths: also check that data directories exist and that ``out`` is new or empty,
                holds a checkpoint to ``resume``, or ``overwrite`` is set
                (:func:`~adaaug.train.run_folder.check_run_dir`).
            overwrite: ``adaaug train --overwrite``: a new run may replace an earlier one's files in ``out``.
        """
        _type("preset", self.preset, str)
        _choice("method", self.method, METHODS, "--method")
        _choice("arch", self.arch, ARCHS, "--arch")
        _type("backbone", self.backbone, str)
        if self.uses_ada:
            from ..backbones import available_backbones

            known = sorted(set(_PAPER_BACKBONE_CHOICES) | set(available_backbones()))
            if self.backbone not in known:
                raise ConfigError(f"unknown --backbone {self.backbone!r}; known: {', '.join(known)}")
        if self.backbone_weights is not None:
            _type("backbone_weights", self.backbone_weights, str)
        _int("epochs", self.epochs, minimum=1)
        _int("batch_size", self.batch_size, minimum=1)
        _int("warmup_epochs", self.warmup_epochs, minimum=0)
        if self.warmup_epochs >= self.epochs and self.warmup_epochs > 0:
            raise ConfigError(f"warmup_epochs ({self.warmup_epochs}) must be smaller than epochs ({self.epochs}); "
                              f"pass --warmup-epochs 0 (or fewer) for short runs")
        _int("ada_steps", self.ada_steps, minimum=0)
        _int("chunk_size", self.chunk_size, minimum=1)
        _int("eval_batch_size", self.eval_batch_size, minimum=1)
        _int("eval_every", self.eval_every, minimum=1)
        _int("seed", self.seed, minimum=0)
        _choice("data_path", self.data_path, DATA_PATHS, "--data-path")
        if self.workers is not None:
            _int("workers", self.workers, minimum=0)
        for name in ("num_classes", "subset", "threads"):
            if getattr(self, name) is not None:
                _int(name, getattr(self, name), minimum=1)
        if self.num_classes is not None and self.num_classes < 2:
            raise ConfigError(f"num_classes must be ≥ 2, got {self.num_classes}")
        if self.eval_crop is not None:
            _int("eval_crop", self.eval_crop, minimum=1)
        _real("lr", self.lr, low=0, low_open=True)
        _real("momentum", self.momentum, low=0, high=1, high_open=True)
        _real("weight_decay", self.weight_decay, low=0)
        _real("nu", self.nu, low=0, low_open=True)
        _real("step_scale", self.step_scale, low=0, low_open=True)
        _real("ssim_threshold", self.ssim_threshold, low=0, high=1, low_open=True)
        if self.deepaugment_prob is not None:
            _real("deepaugment_prob", self.deepaugment_prob, low=0, high=1)
        for name in ("download", "line_search", "jsd", "nesterov", "sync_bn", "progress", "resume", "skip_bad_images"):
            _type(name, getattr(self, name), bool)
        for name in ("amp", "channels_last"):
            if getattr(self, name) is not None:
                _type(name, getattr(self, name), bool)
        if self.nesterov and self.momentum == 0:
            raise ConfigError("Nesterov momentum needs momentum > 0; pass --momentum 0.9 or --no-nesterov")
        _int("world_size", world_size, minimum=1)
        if self.batch_size % world_size:
            raise ConfigError(f"batch_size {self.batch_size} is not divisible by the world size {world_size} "
                              f"(processes); pick a multiple of {world_size} with --batch-size")
        d = self.deepaugment_data
        if d is not None and not isinstance(d, str) and not (
                isinstance(d, (list, tuple)) and d and all(isinstance(x, str) for x in d)):
            raise ConfigTypeError(f"deepaugment_data (--deepaugment-data) must be a directory or a non-empty list "
                                  f"of directories, got {d!r}")
        if self.uses_deepaugment and self.deepaugment_data is None:
            raise ConfigError(f"method {self.method!r} needs --deepaugment-data DIR, a DeepAugment-processed copy "
                              f"of the training set (write one with `adaaug deepaugment-data`)")
        if not self.uses_deepaugment and self.deepaugment_data is not None:
            raise ConfigError(f"--deepaugment-data is only used by the deepaugment methods, not {self.method!r}; "
                              f"drop it or pick e.g. --method {self.method}+deepaugment")
        if self.data_path == "stream" and self.uses_deepaugment:
            raise ConfigError(f"method {self.method!r} reads aligned DeepAugment copies, which need the in-memory "
                              f"data path: pass --data-path memory (or auto)")
        _device(self.device)
        _type("out", self.out, str)
        if check_paths:
            if self.data is None:
                raise ConfigError("no training data: pass --data DIR (an ImageFolder directory) or "
                                  "--data cifar10:<root> (with --download to fetch CIFAR-10)")
            _data_spec("data", self.data, self.download)
            if self.eval_data is not None:
                _data_spec("eval_data", self.eval_data, self.download)
            for spec in self.deepaugment_dirs:
                _data_spec("deepaugment_data", spec, False)
            if isinstance(self.backbone_weights, str) and self.uses_ada:
                for item in self.backbone_weights.split(","):  # one value, or NAME=WEIGHTS per backbone
                    value = item.partition("=")[2] if "=" in item and not Path(item).exists() else item
                    if value.strip().endswith(".safetensors") and not Path(value.strip()).is_file():
                        raise ConfigError(f"--backbone-weights file {value.strip()} does not exist")
            from .run_folder import check_run_dir

            check_run_dir(self.out, resume=self.resume, overwrite=overwrite)  # new or empty, --resume, --overwrite
        return self

    def resume_mismatch(self, saved: dict[str, Any]) -> list[str]:
        """Settings that differ from a checkpoint's config (ignoring :data:`RESUME_FREE_KEYS`)."""
        mine = self.to_dict()
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        return sorted(k for k in set(mine) | set(saved)
                      if k not in RESUME_FREE_KEYS and mine.get(k) != saved.get(k)
                      and not (k not in saved and mine.get(k) == defaults.get(k)))  # a setting added since
