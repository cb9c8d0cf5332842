"""Tables, figure and machine name of ``adaaug mini-protocol`` (:mod:`adaaug.experiments.mini`)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..corruptions import BENCHMARK
from ..runtime.markdown import table

SHORT = {"gaussian_noise": "Gauss", "shot_noise": "Shot", "impulse_noise": "Impulse", "defocus_blur": "Defocus",
         "glass_blur": "Glass", "motion_blur": "Motion", "zoom_blur": "Zoom", "snow": "Snow", "frost": "Frost",
         "fog": "Fog", "brightness": "Bright", "contrast": "Contrast", "elastic_transform": "Elastic",
         "pixelate": "Pixel", "jpeg_compression": "JPEG"}


def markdown_table(rows: Sequence[dict], corruptions: Sequence[str] = BENCHMARK) -> str:
    """``| method | clean error | mCE | mCE − clean | <15 corruption errors> |`` (all %, 2 decimals; – when absent).

    ``mCE − clean`` is the error the corruptions add on average: Hendrycks & Dietterich's (2019)
    relative mCE without their AlexNet normalisation (CIFAR-10-C has none).
    """
    def fmt(v: float | None) -> str:
        return "–" if v is None else f"{v:.2f}"

    def cells(r: dict) -> list[str]:
        gap = None if r["mce"] is None or r["clean_error"] is None else r["mce"] - r["clean_error"]
        return [r["method"], fmt(r["clean_error"]), fmt(r["mce"]), fmt(gap)] + [fmt(r["ce"].get(c)) for c in corruptions]

    header = ["method", "clean error", "mCE", "mCE − clean"] + [SHORT[c] for c in corruptions]
    return "\n".join(table(header, (cells(r) for r in rows)))


def save_plot(rows: Sequence[dict], path: Path, title: str, classes: int = 10) -> None:
    """Grouped bars: clean error and mCE (%) per method; a dotted line at chance level (1 − 1/classes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["method"] for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(1.6 * len(rows) + 3, 4))
    for offset, key, label, color in ((-0.2, "clean_error", "clean error", "#8da0cb"),
                                      (0.2, "mce", "mCE (15 corruptions, CIFAR-10-C severities)", "#fc8d62")):
        vals = [r[key] if r[key] is not None else np.nan for r in rows]
        bars = ax.bar(x + offset, vals, 0.4, label=label, color=color)
        ax.bar_label(bars, fmt="%.1f", fontsize=8, padding=2)
    ax.axhline(100.0 * (1 - 1 / classes), color="grey", ls=":", lw=1)
    ax.annotate("chance", (x[-1] + 0.45, 100.0 * (1 - 1 / classes)), fontsize=7, color="grey", ha="right",
                va="bottom")
    ax.set_xticks(x, names)
    ax.set_ylabel("error (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, ncols=2, loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    ax.margins(y=0.12)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def machine_name(device: str) -> str:
    """Where the runs trained, for the figure and ``results.json``: the CUDA device's name or the CPU's architecture
    and core count, with the torch version."""
    import os
    import platform

    import torch

    from ..train.distributed import resolve_device

    dev = resolve_device(device)
    where = (torch.cuda.get_device_name(dev) if dev.type == "cuda"
             else f"{platform.machine()} CPU ({os.cpu_count()} cores)")
    return f"{where}, torch {torch.__version__.split('+')[0]}"


def data_label(spec: str) -> str:
    """A data spec as the reports name it: ``cifar10:<root>`` → ``CIFAR-10 (torchvision, <root>)``, a path as given."""
    if str(spec).startswith("cifar10:"):
        return f"CIFAR-10 (torchvision, {str(spec).split(':', 1)[1]})"
    return str(spec)


def report(results: dict) -> str:
    """The markdown of ``results.md``: settings, the data it was given, the table, the paper's full-scale numbers
    for context."""
    s = results["settings"]
    paper = ", ".join(f"{m} {v:.2f}" for m, v in results["paper_mce"].items())
    classes = results.get("dev_classes")
    chosen = list(s.get("corruptions") or BENCHMARK)
    if set(BENCHMARK) <= set(chosen):
        corruptions = "CIFAR-10-C's 15 corruptions at its severities 1–5"
        mce = "mCE is the mean of the 15 corruption errors; mCE − clean is the error the corruptions add."
    else:
        corruptions = (f"{len(chosen)} of CIFAR-10-C's corruptions, {', '.join(SHORT.get(c, c) for c in chosen)}, at "
                       f"its severities 1–5")
        mce = "mCE needs all 15 benchmark corruptions, so it is left out (–)."
    return "\n".join([
        "# AdA mini-protocol: clean and corruption errors (%)", "",
        f"Data: trained on {data_label(s['data'])}, scored on {data_label(s['dev'])}"
        f"{f' ({classes} classes)' if classes else ''}.", "",
        f"ResNet-20 per method, {results['train_images']} training images × {s['epochs']} epochs (batch "
        f"{s['batch_size']}, SGD lr {s['lr']}, weight decay {s['weight_decay']}), AdA: {s['backbone']} "
        f"({s['backbone_weights'] or 'untrained'} weights), ν = {s['nu']}, M = {s['ada_steps']} steps; scored on "
        f"{results['dev_images']} dev images and their corruptions written by `adaaug make-c` ({corruptions}), "
        f"seed {s['seed']}. {mce}", "",
        markdown_table(results["rows"]), "",
        f"Paper, full scale (pre-activation ResNet-50, 300 epochs, Table 1) CIFAR-10-C mCE: {paper}. "
        "This run is orders of magnitude smaller; compare the rows with each other, not with the paper.",
    ])
