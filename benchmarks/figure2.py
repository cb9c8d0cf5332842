"""Figure 2 of the AdA paper, quantitatively: SSIM(x, x') of raw AdA images per backbone and radius ν.

For every (backbone, ν) row: AdA with the packaged CIFAR-10 weights against the packaged ResNet-20
(``adaaug.load_classifier()``), M = 10 sign-gradient steps, **no line search** (``ssim_threshold=None``:
the figure shows the raw AdA output), one seed, on a seeded random subset of dev images. Reports the
median, 10th percentile, mean and minimum of SSIM(x, x'), and SSIM(x, c_φ(x)) with δ = 0, next to
what the paper says about its Figure 2 (Section 3; the figure itself gives no numbers).

Rows are computed one at a time and merged into ``<out>/results.json`` after each (a killed run
keeps what it finished; rows already there are skipped unless ``--force``). ``<out>/results.md``
(a table) and ``<out>/figure2.png`` (the two density panels, on the paper's axes) are rebuilt from
the JSON after every row, or alone with ``--render-only``.

    python benchmarks/figure2.py --data <dir of CIFAR-10 test images, ImageFolder> --backbones edsr
    python benchmarks/figure2.py --data <dir> --backbones cae
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

NU = {"edsr": [0.0075, 0.009375, 0.01125, 0.013125, 0.015],  # Figure 2, EDSR panel
      "cae": [0.0075, 0.015, 0.0225, 0.03, 0.0375]}          # Figure 2, CAE panel
AXES = {"edsr": (0.90, 1.00), "cae": (0.0, 1.0)}              # the x-axes of Figure 2's panels
PAPER = {  # what the paper states about each panel (Figure 2 caption and Section 3)
    ("edsr", 0.0075): "highly concentrated around 0.99",
    "edsr": "increasing ν slightly dissipates density rapidly",
    "cae": "increasing ν shifts the density lower; support much wider than EDSR's",
}


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _machine(threads: int) -> str:
    return f"{platform.machine()} CPU, {threads} thread{'s' if threads > 1 else ''}, torch {torch.__version__}"


def measure(name: str, nus: list[float], x: torch.Tensor, y: torch.Tensor, steps: int, seed: int,
            done: dict, force: bool, save) -> None:
    """Run AdA(name) at each ν on ``x`` (N×3×H×W in [0, 1]); ``save(row)`` after each row."""
    from adaaug import AdversarialAugment, load_backbone, load_classifier
    from adaaug.line_search import ssim
    from adaaug.weights import read_manifest

    model = load_classifier()
    backbone = load_backbone(name)
    with torch.no_grad():
        at_zero = ssim(x, backbone(x).clamp(0, 1))
    sha = read_manifest()["files"][name]["cifar10"]["sha256"]
    for nu in nus:
        key = f"{name}@{nu:g}"
        if key in done and not force and done[key]["weights_sha256"] == sha:
            print(f"{key}: already measured, skipped")
            continue
        t0 = time.time()
        ada = AdversarialAugment(model, backbone=backbone, nu=nu, steps=steps, ssim_threshold=None,
                                 generator=torch.Generator().manual_seed(seed))
        _, info = ada(x, y, return_info=True)
        s = info.ssim.double().numpy()
        row = {"backbone": name, "nu": nu, "images": len(s), "steps": steps, "seed": seed,
               "median": float(np.median(s)), "p10": float(np.percentile(s, 10)), "mean": float(s.mean()),
               "min": float(s.min()), "delta0_mean": float(at_zero.mean()),
               "delta0_median": float(at_zero.median()), "weights_sha256": sha,
               "ssim": [round(float(v), 5) for v in s], "wall_s": round(time.time() - t0, 1)}
        print(f"{key}: median {row['median']:.4f}  p10 {row['p10']:.4f}  mean {row['mean']:.4f}  "
              f"min {row['min']:.4f}  (δ = 0: {row['delta0_mean']:.4f}; {row['wall_s']:.0f} s)", flush=True)
        save(key, row)


def render(results: dict, out: Path) -> None:
    """``results.md`` and ``figure2.png`` from the merged results."""
    rows = sorted(results["rows"].values(), key=lambda r: (r["backbone"] != "edsr", r["nu"]))
    meta = results["meta"]
    lines = [
        "# Figure 2 of the paper, quantitatively",
        "",
        "SSIM(x, x') between clean CIFAR-10 test images and their AdA images, **before the line search**",
        f"(`ssim_threshold=None`), M = {meta['steps']}, the packaged weights against the packaged ResNet-20;",
        f"N images, {meta['data']} (the smaller set is part of the larger one), seed {meta['seed']}. SSIM is",
        "App. F.1's (11×11 Gaussian window, σ = 1.5). \"δ = 0\" is the mean SSIM(x, c_φ(x)) of the unperturbed",
        "network. The paper gives Figure 2 as densities only (EDSR's panel spans SSIM 0.90–1.00, CAE's 0–1);",
        "its statements about them are quoted.",
        "",
        "| backbone | ν | N | median | 10th pct | mean | min | δ = 0 | paper (Figure 2, Section 3) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        said = PAPER.get((r["backbone"], r["nu"]), PAPER[r["backbone"]])
        lines.append(f"| {r['backbone']} | {r['nu']:g} | {r['images']} | {r['median']:.3f} | {r['p10']:.3f} | {r['mean']:.3f} | "
                     f"{r['min']:.3f} | {r['delta0_mean']:.4f} | {said} |")
    lines += ["", f"Measured on {meta['machine']}, {meta['date']}, commit {meta['commit']} (the machine was shared "
              "with other jobs; times are not reported). Weights: sha256 of each backbone file in `results.json`.",
              "", "Command: `python benchmarks/figure2.py --data <CIFAR-10 test images, ImageFolder> "
              f"--images <N> --steps {meta['steps']} --backbones <backbone>` (EDSR's M + 1 forward and backward "
              "passes run at twice the image size, about 8× the CAE's cost per image, hence fewer images)", ""]
    (out / "results.md").write_text("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import gaussian_kde

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, name in zip(axes, ("edsr", "cae")):
        lo, hi = AXES[name]
        grid = np.linspace(lo, hi, 500)
        mine = [r for r in rows if r["backbone"] == name]
        colors = plt.cm.viridis(np.linspace(0, 0.9, max(len(mine), 1)))
        for r, color in zip(mine, colors):
            s = np.asarray(r["ssim"])
            below = float((s < lo).mean())
            label = f"{name.upper()} ν = {r['nu']:g}" + (f" ({below:.0%} < {lo:g})" if below > 0 else "")
            if s.std() > 1e-6:
                ax.plot(grid, gaussian_kde(s)(grid), color=color, label=label)
            else:
                ax.axvline(float(s.mean()), color=color, label=label)
        if mine:
            ax.axvline(mine[0]["delta0_mean"], color="grey", ls="--", lw=1, label="δ = 0 (mean)")
        ax.set_xlim(lo, hi)
        ax.set_xlabel("SSIM(x, x′)")
        ax.set_ylabel("density")
        n = f", {mine[0]['images']} images" if mine else ""
        ax.set_title(f"AdA ({name.upper()}), M = {meta['steps']}, no line search{n}", fontsize=9)
        if mine:
            ax.legend(fontsize=7)
    fig.suptitle("SSIM between clean and AdA images on CIFAR-10 test images (axes as in the paper's Figure 2); "
                 f"{meta.get('machine', 'machine not recorded')}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "figure2.png", dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", help="ImageFolder directory of CIFAR-10 test images")
    p.add_argument("--images", type=int, default=300)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--backbones", nargs="+", default=["edsr", "cae"], choices=sorted(NU))
    p.add_argument("--out", default=str(Path(__file__).parent / "figure2"))
    p.add_argument("--force", action="store_true", help="recompute rows already in results.json")
    p.add_argument("--render-only", action="store_true")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {"meta": {}, "rows": {}}
    if args.render_only:
        render(results, out)
        return
    if not args.data:
        p.error("--data is required unless --render-only")
    torch.set_num_threads(args.threads)
    from adaaug.data.images import load_images

    data = load_images(args.data).subset(args.images, args.seed)
    x, y = data.images.float().div(255), data.labels
    results["meta"] = {"steps": args.steps, "seed": args.seed,
                       "data": "a seeded random subset of CIFAR-10 test images re-encoded as JPEG quality 75",
                       "machine": _machine(args.threads), "commit": _commit(),
                       "date": datetime.date.today().isoformat()}

    def save(key: str, row: dict) -> None:
        results["rows"][key] = row
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(results, indent=1) + "\n")
        tmp.replace(path)
        render(results, out)

    for name in args.backbones:
        measure(name, NU[name], x, y, args.steps, args.seed, results["rows"], args.force, save)


if __name__ == "__main__":
    main()
