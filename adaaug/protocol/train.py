"""``adaaug train``: train a classifier with nominal, AdA, AugMix, DeepAugment or their combinations.

The protocol is the paper's (App. E.1–E.5; presets in :mod:`adaaug.protocol.train_config`):
SGD with Nesterov momentum 0.9, a per-step schedule of linear warm-up (5 epochs) then
cosine decay to 0 without restarts, peak LR ``max(0.1 · B/256, 0.1)`` for the global
batch B. Each step draws a global batch of B training images (uint8, from memory),
gives every process its B/W share, and runs on it the augmentation pipeline of
:mod:`adaaug.augment.compose` (standard crop/flip → AdA → SSIM line search → AugMix;
DeepAugment samples drawn from an aligned copy of the training set). Processes
(``torchrun``) train one model with DistributedDataParallel; each runs AdA on its own
shard with its own generator seeded from the base seed and its rank.

Outputs in ``--out``: ``config.json`` (the resolved settings; ``--config`` accepts it),
``metrics.jsonl`` (one line per epoch), ``checkpoint.pt`` (every epoch, atomic),
``final.safetensors`` (the model's ``state_dict``) and ``result.json``.

Resuming (``--resume``) restores model, optimiser, schedule, epoch, the global RNGs and
every process's augmentation generator: on CPU a run killed after epoch k and resumed
ends with bitwise the same weights as an uninterrupted run.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from . import distributed as D
from .checkpoint import load_checkpoint, rng_state, save_atomic, set_rng_state
from .data import ImageSet, load_images
from .train_config import CHECKPOINT_NAME, ConfigError, TrainConfig, add_arguments, config_from_args

__all__ = ["TrainConfig", "ConfigError", "WarmupCosine", "train", "evaluate_accuracy", "center_crop",
           "add_arguments", "main"]

EpochHook = Callable[[int, dict], None]


class WarmupCosine:
    """LR multiplier per optimiser step: linear warm-up, then cosine decay to 0 (App. E.1).

    ``factor(s) = (s + 1) / warmup`` for ``s < warmup``, then
    ``½ (1 + cos(π (s − warmup) / (total − warmup)))``. A callable object (not a lambda) so
    that ``LambdaLR.state_dict()`` records the schedule's shape.

    Args:
        total_steps: optimiser steps in the whole run (epochs × steps per epoch), ≥ 1.
        warmup_steps: steps of linear warm-up, in ``[0, total_steps)``.
    """

    def __init__(self, total_steps: int, warmup_steps: int) -> None:
        if total_steps < 1 or not 0 <= warmup_steps < max(total_steps, 1):
            raise ValueError(f"need 0 ≤ warmup_steps < total_steps, got {warmup_steps} and {total_steps}")
        self.total_steps, self.warmup_steps = int(total_steps), int(warmup_steps)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def center_crop(images: torch.Tensor, size: int | None) -> torch.Tensor:
    """Central ``size × size`` crop of ``images`` (N×C×H×W, any dtype); identity when ``size`` is None."""
    if size is None:
        return images
    h, w = images.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"images are {h}×{w}, smaller than the {size}×{size} evaluation centre crop")
    top, left = (h - size) // 2, (w - size) // 2
    return images[..., top:top + size, left:left + size]


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, data: ImageSet, *, batch_size: int = 500, crop: int | None = None,
                      amp: bool = False, channels_last: bool = False, env: D.DistEnv | None = None) -> float:
    """Top-1 accuracy (in [0, 1]) of ``model`` on ``data`` (uint8 images), eval mode, no augmentation.

    Under data parallelism each process scores a contiguous ``1/W`` of the set and the
    counts are summed. ``crop`` centre-crops first (ImageNet: 224). The model's train/eval
    mode is restored afterwards.
    """
    env = env or D.DistEnv(device=next(model.parameters()).device)
    device = env.device
    was_training = model.training
    model.eval()
    mine = torch.arange(len(data)).tensor_split(env.world_size)[env.rank]
    counts = torch.zeros(2, dtype=torch.float64, device=device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for idx in mine.split(batch_size):
        x = center_crop(data.images[idx], crop).to(device, non_blocking=True).float().div_(255)
        y = data.labels[idx].to(device, non_blocking=True)
        with _autocast(device, amp):
            logits = model(x.contiguous(memory_format=fmt))
        counts[0] += (logits.argmax(1) == y).sum()
        counts[1] += len(idx)
    D.all_reduce_sum(env, counts)
    model.train(was_training)
    return float(counts[0] / counts[1].clamp_min(1))


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16) if enabled else nullcontext()


# ---- data -------------------------------------------------------------------------------
def _load(spec: str, train: bool, cfg: TrainConfig, env: D.DistEnv) -> ImageSet:
    """Load a data spec; with ``--download`` rank 0 fetches first while the others wait."""
    if cfg.download and env.distributed:
        if env.is_main:
            data = load_images(spec, train=train, download=True)
        D.barrier(env)
        if not env.is_main:
            data = load_images(spec, train=train, download=False)
        return data
    return load_images(spec, train=train, download=cfg.download)


def load_data(cfg: TrainConfig, env: D.DistEnv) -> tuple[ImageSet, ImageSet | None, list[ImageSet]]:
    """(training set after ``subset``, evaluation set or None, aligned DeepAugment copies, maybe none).

    Raises :class:`ConfigError` for data that cannot serve the configuration: a subset larger
    than the set, fewer images than one global batch, a DeepAugment copy not aligned with the
    training set, evaluation classes that differ from the training classes, images smaller
    than the evaluation crop.
    """
    full = _load(cfg.data, True, cfg, env)
    if cfg.subset is not None and cfg.subset > len(full):
        raise ConfigError(f"--subset {cfg.subset} exceeds the {len(full)} images of {cfg.data}")
    train_set = full.subset(cfg.subset, cfg.seed)
    if len(train_set) < cfg.batch_size:
        raise ConfigError(f"the training set has {len(train_set)} images, fewer than one batch of {cfg.batch_size}; "
                          f"lower --batch-size (the last partial batch of each epoch is dropped)")
    num_classes = cfg.num_classes or len(train_set.classes)
    if int(train_set.labels.max()) >= num_classes:
        raise ConfigError(f"labels reach {int(train_set.labels.max())} but the classifier has {num_classes} outputs; "
                          f"fix --num-classes")
    deep = []
    for spec in cfg.deepaugment_dirs:
        copy = load_images(spec)
        same_labels = len(copy) == len(full) and torch.equal(copy.labels, full.labels)
        if not same_labels or copy.images.shape[1:] != full.images.shape[1:]:
            raise ConfigError(
                f"--deepaugment-data {spec} is not aligned with --data {cfg.data}: {len(copy)} vs {len(full)} "
                f"images, sizes {tuple(copy.images.shape[1:])} vs {tuple(full.images.shape[1:])}, labels "
                f"{'equal' if same_labels else 'differ'}; write it from the same training set with "
                f"`adaaug deepaugment-data`")
        deep.append(copy.subset(cfg.subset, cfg.seed))
    eval_spec = cfg.eval_data or (cfg.data if cfg.data.startswith("cifar10:") else None)
    eval_set = None
    if eval_spec is not None:
        eval_set = _load(eval_spec, False, cfg, env)
        if eval_set.classes != train_set.classes:
            raise ConfigError(f"evaluation classes {eval_set.classes[:5]}... differ from the training classes "
                              f"{train_set.classes[:5]}...")
        h, w = eval_set.images.shape[-2:]
        if cfg.eval_crop is not None and min(h, w) < cfg.eval_crop:
            raise ConfigError(f"evaluation images are {h}×{w}, smaller than the {cfg.eval_crop} centre crop; "
                              f"pass --eval-crop none or store them larger (e.g. resized to 256)")
    return train_set, eval_set, deep


# ---- model and augmentation ---------------------------------------------------------------
def _build_pipeline(model: nn.Module, cfg: TrainConfig, generator: torch.Generator):
    from ..augment.compose import AugmentationPipeline

    try:
        return AugmentationPipeline(model, cfg.method, preset=cfg.preset, backbone=cfg.backbone,
                                    ada_kwargs=cfg.ada_kwargs() if cfg.uses_ada else None,
                                    deepaugment_prob=cfg.deepaugment_share, jsd=cfg.jsd, generator=generator,
                                    weights=cfg.backbone_weights)
    except (ValueError, FileNotFoundError) as err:
        hint = (" (pass --backbone-weights with a tag listed in weights/manifest.json, a .safetensors path, or "
                "'none' for an untrained backbone)") if cfg.uses_ada and "weights" in str(err) else ""
        raise ConfigError(f"cannot build the {cfg.method!r} augmentation pipeline: {err}{hint}") from err


def _deepaugment_batch(copies: list[ImageSet], idx: torch.Tensor, generator: torch.Generator
                       ) -> torch.Tensor | None:
    """uint8 ``len(idx)×C×H×W``: each example from one DeepAugment copy, picked uniformly (no draw for one copy)."""
    if not copies:
        return None
    if len(copies) == 1:
        return copies[0].images[idx]
    which = torch.randint(len(copies), (len(idx),), generator=generator, device=generator.device).cpu()
    out = copies[0].images[idx]
    for j in range(1, len(copies)):
        pick = which == j
        out[pick] = copies[j].images[idx[pick]]
    return out


def _checksums(env: D.DistEnv, model: nn.Module) -> list[str]:
    return D.all_gather_object(env, D.state_checksum(model))


def _export(model: nn.Module, cfg: TrainConfig, path: Path, num_classes: int) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, str(tmp), metadata={"arch": cfg.arch, "num_classes": str(num_classes),
                                         "normalize": cfg.preset, "method": cfg.method})
    tmp.chmod(0o644)
    tmp.replace(path)


def _rewrite_metrics(path: Path, keep_until: int) -> None:
    """Keep only the lines of epochs ≤ ``keep_until`` (a run killed between log and checkpoint)."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["epoch"] <= keep_until]
    path.write_text("".join(ln + "\n" for ln in lines))


# ---- training -----------------------------------------------------------------------------
def train(config: TrainConfig, *, on_epoch_end: EpochHook | None = None) -> dict[str, Any]:
    """Train a classifier as ``config`` says; returns the summary also written to ``result.json``.

    Every setting is validated (and the data loaded and checked) before the first step;
    problems raise :class:`ConfigError` naming the flag to change. Under ``torchrun`` this
    runs on every process; only rank 0 writes files and prints.

    Args:
        config: the run's settings.
        on_epoch_end: called on every process as ``on_epoch_end(epoch, record)`` after the
            epoch's checkpoint is on disk (``epoch`` counts from 1; ``record`` is the
            metrics line). Raising from it stops the run like a kill would.

    Returns:
        ``{"epochs", "final_eval_acc", "final_train_loss", "final_train_acc", "wall_s", "world_size",
        "peak_lr", "steps_per_epoch", "train_images", "rank_checksums", "ranks_agree", "out", "device"}``.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    config.validate(world_size=D.world_size_from_env())
    env = D.setup(config.device)
    try:
        return _train(config, env, on_epoch_end)
    finally:
        D.teardown(env)


def _train(cfg: TrainConfig, env: D.DistEnv, on_epoch_end: EpochHook | None) -> dict[str, Any]:
    from tqdm import tqdm

    from ..models import build_classifier

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = env.device
    on_cuda = device.type == "cuda"
    amp = on_cuda if cfg.amp is None else cfg.amp
    channels_last = on_cuda if cfg.channels_last is None else cfg.channels_last
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if on_cuda:
        torch.backends.cudnn.benchmark = True
    out = Path(cfg.out)

    # Everything below up to the loop can still fail on a bad configuration; nothing is written yet.
    train_set, eval_set, deep = load_data(cfg, env)
    num_classes = cfg.num_classes or len(train_set.classes)
    torch.manual_seed(cfg.seed)
    model = build_classifier(cfg.arch, num_classes, normalize=cfg.preset).to(device)
    model = model.to(memory_format=fmt)
    if cfg.sync_bn and env.distributed:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    # One generator per process for every augmentation draw (crop/flip, AdA init and backbone
    # assignment, AugMix, DeepAugment source), on the training device so draws stay there.
    aug_gen = torch.Generator(device=device).manual_seed(D.derive_seed(cfg.seed, "augment", env.rank))
    pipe = _build_pipeline(model, cfg, aug_gen)

    steps_per_epoch = len(train_set) // cfg.batch_size
    local_batch = cfg.batch_size // env.world_size
    opt = torch.optim.SGD(model.parameters(), lr=cfg.peak_lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                          weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, WarmupCosine(cfg.epochs * steps_per_epoch, cfg.warmup_epochs * steps_per_epoch))

    ckpt_path, metrics_path = out / CHECKPOINT_NAME, out / "metrics.jsonl"
    start_epoch, wall = 0, 0.0
    if cfg.resume and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path)
        mismatch = cfg.resume_mismatch(ck["config"])
        if mismatch:
            raise ConfigError(f"cannot resume {ckpt_path}: settings differ from the checkpoint's run: "
                              + ", ".join(f"{k}={ck['config'].get(k)!r}→{getattr(cfg, k, None)!r}" for k in mismatch))
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        start_epoch, wall = int(ck["epoch"]), float(ck["wall_s"])
        states = ck["rng"]
        try:
            if len(states) != env.world_size:
                raise ValueError(f"written by {len(states)} processes, this run has {env.world_size}")
            aug_gen.set_state(states[env.rank]["augment"])
            set_rng_state(states[env.rank]["global"])
        except (ValueError, RuntimeError) as err:  # other world size, or a CUDA generator resumed on CPU
            if env.is_main:
                print(f"warning: cannot restore the RNG states of {ckpt_path} ({err}); augmentation "
                      f"generators restart from fresh per-rank seeds: not bitwise reproducible", file=sys.stderr)
            aug_gen.manual_seed(D.derive_seed(cfg.seed, "augment", env.rank, "resumed", start_epoch))
        if env.is_main:
            print(f"resuming {ckpt_path} after epoch {start_epoch}/{cfg.epochs}", file=sys.stderr)
    elif cfg.resume and env.is_main:
        print(f"--resume: no checkpoint at {ckpt_path}; starting from scratch", file=sys.stderr)

    ddp = model
    if env.distributed:
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if on_cuda else None)

    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        _rewrite_metrics(metrics_path, start_epoch)
    D.barrier(env)

    record: dict[str, Any] = {}
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        ddp.train()
        order = D.epoch_order(len(train_set), cfg.seed, epoch)
        sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss·n, correct, n
        lr = opt.param_groups[0]["lr"]
        bar = tqdm(range(steps_per_epoch), desc=f"{cfg.method} epoch {epoch + 1}/{cfg.epochs}",
                   disable=not (env.is_main and cfg.progress), mininterval=5, leave=False)
        for step in bar:
            idx = D.shard(order[step * cfg.batch_size:(step + 1) * cfg.batch_size], env)
            x = train_set.images[idx].to(device, non_blocking=True)
            y = train_set.labels[idx].to(device, non_blocking=True)
            da = _deepaugment_batch(deep, idx, aug_gen)
            da = da.to(device, non_blocking=True) if da is not None else None
            views = pipe(x, y, da)
            with _autocast(device, amp):
                logits = ddp(torch.cat(views).contiguous(memory_format=fmt)).split(len(y))
                loss = pipe.loss(list(logits), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            lr = opt.param_groups[0]["lr"]
            sched.step()
            with torch.no_grad():
                sums += torch.stack([loss.detach().double() * len(y), (logits[0].argmax(1) == y).sum().double(),
                                     torch.tensor(float(len(y)), dtype=torch.float64, device=device)])
            if env.is_main and cfg.progress and step % 10 == 0:
                bar.set_postfix(loss=f"{float(sums[0] / sums[2]):.4f}", lr=f"{lr:.4g}")
        bar.close()
        D.all_reduce_sum(env, sums)
        D.broadcast_buffers(env, model)
        last = epoch + 1 == cfg.epochs
        eval_acc = None
        if eval_set is not None and ((epoch + 1) % cfg.eval_every == 0 or last):
            eval_acc = evaluate_accuracy(model, eval_set, batch_size=cfg.eval_batch_size, crop=cfg.eval_crop,
                                         amp=amp, channels_last=channels_last, env=env)
        epoch_s = time.time() - t0
        wall += epoch_s
        n = float(sums[2])
        record = {"epoch": epoch + 1, "train_loss": float(sums[0]) / n, "train_acc": float(sums[1]) / n,
                  "eval_acc": eval_acc, "lr": lr, "epoch_s": round(epoch_s, 3), "wall_s": round(wall, 3),
                  "images_per_s": round(n / max(epoch_s, 1e-9), 1)}
        states = D.all_gather_object(env, {"global": rng_state(), "augment": aug_gen.get_state()})
        if env.is_main:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)
            save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                         "epoch": epoch + 1, "wall_s": wall, "config": cfg.to_dict(), "rng": states,
                         "world_size": env.world_size}, ckpt_path)
        D.barrier(env)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, record)

    checksums = _checksums(env, model)
    if not record and metrics_path.exists():  # resumed a finished run: report its last epoch
        lines = metrics_path.read_text().splitlines()
        record = json.loads(lines[-1]) if lines else {}
    result = {"epochs": cfg.epochs, "final_eval_acc": record.get("eval_acc"),
              "final_train_loss": record.get("train_loss"), "final_train_acc": record.get("train_acc"),
              "wall_s": round(wall, 3), "world_size": env.world_size, "peak_lr": cfg.peak_lr,
              "steps_per_epoch": steps_per_epoch, "local_batch": local_batch, "train_images": len(train_set),
              "rank_checksums": checksums, "ranks_agree": len(set(checksums)) == 1, "out": str(out),
              "device": str(device), "amp_bf16": amp, "channels_last": channels_last}
    if env.is_main:
        _export(model, cfg, out / "final.safetensors", num_classes)
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    D.barrier(env)
    if not result["ranks_agree"]:
        raise RuntimeError(f"processes ended with different weights (checksums {checksums}); "
                           f"data-parallel training went out of sync")
    return result


# ---- command line -------------------------------------------------------------------------
def main(args: argparse.Namespace) -> int:
    """``adaaug train``: exit status 0 on success, 2 on a configuration error (message on stderr)."""
    try:
        cfg = config_from_args(args)
        if getattr(args, "print_config", False):
            cfg.validate(D.world_size_from_env(), check_paths=False)
            print(json.dumps(cfg.to_dict(), indent=2))
            return 0
        result = train(cfg)
    except ConfigError as err:
        print(f"adaaug train: error: {err}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result, indent=2))
    return 0
