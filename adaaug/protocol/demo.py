"""``adaaug demo``: AdA with every packaged backbone on the bundled sample images.

Loads the packaged classifier (ResNet-20, trained nominally on CIFAR-10) and each
packaged corruption network, runs AdA on the 10 bundled CIFAR-10 test images (one
per class), prints a table (clean → adversarial loss, prediction flips, SSIM, γ)
and writes a figure like the paper's Figure 1: for each backbone a row of
original | AdA image | exaggerated difference (0.5 + gain · (x' − x)).
"""
from __future__ import annotations

import argparse
import json
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import paper


def load_samples() -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The bundled images: float ``10×3×32×32`` in [0, 1], labels ``10``, class names."""
    from PIL import Image

    root = resources.files("adaaug._samples")
    meta = json.loads((root / "samples.json").read_text())
    arrays = []
    for item in meta["images"]:
        with (root / item["file"]).open("rb") as f, Image.open(f) as im:
            arrays.append(np.asarray(im.convert("RGB")))
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255
    y = torch.tensor([item["label"] for item in meta["images"]])
    return x, y, meta["classes"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="adaaug-demo.png", help="figure path (PNG)")
    p.add_argument("--backbones", nargs="+", default=["edsr", "cae", "vqvae", "unet"])
    p.add_argument("--nu", type=float, default=paper.NU_EDSR_CIFAR10)
    p.add_argument("--steps", type=int, default=paper.CIFAR10_STEPS)
    p.add_argument("--images", type=int, default=4, help="images shown per row of the figure")
    p.add_argument("--gain", type=float, default=4.0, help="exaggeration of the difference panel")
    p.add_argument("--seed", type=int, default=0)


def run_demo(backbones: list[str], nu: float, steps: int, seed: int) -> tuple[dict, torch.Tensor, dict]:
    """Run AdA per backbone; returns (table rows, clean images, {backbone: AdA images})."""
    from ..transform import AdversarialAugment
    from ..weights import load_backbone, load_classifier, read_manifest

    x, y, _ = load_samples()
    model = load_classifier("resnet20")
    published = read_manifest().get("files", {})
    with torch.no_grad():
        clean_logits = model(x)
    clean_loss = F.cross_entropy(clean_logits, y, reduction="none")
    rows, outputs = {}, {}
    for name in backbones:
        if "cifar10" not in published.get(name, {}):
            print(f"skipping {name}: no packaged cifar10 weights")
            continue
        ada = AdversarialAugment(model, backbone=load_backbone(name), nu=nu, steps=steps,
                                 generator=torch.Generator().manual_seed(seed))
        x_adv, info = ada(x, y, return_info=True)
        with torch.no_grad():
            flips = (model(x_adv).argmax(1) != clean_logits.argmax(1)).sum().item()
        rows[name] = {"clean_loss": clean_loss.mean().item(), "ada_loss": info.loss.mean().item(),
                      "flips": int(flips), "n": len(y), "ssim": info.ssim.mean().item(),
                      "ssim_min": info.ssim.min().item(), "gamma": info.gamma.mean().item()}
        outputs[name] = x_adv
    return rows, x, outputs


def save_figure(path: str | Path, x: torch.Tensor, outputs: dict, n_images: int, gain: float) -> None:
    """Figure 1 layout: one row per backbone, (original | AdA | difference) per image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(outputs)
    n = min(n_images, x.shape[0])
    fig, axes = plt.subplots(len(names), 3 * n, figsize=(1.3 * 3 * n, 1.5 * len(names)), squeeze=False)
    titles = ("original", "AdA", f"diff ×{gain:g}")
    for r, name in enumerate(names):
        for i in range(n):
            panels = (x[i], outputs[name][i], (0.5 + gain * (outputs[name][i] - x[i])).clamp(0, 1))
            for j, img in enumerate(panels):
                ax = axes[r][3 * i + j]
                ax.imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest")
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(titles[j], fontsize=8)
            if i == 0:
                axes[r][0].set_ylabel(name, fontsize=10)
    fig.suptitle("AdversarialAugment on CIFAR-10 test images (packaged weights)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    rows, x, outputs = run_demo(args.backbones, args.nu, args.steps, args.seed)
    if not rows:
        print("no packaged backbone weights found; reinstall adaaug from a wheel that includes weights/")
        return 1
    print(f"AdA, ν = {args.nu}, M = {args.steps} steps, SSIM threshold {paper.CIFAR10_SSIM_THRESHOLD}, "
          f"packaged ResNet-20 on {x.shape[0]} bundled CIFAR-10 test images")
    print(f"{'backbone':<9}{'clean loss':>11}{'AdA loss':>10}{'flips':>8}{'SSIM':>7}{'min SSIM':>10}{'mean γ':>8}")
    for name, r in rows.items():
        print(f"{name:<9}{r['clean_loss']:>11.3f}{r['ada_loss']:>10.3f}{r['flips']:>5}/{r['n']:<2}"
              f"{r['ssim']:>7.3f}{r['ssim_min']:>10.3f}{r['gamma']:>8.3f}")
    save_figure(args.out, x, outputs, args.images, args.gain)
    print(f"wrote {args.out}")
    return 0
