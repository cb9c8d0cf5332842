"""Train a corruption network on an image set (AdA paper, App. E.6), then export it.

Objectives per backbone:

- ``unet``: image completion. 2–35% of each image's pixels are zeroed (the
  fraction drawn per image); loss = mean |Δ| + 0.5·0.1 · mean Δ².
- ``vqvae``: the standard VQ-VAE loss (reconstruction MSE + 0.25 · commitment),
  codebook by EMA.
- ``edsr`` / ``edsr-down``: ×2 super-resolution of the ×2-downsampled image, L1 loss:
  ``super_resolve(downsample(x))`` against ``x``, whichever way the backbone is run
  as a corruption network (``model(x)`` of ``edsr`` is the upsample-then-resize-back
  construction, not the training task). Dev metric: the same ×2 SR quality.
- ``cae``: reconstruction, MSE loss on the decoder's tanh output (before the clamp to [0, 1]),
  stochastic binarisation of the latent (DeepAugment's CAE).

Adam with a one-cycle cosine learning rate, random horizontal flips, a checkpoint
written atomically after every epoch, ``--resume`` to continue, ``init`` to start
from existing weights (a safetensors file) instead of a random initialisation.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..backbones import build_backbone
from ..backbones.cae import binarize
from .checkpoint import load_checkpoint, save_atomic
from ..data.images import ImageSet, iterate_batches, load_images, to_float

UNET_MASK_RANGE = (0.02, 0.35)  # fraction of pixels zeroed per image (App. E.6)
UNET_MSE_WEIGHT = 0.5 * 0.1      # App. E.6


def mask_pixels(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero a random 2–35% of the pixels (all channels) of each image in ``x`` (N×C×H×W)."""
    n, _, h, w = x.shape
    lo, hi = UNET_MASK_RANGE
    frac = torch.rand(n, 1, 1, 1, generator=generator) * (hi - lo) + lo
    keep = torch.rand(n, 1, h, w, generator=generator) >= frac
    return x * keep.to(x.dtype)


def backbone_loss(name: str, model: nn.Module, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Training loss of backbone ``name`` on clean images ``x`` in [0, 1]."""
    if name == "unet":
        d = model(mask_pixels(x, generator)) - x
        return d.abs().mean() + UNET_MSE_WEIGHT * d.pow(2).mean()
    if name == "vqvae":
        return model.loss(x)[0]
    if name in ("edsr", "edsr-down"):
        return F.l1_loss(model.super_resolve(model.downsample(x)), x)
    if name == "cae":  # on the decoder's tanh output before the clamp, so that every pixel has a gradient
        return F.mse_loss(model.decode_unclamped(binarize(model.encode(x), stochastic=True, generator=generator)), x)
    raise ValueError(f"no training objective for backbone {name!r}; known: unet, vqvae, edsr, edsr-down, cae")


class SuperResolution(nn.Module):
    """EDSR's training task as a module: ``x`` → ``super_resolve(downsample(x))`` (same size as ``x``)."""

    def __init__(self, edsr: nn.Module) -> None:
        super().__init__()
        self.edsr = edsr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.edsr.super_resolve(self.edsr.downsample(x))


def dev_quality(name: str, model: nn.Module, images: torch.Tensor) -> dict:
    """Dev PSNR/SSIM of the backbone's training task: ×2 SR for EDSR, ``model(x)`` otherwise."""
    if name in ("edsr", "edsr-down"):
        return reconstruction_quality(SuperResolution(model), images)
    return reconstruction_quality(model, images)


@torch.no_grad()
def reconstruction_quality(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> dict:
    """Mean per-image PSNR (dB) and SSIM of ``model(x)`` against ``x`` (uint8 N×3×H×W), eval mode."""
    import piq

    was_training = model.training
    model.eval()
    psnr, ssim = [], []
    for idx in iterate_batches(len(images), batch_size, shuffle=False):
        x = to_float(images[idx])
        y = model(x).clamp(0, 1)
        psnr.append(piq.psnr(y, x, data_range=1.0, reduction="none"))
        ssim.append(piq.ssim(y, x, data_range=1.0, reduction="none", downsample=False))
    model.train(was_training)
    return {"psnr_db": torch.cat(psnr).mean().item(), "ssim": torch.cat(ssim).mean().item()}


@torch.no_grad()
def completion_quality(model: nn.Module, images: torch.Tensor, seed: int = 0) -> dict:
    """U-Net image completion on the dev images: PSNR of the filled-in images and of the masked inputs."""
    g = torch.Generator().manual_seed(seed)
    masked = torch.cat([(mask_pixels(to_float(images[i]), g) * 255).round().to(torch.uint8)
                        for i in iterate_batches(len(images), 500, shuffle=False)])

    import piq

    was_training = model.training
    model.eval()
    filled, given = [], []
    for idx in iterate_batches(len(images), 500, shuffle=False):
        x, m = to_float(images[idx]), to_float(masked[idx])
        filled.append(piq.psnr(model(m).clamp(0, 1), x, data_range=1.0, reduction="none"))
        given.append(piq.psnr(m, x, data_range=1.0, reduction="none"))
    model.train(was_training)
    return {"completion_psnr_db": torch.cat(filled).mean().item(), "masked_input_psnr_db": torch.cat(given).mean().item()}


@torch.no_grad()
def bicubic_baseline(images: torch.Tensor, downsample) -> dict:
    """PSNR/SSIM of bicubic ×2 upsampling of the same ×2-downsampled images (EDSR's baseline)."""
    class Bicubic(nn.Module):
        def forward(self, x):
            return F.interpolate(downsample(x), size=x.shape[-2:], mode="bicubic", align_corners=False)
    return reconstruction_quality(Bicubic(), images)


def train_backbone(name: str, data: str, out: str | Path, *, dev: str | None = None, epochs: int = 10,
                   batch_size: int = 128, lr: float = 1e-3, subset: int | None = None, seed: int = 0,
                   resume: bool = False, threads: int | None = None, progress: bool = True,
                   stop_after: int | None = None, init: str | Path | None = None,
                   dev_epoch_images: int | None = 1000) -> dict:
    """Train backbone ``name`` on ``data``; checkpoints and a metrics JSONL go to ``out``.

    Returns the final dev metrics (if ``dev`` is given) and the wall time.
    ``stop_after`` ends the run after that many epochs (as if killed; resume later).
    ``init``: a safetensors file to start from (e.g. the packaged weights) instead of a
    random initialisation; ignored when resuming from a checkpoint.
    ``dev_epoch_images``: the per-epoch dev metrics use this many dev images (a fixed
    random subset; ``None``: all); the final metrics always use the whole dev set.
    """
    from tqdm import tqdm

    if threads:
        torch.set_num_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train = load_images(data).subset(subset, seed)
    dev_set: ImageSet | None = load_images(dev, train=False) if dev else None
    dev_epoch = None
    if dev_set is not None:
        dev_epoch = dev_set.images
        if dev_epoch_images is not None and dev_epoch_images < len(dev_epoch):
            pick = torch.randperm(len(dev_epoch), generator=torch.Generator().manual_seed(0))[:dev_epoch_images]
            dev_epoch = dev_epoch[pick]
    torch.manual_seed(seed)
    model = build_backbone(name).train()
    if init is not None:
        from ..weights import load_safetensors_into

        load_safetensors_into(model, init)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = math.ceil(len(train) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch,
                                                pct_start=0.05, anneal_strategy="cos")
    gen = torch.Generator().manual_seed(seed)
    start_epoch, wall = 0, 0.0
    ckpt_path = out / "checkpoint.pt"
    if resume and ckpt_path.exists():
        ck = load_checkpoint(ckpt_path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        gen.set_state(ck["gen"])
        torch.set_rng_state(ck["rng"])
        start_epoch, wall = ck["epoch"], ck["wall"]
    log = open(out / "metrics.jsonl", "a" if resume else "w")
    for epoch in range(start_epoch, epochs):
        t0 = time.time()
        total, count = 0.0, 0
        bar = tqdm(list(iterate_batches(len(train), batch_size, True, gen, drop_last=True)),
                   desc=f"{name} epoch {epoch + 1}/{epochs}", disable=not progress, mininterval=10)
        for idx in bar:
            x = to_float(train.images[idx])
            flip = torch.rand(len(idx), generator=gen) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            loss = backbone_loss(name, model, x, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total, count = total + loss.item() * len(idx), count + len(idx)
            bar.set_postfix(loss=f"{total / count:.4f}", refresh=False)
        wall += time.time() - t0
        record = {"epoch": epoch + 1, "train_loss": total / max(count, 1), "wall_s": round(wall, 1)}
        if dev_epoch is not None:
            record.update(dev_quality(name, model, dev_epoch), dev_images=len(dev_epoch))
        log.write(json.dumps(record) + "\n")
        log.flush()
        print(json.dumps(record), flush=True)
        save_atomic({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                     "gen": gen.get_state(), "rng": torch.get_rng_state(), "epoch": epoch + 1, "wall": wall},
                    ckpt_path)
        if stop_after is not None and epoch + 1 >= stop_after and epoch + 1 < epochs:
            return {"name": name, "stopped_after": epoch + 1}
    model.eval()
    result = {"name": name, "epochs": epochs, "train_images": len(train), "wall_s": round(wall, 1)}
    if dev_set is not None:
        result["dev"] = dev_quality(name, model, dev_set.images)
        if name in ("edsr", "edsr-down"):
            result["dev_identity"] = reconstruction_quality(model, dev_set.images)
            result["dev_bicubic"] = bicubic_baseline(dev_set.images, model.downsample)
        if name == "unet":
            result["dev_completion"] = completion_quality(model, dev_set.images)
    torch.save(model.state_dict(), out / "final_state.pt")
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


TRAINING_DATA = ("CIFAR-10 training split (50,000 images) re-encoded as JPEG quality 75; not bit-identical "
                 "to CIFAR-10")
DEV_SPLIT = ("5,000 images of the CIFAR-10 test split (500 per class) re-encoded as JPEG quality 75, "
             "used as a development split")
_PLACEHOLDERS = {"--data": "<CIFAR-10 train dir>", "--dev": "<CIFAR-10 test dir>"}


def user_command(command: str) -> str:
    """``command`` with local paths replaced by placeholders (``--data``, ``--dev``) or file names (``--init``)."""
    words, out = command.split(), []
    for i, word in enumerate(words):
        prev = words[i - 1] if i else ""
        if prev in _PLACEHOLDERS:
            word = _PLACEHOLDERS[prev]
        elif prev == "--init":
            word = Path(word).name
        out.append(word)
    return " ".join(out)


def export_trained(name: str, run_dir: str | Path, weights_dir: str | Path, tag: str, result: dict,
                   command: str, notes: str | None = None) -> Path:
    """Export the final state of a run to ``weights_dir`` with a card (config, data, command, metrics).

    The card speaks to users: the data is described, not located, and local paths in ``command``
    become placeholders (:func:`user_command`). ``notes``: free text, the card's ``note`` (e.g. how the run
    was started).
    """
    from ..weights import export_weights

    model = build_backbone(name)
    model.load_state_dict(torch.load(Path(run_dir) / "final_state.pt", weights_only=True))
    card = {"architecture": type(model).__name__, "config": getattr(model, "config", {}),
            "training_data": TRAINING_DATA, "command": user_command(command),
            **{k: v for k, v in result.items() if k != "name"}}
    if "dev" in result:
        card["dev_split"] = DEV_SPLIT
    if notes:
        card["note"] = notes
    return export_weights(model, name, tag, weights_dir, card)
