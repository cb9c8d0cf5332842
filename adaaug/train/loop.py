"""``adaaug train``: train a classifier with nominal, AdA, AugMix, DeepAugment or their combinations.

The protocol is the paper's (App. E.1–E.5; presets in :mod:`adaaug.train.config`):
SGD with Nesterov momentum 0.9, a per-step schedule of linear warm-up (5 epochs) then
cosine decay to 0 without restarts, peak LR ``max(0.1 · B/256, 0.1)`` for the global
batch B. Processes (``torchrun``) train one model with DistributedDataParallel.

A batch from disk to the optimiser step, in the order of this module:

1. **data** (:func:`~adaaug.train.training_data.load_training_data`): a data source gives
   each process its ``B/W`` share of every global batch as uint8 images: from memory
   (CIFAR-10), or decoded in DataLoader workers (``--data-path stream``, ImageNet), where
   the standard crop/flip is applied per example;
2. **model** (:func:`build_model`): classifier, DDP wrapper, optimiser, schedule, and the
   augmentation pipeline of :mod:`adaaug.augment.compose` (standard crop/flip → AdA → SSIM
   line search → AugMix) drawing from one generator per process, seeded from (seed, rank);
3. **one step** (:func:`train_step`): augment, forward, loss, backward, optimiser and LR step;
4. **evaluation** (:func:`evaluate_accuracy`) every ``eval_every`` epochs, split over processes;
5. **checkpoint** (:func:`~adaaug.train.checkpoint.save_run`) after every epoch.

Outputs in ``--out``: ``config.json`` (the resolved settings; ``--config`` accepts it),
``metrics.jsonl`` (one line per epoch), ``checkpoint.pt`` (every epoch, atomic),
``final.safetensors`` (the model's ``state_dict``) and ``result.json``.

Resuming (``--resume``) restores model, optimiser, schedule, epoch, the global RNGs and
every process's augmentation generator; data order and streamed augmentation derive from
(seed, epoch, example): on CPU a run killed after epoch k and resumed ends with bitwise the
same weights as an uninterrupted run, on either data path.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from . import distributed as D
from .checkpoint import export_final, remove_leftovers, restore_run, rewrite_metrics, save_run
from ..data.images import BadImageError, ImageSet
from .sources import Batch, DataSource, MemoryEval, StreamEval, center_crop, deepaugment_batch
from ..runtime.devices import removed_on_failure
from ..runtime.interrupts import check as check_interrupt
from ..runtime.progress import StepClock
from ..runtime.provenance import producer
from .timing import announce_cost
from .options import add_arguments, config_from_args
from .config import CHECKPOINT_NAME, ConfigError, TrainConfig
from .run_folder import clear_run_dir
from .training_data import TrainData, load_training_data

__all__ = ["TrainConfig", "ConfigError", "WarmupCosine", "train", "evaluate_accuracy", "center_crop",
           "add_arguments", "main"]

EpochHook = Callable[[int, dict], None]
_deepaugment_batch = deepaugment_batch  # the name earlier versions used


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


@dataclass
class Runtime:
    """Device-dependent settings: bf16 autocast and channels-last default to on for CUDA, off on CPU."""

    device: torch.device
    amp: bool = False
    channels_last: bool = False

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16) if self.amp else nullcontext()

    def to_device(self, t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.to(self.device, non_blocking=True)


def runtime(cfg: TrainConfig, env: D.DistEnv) -> Runtime:
    on_cuda = env.device.type == "cuda"
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if on_cuda:
        torch.backends.cudnn.benchmark = True
    return Runtime(env.device, on_cuda if cfg.amp is None else cfg.amp,
                   on_cuda if cfg.channels_last is None else cfg.channels_last)


# ---- stage 4: evaluation ------------------------------------------------------------------------
@torch.no_grad()
def evaluate_accuracy(model: nn.Module, data: ImageSet | MemoryEval | StreamEval, *, batch_size: int = 500,
                      crop: int | None = None, amp: bool = False, channels_last: bool = False,
                      env: D.DistEnv | None = None) -> float:
    """Top-1 accuracy (in [0, 1]) of ``model``, eval mode, no augmentation.

    ``data``: an :class:`ImageSet` (centre-cropped to ``crop``, e.g. 224 on ImageNet, in
    batches of ``batch_size``) or an evaluation source, which brings its own batching and crop.
    Under data parallelism each process scores its ``1/W`` of the set and the counts are
    summed. The model's train/eval mode is restored afterwards.
    """
    env = env or D.DistEnv(device=next(model.parameters()).device)
    rt = Runtime(env.device, amp, channels_last)
    source = MemoryEval(data, batch_size, crop, env) if isinstance(data, ImageSet) else data
    was_training = model.training
    model.eval()
    counts = torch.zeros(2, dtype=torch.float64, device=env.device)
    for batch in source.batches():
        x = rt.to_device(batch.images).float().div_(255)
        y = rt.to_device(batch.labels)
        with rt.autocast():
            logits = model(x.contiguous(memory_format=rt.memory_format))
        counts[0] += (logits.argmax(1) == y).sum()
        counts[1] += len(y)
    D.all_reduce_sum(env, counts)
    model.train(was_training)
    return float(counts[0] / counts[1].clamp_min(1))


# ---- stage 2: model, optimiser, augmentation ------------------------------------------------
@dataclass
class Model:
    """The trained state of one process: ``model`` (plain), ``ddp`` (wrapped under torchrun, else
    ``model``), optimiser, per-step LR schedule, augmentation pipeline and its generator."""

    model: nn.Module
    ddp: nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    pipe: Any
    aug_gen: torch.Generator


def build_model(cfg: TrainConfig, env: D.DistEnv, rt: Runtime, data: TrainData, aug_gen: torch.Generator) -> Model:
    """Classifier (seeded init), optimiser, schedule over ``epochs × steps`` and augmentation pipeline.

    Returns the plain model; wrap it with :func:`wrap_ddp` after restoring a checkpoint.
    """
    from ..augment.compose import AugmentationPipeline
    from ..models import build_classifier

    torch.manual_seed(cfg.seed)
    model = build_classifier(cfg.arch, data.num_classes, normalize=cfg.preset).to(env.device)
    model = model.to(memory_format=rt.memory_format)
    if cfg.sync_bn and env.distributed:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    try:
        pipe = AugmentationPipeline(model, cfg.method, preset=cfg.preset, backbone=cfg.backbone,
                                    ada_kwargs=cfg.ada_kwargs() if cfg.uses_ada else None,
                                    deepaugment_prob=cfg.deepaugment_share, jsd=cfg.jsd, generator=aug_gen,
                                    weights=cfg.backbone_weights, standard=not data.source.augmented)
    except (ValueError, FileNotFoundError) as err:
        hint = (" (pass --backbone-weights with a tag (cifar10, deepaugment), a weights file, NAME=WEIGHTS,... "
                "per backbone, or 'none' for an untrained backbone)") if cfg.uses_ada and "weights" in str(err) else ""
        advice = getattr(err, "for_command", None)  # weights advice written for Python, as this command's option
        text = advice(lambda option: option == "--backbone-weights") if callable(advice) else str(err)
        raise ConfigError(f"cannot build the {cfg.method!r} augmentation pipeline: {text}{hint}") from err
    steps = data.source.steps_per_epoch()
    opt = torch.optim.SGD(model.parameters(), lr=cfg.peak_lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                          weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, WarmupCosine(cfg.epochs * steps, cfg.warmup_epochs * steps))
    return Model(model, model, opt, sched, pipe, aug_gen)


def wrap_ddp(m: Model, env: D.DistEnv) -> None:
    if env.distributed:
        m.ddp = nn.parallel.DistributedDataParallel(
            m.model, device_ids=[env.device.index] if env.device.type == "cuda" else None)


# ---- stage 3: one step, one epoch ------------------------------------------------------------
def train_step(m: Model, rt: Runtime, batch: Batch) -> torch.Tensor:
    """Augment one batch, forward, backward, step; returns float64 ``[loss·n, correct, n]`` on the device."""
    x, y, da = rt.to_device(batch.images), rt.to_device(batch.labels), rt.to_device(batch.deepaugment)
    views = m.pipe(x, y, da)
    with rt.autocast():
        logits = m.ddp(torch.cat(views).contiguous(memory_format=rt.memory_format)).split(len(y))
        loss = m.pipe.loss(list(logits), y)
    m.opt.zero_grad(set_to_none=True)
    loss.backward()
    m.opt.step()
    m.sched.step()
    with torch.no_grad():
        return torch.stack([loss.detach().double() * len(y), (logits[0].argmax(1) == y).sum().double(),
                            torch.tensor(float(len(y)), dtype=torch.float64, device=rt.device)])


def train_epoch(cfg: TrainConfig, env: D.DistEnv, rt: Runtime, m: Model, source: DataSource,
                epoch: int, clock: StepClock | None = None) -> tuple[torch.Tensor, float]:
    """One epoch; returns the summed ``[loss·n, correct, n, skipped images]`` over processes and the last LR.

    ``clock``: told after every step, for the time estimate printed at the start of a run.
    """
    from tqdm import tqdm

    m.ddp.train()
    sums = torch.zeros(3, dtype=torch.float64, device=rt.device)
    lr = m.opt.param_groups[0]["lr"]
    show = env.is_main and cfg.progress
    bar = tqdm(source.batches(epoch), total=source.steps_per_epoch(), disable=not show, mininterval=5,
               desc=f"{cfg.method} epoch {epoch + 1}/{cfg.epochs}", leave=False, file=sys.stderr)
    for step, batch in enumerate(bar):
        lr = m.opt.param_groups[0]["lr"]
        check_interrupt()  # a SIGTERM whose exception was swallowed (e.g. while DataLoader workers started)
        sums += train_step(m, rt, batch)
        if clock is not None:
            clock.tick(step)
        if show and step % 10 == 0:
            bar.set_postfix(loss=f"{float(sums[0] / sums[2]):.4f}", lr=f"{lr:.4g}")
    bar.close()
    sums = torch.cat([sums, sums.new_tensor([float(source.skipped)])])
    D.all_reduce_sum(env, sums)
    D.broadcast_buffers(env, m.model)
    return sums, lr


# ---- the run --------------------------------------------------------------------------------
def train(config: TrainConfig, *, on_epoch_end: EpochHook | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Train a classifier as ``config`` says; returns the summary also written to ``result.json``.

    Every setting is validated (and the data listed or loaded and checked) before the first
    step; problems raise :class:`ConfigError` naming the flag to change. Under ``torchrun``
    this runs on every process; only rank 0 writes files and prints.

    Args:
        config: the run's settings.
        on_epoch_end: called on every process as ``on_epoch_end(epoch, record)`` after the
            epoch's checkpoint is on disk (``epoch`` counts from 1; ``record`` is the
            metrics line). Raising from it stops the run like a kill would.
        overwrite: ``--overwrite``: replace an earlier run's files in ``config.out`` (others stay); without
            it (or ``resume``) ``out`` must be new or empty (:mod:`~adaaug.train.run_folder`).

    Returns:
        ``{"epochs", "final_eval_acc", "final_train_loss", "final_train_acc", "wall_s", "world_size",
        "peak_lr", "steps_per_epoch", "local_batch", "train_images", "data_path", "rank_checksums",
        "ranks_agree", "out", "device", "amp_bf16", "channels_last"}``.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    config.validate(world_size=D.world_size_from_env(), overwrite=overwrite)
    env = D.setup(config.device)
    try:
        return _train(config, env, on_epoch_end, overwrite)
    finally:
        D.teardown(env)


def _train(cfg: TrainConfig, env: D.DistEnv, on_epoch_end: EpochHook | None, overwrite: bool = False) -> dict[str, Any]:
    rt = runtime(cfg, env)
    out = Path(cfg.out)
    ckpt_path, metrics_path = out / CHECKPOINT_NAME, out / "metrics.jsonl"
    # Stages 1–2 can still fail on a bad configuration; nothing is written before the loop.
    # One generator per process for every augmentation draw (crop/flip, AdA init and backbone
    # assignment, AugMix, DeepAugment copy), on the training device so draws stay there.
    aug_gen = torch.Generator(device=env.device).manual_seed(D.derive_seed(cfg.seed, "augment", env.rank))
    data = load_training_data(cfg, env, aug_gen)
    m = build_model(cfg, env, rt, data, aug_gen)
    start_epoch, wall = restore_run(ckpt_path, cfg, env, m) if cfg.resume else (0, 0.0)
    wrap_ddp(m, env)
    if overwrite and env.is_main:  # every check passed: the earlier run's files go, nothing else
        clear_run_dir(out)
    # a run that fails before its first checkpoint leaves nothing behind (a rerun needs no cleaning up)
    cleanup = (removed_on_failure(out, out / "config.json", metrics_path, keep_if=ckpt_path.exists)
               if env.is_main else contextlib.nullcontext())
    with cleanup:
        return _run_epochs(cfg, env, rt, m, data, start_epoch, wall, on_epoch_end)


def _run_epochs(cfg: TrainConfig, env: D.DistEnv, rt: Runtime, m: Model, data: TrainData, start_epoch: int,
                wall: float, on_epoch_end: EpochHook | None) -> dict[str, Any]:
    out = Path(cfg.out)
    ckpt_path, metrics_path = out / CHECKPOINT_NAME, out / "metrics.jsonl"
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        remove_leftovers(out)  # temporary files of a run killed while writing its checkpoint
        (out / "config.json").write_text(json.dumps(cfg.record(), indent=2) + "\n")
        rewrite_metrics(metrics_path, start_epoch)
    D.barrier(env)

    record: dict[str, Any] = {}
    clock = announce_cost(cfg, env, rt, m, data, start_epoch)  # AdA: the floor of a slow step, then measured
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        sums, lr = train_epoch(cfg, env, rt, m, data.source, epoch, clock if epoch == start_epoch else None)
        last = epoch + 1 == cfg.epochs
        eval_acc = None
        if data.evaluation is not None and ((epoch + 1) % cfg.eval_every == 0 or last):
            eval_acc = evaluate_accuracy(m.model, data.evaluation, amp=rt.amp, channels_last=rt.channels_last,
                                         env=env)
        epoch_s = time.time() - t0
        wall += epoch_s
        n = float(sums[2])
        record = {"epoch": epoch + 1, "train_loss": float(sums[0]) / n, "train_acc": float(sums[1]) / n,
                  "eval_acc": eval_acc, "lr": lr, "epoch_s": round(epoch_s, 3), "wall_s": round(wall, 3),
                  "images_per_s": round(n / max(epoch_s, 1e-9), 1)}
        if cfg.skip_bad_images:
            record["skipped_images"] = int(sums[3])
            if env.is_main and sums[3] > 0:
                print(f"warning: epoch {epoch + 1} left out {int(sums[3])} unreadable image(s) "
                      f"(--skip-bad-images)", file=sys.stderr)
        save_run(ckpt_path, metrics_path, cfg, env, m, epoch + 1, wall, record)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, record)
    return _finish(cfg, env, rt, m, data, record, wall, metrics_path)


def _finish(cfg: TrainConfig, env: D.DistEnv, rt: Runtime, m: Model, data: TrainData, record: dict,
            wall: float, metrics_path: Path) -> dict[str, Any]:
    """Check that processes agree, export ``final.safetensors`` and ``result.json``; returns the summary."""
    checksums = D.all_gather_object(env, D.state_checksum(m.model))
    if not record and metrics_path.exists():  # resumed a finished run: report its last epoch
        lines = metrics_path.read_text().splitlines()
        record = json.loads(lines[-1]) if lines else {}
    out = Path(cfg.out)
    result = {"epochs": cfg.epochs, "final_eval_acc": record.get("eval_acc"),
              "final_train_loss": record.get("train_loss"), "final_train_acc": record.get("train_acc"),
              "wall_s": round(wall, 3), "world_size": env.world_size, "peak_lr": cfg.peak_lr,
              "steps_per_epoch": data.source.steps_per_epoch(), "local_batch": cfg.batch_size // env.world_size,
              "train_images": len(data.source), "data_path": data.path, "rank_checksums": checksums,
              "ranks_agree": len(set(checksums)) == 1, "out": str(out), "device": str(rt.device),
              "amp_bf16": rt.amp, "channels_last": rt.channels_last, "arch": cfg.arch, "method": cfg.method,
              "producer": producer("train")}
    if env.is_main:
        export_final(m.model, cfg, out / "final.safetensors", data.num_classes, data.source.classes)
        (out / "config.json").write_text(json.dumps(cfg.record(), indent=2) + "\n")
        (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    D.barrier(env)
    if not result["ranks_agree"]:
        raise RuntimeError(f"processes ended with different weights (checksums {checksums}); "
                           f"data-parallel training went out of sync")
    return result


# ---- command line -------------------------------------------------------------------------
def main(args: argparse.Namespace) -> int:
    """``adaaug train``: exit status 0 on success, 2 on a configuration or data error (message on stderr)."""
    try:
        cfg = config_from_args(args)
        if getattr(args, "print_config", False):
            cfg.validate(D.world_size_from_env(), check_paths=False)
            print(json.dumps(cfg.to_dict(), indent=2))
            return 0
        result = train(cfg, overwrite=getattr(args, "overwrite", False))
    except (ConfigError, BadImageError) as err:
        print(f"adaaug train: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM: the command line prints one line with this hint
        done = Path(cfg.out) / CHECKPOINT_NAME
        err.hint = (f"the checkpoint of the last finished epoch is kept: add --resume to continue the run"  # type: ignore[attr-defined]
                    if done.exists() else "no epoch had finished, so no checkpoint was kept")
        raise
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(result, indent=2))
    return 0
