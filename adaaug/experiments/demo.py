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
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import paper

DEFAULT_BACKBONES = ("edsr", "cae", "vqvae", "unet")


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
    p.add_argument("--out", default="adaaug-demo.png",
                   help="figure path (PNG); an earlier demo's figure there is replaced, any other file is refused "
                        "unless --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace --out even when an earlier demo did not write it")
    p.add_argument("--backbones", nargs="+", default=list(DEFAULT_BACKBONES), metavar="NAME",
                   help="packaged corruption networks to run, one row each")
    p.add_argument("--nu", type=float, default=paper.NU_EDSR_CIFAR10, help="relative radius ν (paper: 0.015)")
    p.add_argument("--steps", type=int, default=paper.CIFAR10_STEPS, help="M, ascent steps (paper: 10)")
    p.add_argument("--images", type=int, default=4, help="images shown per row of the figure (1..10)")
    p.add_argument("--gain", type=float, default=4.0, help="exaggeration of the difference panel")
    p.add_argument("--seed", type=int, default=0, help="seeds δ⁰")


def check_backbones(names: list[str]) -> list[str]:
    """``names`` if each has packaged ``cifar10`` weights, else a :class:`~adaaug.runtime.errors.UsageError`
    naming the known ones."""
    from ..backbones import available_backbones
    from ..runtime.errors import UsageError
    from ..weights import read_manifest

    published = read_manifest().get("files", {})
    known = [n for n in available_backbones() if "cifar10" in published.get(n, {})]
    unknown = [n for n in names if n not in known]
    if unknown:
        listed = ", ".join(repr(n) for n in unknown)
        raise UsageError(f"unknown backbone {listed}: the demo runs the packaged corruption networks "
                         f"{', '.join(known) or '(none installed)'}")
    return list(names)


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
    from ..runtime.progress import bar

    print(f"running AdA (M = {steps}) with {len(backbones)} backbone{'s' * (len(backbones) != 1)} on {len(y)} "
          f"images (a few minutes on a CPU)", file=sys.stderr, flush=True)
    for name in bar(backbones, desc="demo", unit="backbone"):
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


def _font(size: int):
    """PIL's default font at ``size`` px (a bitmap font on Pillow < 10.1)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def figure(x: torch.Tensor, outputs: dict[str, torch.Tensor], n_images: int = 4, gain: float = 4.0,
           scale: int = 3, title: str | None = None):
    """Figure 1 layout as a PIL image: one row per backbone, (original | AdA | difference) per image.

    Args:
        x: clean images ``N×3×H×W`` in [0, 1]. outputs: backbone name → AdA images of ``x``.
        n_images: images per row (at most N). gain: the difference panel shows ``0.5 + gain·(x' − x)``.
        scale: nearest-neighbour magnification of each panel.
    """
    from PIL import Image, ImageDraw
    from torchvision.utils import make_grid

    n = max(1, min(n_images, x.shape[0]))
    h, w = x.shape[2] * scale, x.shape[3] * scale
    pad, gap, label_w = 2, 8, 90
    font, small = _font(14), _font(11)
    top = (24 if title else 0) + 18
    panel_titles = ("original", "AdA", f"diff x{gain:g}")
    rows = []
    for name, adv in outputs.items():
        tiles = []
        for i in range(n):
            tiles += [x[i], adv[i], (0.5 + gain * (adv[i] - x[i])).clamp(0, 1)]
        tiles = F.interpolate(torch.stack(tiles).float(), scale_factor=scale, mode="nearest")
        grid = make_grid(tiles, nrow=3 * n, padding=pad, pad_value=1.0)
        rows.append((name, (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)))
    grid_w = rows[0][1].shape[1] if rows else 3 * n * (w + pad)
    row_h = h + 2 * pad
    canvas = Image.new("RGB", (label_w + grid_w + (n - 1) * gap, top + len(rows) * row_h + 4), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((6, 4), title, fill="black", font=font)
    triple_w = 3 * (w + pad)
    for i in range(n):
        for j, text in enumerate(panel_titles):
            cx = label_w + i * (triple_w + gap) + pad + j * (w + pad) + w // 2
            draw.text((cx, top - 3), text, fill="black", font=small, anchor="ms")
    for r, (name, array) in enumerate(rows):
        y0 = top + r * row_h
        draw.text((6, y0 + row_h // 2), name, fill="black", font=font, anchor="lm")
        for i in range(n):  # a gap between the image triples
            part = array[:, i * triple_w:(i + 1) * triple_w + (pad if i == n - 1 else 0)]
            canvas.paste(Image.fromarray(np.ascontiguousarray(part)), (label_w + i * (triple_w + gap), y0))
    return canvas


#: The PNG text chunk that marks a figure as this command's (a rerun replaces such a file without --overwrite).
SOFTWARE = ("Software", "adaaug demo")


def demo_figure(path: str | Path) -> bool:
    """Whether ``path`` is a PNG that :func:`save_figure` wrote (its ``Software`` text is ``adaaug demo``)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.format == "PNG" and image.info.get(SOFTWARE[0]) == SOFTWARE[1]
    except (OSError, ValueError):
        return False


def save_figure(path: str | Path, x: torch.Tensor, outputs: dict, n_images: int, gain: float) -> None:
    """Write :func:`figure` as a PNG (Pillow and torchvision only; no plotting library needed), marked with the
    text chunk :data:`SOFTWARE`."""
    import platform

    from PIL.PngImagePlugin import PngInfo

    machine = f"{platform.machine()} CPU, torch {torch.__version__.split('+')[0]}"
    image = figure(x, outputs, n_images, gain,
                   title=f"AdversarialAugment on CIFAR-10 test images (packaged weights; {machine})")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:  # written whole or not at all: an interrupted save leaves no truncated PNG
        info = PngInfo()
        info.add_text(*SOFTWARE)
        image.save(tmp, format="PNG", pnginfo=info)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def main(args: argparse.Namespace) -> int:
    from ..runtime.errors import UsageError

    if not 1 <= args.images <= 10:
        raise UsageError(f"--images must be in 1..10 (there are 10 bundled images), got {args.images}")
    if args.steps < 0 or not args.nu > 0:
        raise UsageError(f"need --steps ≥ 0 and --nu > 0, got {args.steps} and {args.nu}")
    if not str(args.out).lower().endswith(".png"):
        raise UsageError(f"--out must be a .png path, got {args.out}")
    if not demo_figure(args.out):  # an earlier demo's figure is its own output: replaced
        from ..runtime.outdir import claim_output_files

        claim_output_files([args.out], overwrite=getattr(args, "overwrite", False), what="not a figure of adaaug demo",
                           other="choose another --out")
    check_backbones(args.backbones)
    rows, x, outputs = run_demo(args.backbones, args.nu, args.steps, args.seed)
    print(f"AdA, ν = {args.nu}, M = {args.steps} steps, SSIM threshold {paper.CIFAR10_SSIM_THRESHOLD}, "
          f"packaged ResNet-20 on {x.shape[0]} bundled CIFAR-10 test images")
    print(f"{'backbone':<10}{'clean loss':>11}{'AdA loss':>10}{'flips':>8}{'SSIM':>7}{'min SSIM':>10}{'mean γ':>8}")
    for name, r in rows.items():
        print(f"{name:<10}{r['clean_loss']:>11.3f}{r['ada_loss']:>10.3f}{r['flips']:>5}/{r['n']:<2}"
              f"{r['ssim']:>7.3f}{r['ssim_min']:>10.3f}{r['gamma']:>8.3f}")
    save_figure(args.out, x, outputs, args.images, args.gain)
    print(f"wrote {args.out}")
    return 0
