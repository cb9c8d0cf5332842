"""A fast CIFAR-10 training recipe: the ResNet-9 of D. Page, "How to train your ResNet" (Myrtle.ai, 2018).

Page's series trains a 9-layer residual network to 94 % CIFAR-10 test accuracy in 24 epochs (79 s on
one V100). This module implements that network and schedule from the series' description:

* network: ``prep`` conv(64) → ``layer1`` conv(128), max-pool 2, residual [conv(128), conv(128)] →
  ``layer2`` conv(256), max-pool 2 → ``layer3`` conv(512), max-pool 2, residual [conv(512), conv(512)]
  → global max-pool → linear(10) scaled by 0.125; every conv is 3×3, no bias, then BatchNorm and ReLU.
  ``width`` (64) scales every width (tests use a narrow one). Per-channel normalisation is inside the
  network, which takes [0, 1] images as AdA requires;
* optimiser: SGD, Nesterov momentum 0.9, batch 512, weight decay 5e-4 (Page's ``5e-4 × batch`` on a
  summed loss is this on the mean loss), learning rate rising linearly from 0 to 0.4 over the first
  5/24 of training, then linearly down to 0;
* data: random 32×32 crops of the zero-padded (4 px) image and horizontal flips (adaaug's
  :func:`~adaaug.augment.compose.standard_augment`; Page pads by reflection), then an 8×8 cutout;
  label smoothing 0.2 (from the series' later "bag of tricks").

Test-time augmentation and the series' later tricks (input whitening, ghost BatchNorm, weight
averaging) are left out. :func:`train_method` trains one row of the comparison in
:mod:`adaaug.experiments.gpu_compare`: the recipe plus AdA, AugMix (with its Jensen–Shannon loss) or both.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

#: CIFAR-10 per-channel mean and standard deviation of [0, 1] images.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def _conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_bn(channels, channels), _conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet9(nn.Module):
    """Page's ResNet-9 on [0, 1] images ``N×3×H×W`` (H, W multiples of 8) → logits ``N×num_classes``.

    Args:
        num_classes: outputs (10).
        width: channels of the first layer (64); the others are 2×, 4× and 8× it.
    """

    def __init__(self, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        if width < 1 or num_classes < 1:
            raise ValueError(f"width and num_classes must be ≥ 1, got {width} and {num_classes}")
        w = width
        self.register_buffer("mean", torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(CIFAR10_STD).view(1, 3, 1, 1))
        self.features = nn.Sequential(
            _conv_bn(3, w),
            _conv_bn(w, 2 * w), nn.MaxPool2d(2), _Residual(2 * w),
            _conv_bn(2 * w, 4 * w), nn.MaxPool2d(2),
            _conv_bn(4 * w, 8 * w), nn.MaxPool2d(2), _Residual(8 * w),
            nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.fc = nn.Linear(8 * w, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.125 * self.fc(self.features((x - self.mean) / self.std))


@dataclass
class Recipe:
    """The schedule (defaults: Page's, see the module docstring; ``epochs`` 24 there)."""

    epochs: int = 24
    batch_size: int = 512
    lr: float = 0.4
    warmup: float = 5 / 24
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.2
    cutout: int = 8

    def lr_at(self, step: int, total: int) -> float:
        """Learning rate at optimiser step ``step`` of ``total``: linear up to ``lr``, then linear down to 0."""
        t = step / max(total, 1)
        return self.lr * (t / self.warmup if t < self.warmup else max(0.0, (1 - t) / (1 - self.warmup)))


def cutout(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero one ``size×size`` square per image (centre uniform over the image, clipped at the borders).

    ``x``: ``N×C×H×W`` float; returns a new tensor. Draws on the generator's device (CPU by default),
    so a CPU generator gives the same squares on any device.
    """
    n, _, h, w = x.shape
    if size <= 0 or n == 0:
        return x
    dev = generator.device if generator is not None else torch.device("cpu")
    cy = torch.randint(0, h, (n, 1, 1), generator=generator, device=dev).to(x.device)
    cx = torch.randint(0, w, (n, 1, 1), generator=generator, device=dev).to(x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((ys - cy).abs() * 2 < size) & ((xs - cx).abs() * 2 < size)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def _autocast(device: torch.device, bf16: bool):
    if bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_method(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, method: str, recipe: Recipe,
                 generator: torch.Generator, ada: Callable | None = None, ada_share: float = 1.0,
                 bf16: bool = True, deadline: float | None = None, max_steps: int | None = None,
                 log: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Train ``model`` in place with the recipe and ``method``'s augmentation; returns training statistics.

    Args:
        model: a classifier on [0, 1] images (e.g. :class:`ResNet9`), on the images' device.
        images, labels: the training set, uint8 ``N×3×H×W`` and int64 ``N``, on the training device.
        method: ``nominal``, ``ada``, ``augmix`` or ``ada+augmix``. Per batch: the recipe's crop, flip and
            cutout; then AdA on a seeded ``round(ada_share·B)`` of the batch (all of it at 1.0); then,
            with AugMix, the loss is cross-entropy on that view + 12·JSD(view, AugMix, AugMix).
        ada: an :class:`~adaaug.transform.AdversarialAugment` built on ``model`` (methods with AdA).
        bf16: bfloat16 autocast of the classifier and AdA's backbone passes on CUDA (ignored on a CPU).
        deadline: a ``time.monotonic()`` value; training stops after the step that passes it and
            ``stopped_at_step`` records where (the schedule is then not finished).
        max_steps: stop after this many steps (timing runs); the schedule still spans ``recipe.epochs``.
    """
    from .. import paper
    from ..augment.augmix import AugMix
    from ..augment.compose import standard_augment
    from ..augment.jsd import jsd_loss
    from ..data.images import iterate_batches

    parts = method.split("+")
    if set(parts) - {"ada", "augmix", "nominal"} or ("ada" in parts) != (ada is not None):
        raise ValueError(f"method must be nominal, ada, augmix or ada+augmix (with ada= exactly when it uses AdA), "
                         f"got {method!r}")
    device = images.device
    augmix = AugMix(generator=generator) if "augmix" in parts else None
    opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=recipe.momentum, nesterov=True,
                          weight_decay=recipe.weight_decay)
    n = len(labels)
    per_epoch = -(-n // recipe.batch_size)
    total = recipe.epochs * per_epoch
    model.train()
    step, t0, ssims, stopped = 0, time.monotonic(), [], None
    for epoch in range(recipe.epochs):
        correct, seen = torch.zeros((), dtype=torch.int64, device=device), 0  # this epoch's training accuracy
        for idx in iterate_batches(n, recipe.batch_size, shuffle=True, generator=generator):
            idx = idx.to(device)
            x = standard_augment(images[idx].float().div_(255), "cifar10", generator)
            x, y = cutout(x, recipe.cutout, generator), labels[idx]
            with _autocast(device, bf16):
                if ada is not None:
                    k = int(round(ada_share * len(idx)))
                    pick = torch.randperm(len(idx), generator=generator)[:k].to(device)
                    if k:
                        first = step % per_epoch == 0
                        out = ada(x[pick], y[pick], generator=generator, return_info=first)
                        x = x.index_copy(0, pick, out[0] if first else out)
                        if first:
                            ssims.append(out[1].ssim.float().cpu())
                if augmix is not None:
                    logits = model(torch.cat([x, augmix(x), augmix(x)])).float().chunk(3)
                    loss = (F.cross_entropy(logits[0], y, label_smoothing=recipe.label_smoothing)
                            + jsd_loss(*logits, weight=paper.AUGMIX_JSD_LAMBDA))
                else:
                    logits = (model(x).float(),)
                    loss = F.cross_entropy(logits[0], y, label_smoothing=recipe.label_smoothing)
            for group in opt.param_groups:
                group["lr"] = recipe.lr_at(step, total)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            correct += (logits[0].argmax(1) == y).sum()
            seen += len(y)
            if (max_steps is not None and step >= max_steps) or (deadline is not None and time.monotonic() > deadline):
                stopped = step
                break
        if log:
            log(f"{method}: epoch {epoch + 1}/{recipe.epochs}, train acc {100 * int(correct) / max(seen, 1):.1f} %, "
                f"{time.monotonic() - t0:.0f} s")
        if stopped is not None:
            break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    model.eval()
    stats: dict[str, Any] = {"train_s": round(time.monotonic() - t0, 2), "steps": step, "steps_planned": total,
                             "last_train_acc": 100 * int(correct) / max(seen, 1)}
    if stopped is not None and stopped < total:
        stats["stopped_at_step"] = stopped
    if ssims:
        s = torch.cat(ssims)
        stats.update(ada_ssim_median=float(s.median()), ada_ssim_p10=float(s.quantile(0.1)))
    return stats
