"""Configuration of ``adaaug train``: the paper's presets (App. E.1–E.5), overrides, validation.

A :class:`TrainConfig` is resolved in three layers, later ones winning:

1. the preset (``cifar10`` or ``imagenet``): every number of the paper's protocol;
2. a JSON file (``--config file.json``; ``<out>/config.json`` of an earlier run is one);
3. explicit keyword arguments / command-line flags.

:meth:`TrainConfig.validate` checks everything that can be checked without reading
the data and raises :class:`ConfigError` (a ``ValueError``; :class:`ConfigTypeError`
is also a ``TypeError``) with a message naming the flag to change. Data-dependent
checks (subset size, batch size against the training set, DeepAugment alignment)
run in :func:`adaaug.protocol.train.train` after loading and before the first step.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import paper
from ..augment.compose import METHODS  # the rows of Tables 1 and 2

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
                     backbone_weights="imagenet", eval_crop=paper.IMAGENET_EVAL_SIZE),
}

_PAPER_BACKBONE_CHOICES = ("edsr", "cae", "vqvae", "unet", "all")
_DEVICE_HELP = "auto, cpu, cuda or cuda:N"
#: Keys that may differ between a checkpoint's run and the run resuming it.
RESUME_FREE_KEYS = frozenset({"out", "resume", "progress", "device", "threads", "data", "eval_data",
                              "deepaugment_data", "download", "eval_batch_size", "eval_every", "workers",
                              "skip_bad_images"})
DATA_PATHS = ("auto", "memory", "stream")


class ConfigError(ValueError):
    """A bad training configuration, found before training starts."""


class ConfigTypeError(ConfigError, TypeError):
    """A configuration value of the wrong type."""


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
            4 GiB per process or differ in size (:mod:`adaaug.protocol.data_sources`).
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
        backbone_weights: weights tag (``cifar10``/``imagenet``), a ``.safetensors`` path, or
            ``None`` (untrained backbone: tests only). Preset: the preset's name.
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
        """Preset ← JSON ``file`` ← ``overrides`` (keys are field names; unknown keys raise)."""
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
            values.update(loaded)
        values.update(overrides)
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}"
                              f"{f' in {file}' if file is not None else ''}; known: {', '.join(cls.field_names())}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict; ``TrainConfig.from_sources(**d)`` rebuilds the config."""
        return dataclasses.asdict(self)

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
    def validate(self, world_size: int = 1, *, check_paths: bool = True) -> "TrainConfig":
        """Raise :class:`ConfigError` / :class:`ConfigTypeError` on any bad setting; returns ``self``.

        Args:
            world_size: number of training processes (``WORLD_SIZE`` under torchrun).
            check_paths: also check that data directories exist and that ``out`` holds no
                checkpoint unless ``resume``.
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
            if isinstance(self.backbone_weights, str) and self.backbone_weights.endswith(".safetensors") \
                    and self.uses_ada and not Path(self.backbone_weights).is_file():
                raise ConfigError(f"--backbone-weights file {self.backbone_weights} does not exist")
            ckpt = Path(self.out) / CHECKPOINT_NAME
            if ckpt.exists() and not self.resume:
                raise ConfigError(f"{ckpt} exists: pass --resume to continue that run, or choose another --out")
            if Path(self.out).exists() and not Path(self.out).is_dir():
                raise ConfigError(f"--out {self.out} exists and is not a directory")
        return self

    def resume_mismatch(self, saved: dict[str, Any]) -> list[str]:
        """Settings that differ from a checkpoint's config (ignoring :data:`RESUME_FREE_KEYS`)."""
        mine = self.to_dict()
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        return sorted(k for k in set(mine) | set(saved)
                      if k not in RESUME_FREE_KEYS and mine.get(k) != saved.get(k)
                      and not (k not in saved and mine.get(k) == defaults.get(k)))  # a setting added since


# ---- checks ------------------------------------------------------------------------------
def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _type(name: str, value: object, kind: type) -> None:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise ConfigTypeError(f"{name} ({_flag(name)}) must be {kind.__name__}, got {value!r} "
                              f"({type(value).__name__})")


def _choice(name: str, value: object, choices: tuple[str, ...], flag: str) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r} ({flag}); known: {', '.join(choices)}")


def _int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigTypeError(f"{name} ({_flag(name)}) must be an int, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ConfigError(f"{name} ({_flag(name)}) must be ≥ {minimum}, got {value}")


def _real(name: str, value: object, low: float | None = None, high: float | None = None,
          low_open: bool = False, high_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigTypeError(f"{name} ({_flag(name)}) must be a number, got {value!r} ({type(value).__name__})")
    bad = value != value or (low is not None and (value < low or (low_open and value == low))) or \
        (high is not None and (value > high or (high_open and value == high)))
    if bad:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
        rng = f"in {lo}, {hi}" if high is not None else (f"> {low:g}" if low_open else f"≥ {low:g}")
        raise ConfigError(f"{name} ({_flag(name)}) must be {rng}, got {value}")


def _device(device: object) -> None:
    import torch

    _type("device", device, str)
    if device in ("auto", "cpu"):
        return
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device} asked for CUDA, which is not available here; use --device cpu")
        idx = device.split(":", 1)[1] if ":" in device else "0"
        if not idx.isdigit() or int(idx) >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: no such CUDA device ({torch.cuda.device_count()} visible)")
        return
    raise ConfigError(f"unknown --device {device!r}; use {_DEVICE_HELP}")


def _data_spec(name: str, spec: object, download: bool) -> None:
    _type(name, spec, str)
    if spec.startswith("cifar10:"):
        root = Path(spec.split(":", 1)[1])
        if not download and not (root / "cifar-10-batches-py").is_dir():
            raise ConfigError(f"{_flag(name)} {spec}: no CIFAR-10 under {root} (expected {root}/cifar-10-batches-py); "
                              f"pass --download to fetch it")
        return
    path = Path(spec)
    if not path.is_dir():
        raise ConfigError(f"{_flag(name)} directory {path} does not exist (expected an ImageFolder tree "
                          f"<root>/<class>/<image>, or cifar10:<root>)")


# ---- command line (``adaaug train`` flags) -----------------------------------------------------
def _optional_int(text: str) -> int | None:
    return None if text.lower() == "none" else int(text)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Flags of ``adaaug train``; every one overrides ``--config`` and the preset. Defaults in brackets
    (two values: cifar10 / imagenet preset)."""
    S = argparse.SUPPRESS
    c, i = PRESETS["cifar10"], PRESETS["imagenet"]
    p.add_argument("--config", default=None,
                   help="JSON file of settings (e.g. a run's config.json); flags override it [none]")
    p.add_argument("--print-config", action="store_true", help="print the resolved settings and exit [off]")
    g = p.add_argument_group("data")
    g.add_argument("--preset", default=S, help="paper protocol: cifar10 (App. E.1) or imagenet (E.2) [cifar10]")
    g.add_argument("--data", default=S, help="training set: ImageFolder dir or cifar10:<root> [required]")
    g.add_argument("--eval-data", default=S,
                   help="evaluation set [the CIFAR10 test split for cifar10:<root>, else none]")
    g.add_argument("--download", action="store_true", default=S, help="download CIFAR-10 into <root> [off]")
    g.add_argument("--data-path", choices=DATA_PATHS, default=S,
                   help="memory: decode all images once into RAM (CIFAR-10); stream: decode per batch in "
                        "DataLoader workers (ImageNet); auto: stream folders above 4 GiB decoded or of mixed "
                        "image sizes [auto]")
    g.add_argument("--workers", type=int, default=S,
                   help="DataLoader workers per process, streaming path [CPUs per process − 1, at most 8]")
    g.add_argument("--skip-bad-images", action="store_true", default=S,
                   help="skip unreadable image files and report their count, instead of stopping [off]")
    g.add_argument("--subset", type=int, default=S, help="train on this many random images [all]")
    g.add_argument("--deepaugment-data", nargs="+", metavar="DIR", default=S,
                   help="DeepAugment copies of --data (adaaug deepaugment-data), e.g. an EDSR and a CAE copy "
                        "[none; required by the deepaugment methods]")
    g = p.add_argument_group("method")
    g.add_argument("--method", default=S, help=f"one of {', '.join(METHODS)} [nominal]")
    g.add_argument("--backbone", default=S, help="AdA backbone: edsr, cae, vqvae, unet or all [edsr]")
    g.add_argument("--backbone-weights", default=S, help="tag, .safetensors path or 'none' [the preset's name]")
    g.add_argument("--ada-steps", type=int, default=S, help=f"M, AdA steps [{c['ada_steps']} / {i['ada_steps']}]")
    g.add_argument("--nu", type=float, default=S, help=f"relative radius ν [{c['nu']}]")
    g.add_argument("--chunk-size", type=int, default=S, help=f"AdA nano-batch [{c['chunk_size']} / {i['chunk_size']}]")
    g.add_argument("--step-scale", type=float, default=S, help="multiplies AdA's η [1 / 10/3]")
    g.add_argument("--ssim-threshold", type=float, default=S, help="line-search threshold t [0.3 / 0.7]")
    g.add_argument("--line-search", action=argparse.BooleanOptionalAction, default=S, help="SSIM line search [on]")
    g.add_argument("--deepaugment-prob", type=float, default=S, help="chance of a DeepAugment sample [k/(k+1) for k copies]")
    g.add_argument("--jsd", action=argparse.BooleanOptionalAction, default=S, help="AugMix JSD loss [on]")
    g = p.add_argument_group("optimisation")
    g.add_argument("--arch", default=S, help=f"resnet20, preact_resnet50 or resnet50 [{c['arch']} / {i['arch']}]")
    g.add_argument("--num-classes", type=int, default=S, help="classifier outputs [classes in --data]")
    g.add_argument("--epochs", type=int, default=S, help=f"training epochs [{c['epochs']} / {i['epochs']}]")
    g.add_argument("--batch-size", type=int, default=S, help=f"global batch [{c['batch_size']} / {i['batch_size']}]")
    g.add_argument("--lr", type=float, default=S, help="base LR; peak = max(lr·B/256, lr) [0.1]")
    g.add_argument("--momentum", type=float, default=S, help="SGD momentum [0.9]")
    g.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=S, help="Nesterov momentum [on]")
    g.add_argument("--weight-decay", type=float, default=S,
                   help=f"L2 weight decay [{c['weight_decay']} / {i['weight_decay']}]")
    g.add_argument("--warmup-epochs", type=int, default=S, help="linear warm-up epochs [5]")
    g.add_argument("--seed", type=int, default=S, help="base seed of init, data order and augmentation [0]")
    g = p.add_argument_group("evaluation")
    g.add_argument("--eval-batch-size", type=int, default=S, help="evaluation batch per process [500]")
    g.add_argument("--eval-every", type=int, default=S, help="epochs between evaluations [1]")
    g.add_argument("--eval-crop", type=_optional_int, default=S, help="centre crop side or none [none / 224]")
    g = p.add_argument_group("run")
    g.add_argument("--out", default=S, help="run directory [runs/train]")
    g.add_argument("--resume", action="store_true", default=S, help="continue from <out>/checkpoint.pt [off]")
    g.add_argument("--device", default=S, help="auto, cpu, cuda or cuda:N [auto]")
    g.add_argument("--amp", action=argparse.BooleanOptionalAction, default=S, help="bf16 autocast [on for CUDA]")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=S,
                   help="channels-last memory format [on for CUDA]")
    g.add_argument("--sync-bn", action=argparse.BooleanOptionalAction, default=S, help="cross-process BatchNorm [off]")
    g.add_argument("--threads", type=int, default=S, help="torch threads per process [torch's default]")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=S,
                   help="tqdm progress bar on stderr, per step (--no-progress turns it off) [on]")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Preset ← ``--config`` file ← explicit flags."""
    fields = set(TrainConfig.field_names())
    overrides = {k: v for k, v in vars(args).items() if k in fields}
    return TrainConfig.from_sources(getattr(args, "config", None), **overrides)
