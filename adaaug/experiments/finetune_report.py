"""Tables, statistics and the figure of the fine-tuning protocol (:mod:`adaaug.experiments.finetune`).

Rows are summarised as mean ± standard deviation over seeds; every method is compared with
nominal (and AdA + AugMix with AugMix) by per-seed differences and a two-sided paired t-test.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..corruptions import BENCHMARK

if TYPE_CHECKING:  # pragma: no cover
    from .finetune_config import FinetuneConfig


def row_name(method: str, backbone: str | None) -> str:
    """``"ada (edsr)"``, ``"ada (edsr) + augmix"``, ``"nominal"``..."""
    if backbone is None:
        return method
    return method.replace("ada", f"ada ({backbone})").replace("+", " + ")


# ---- summary ------------------------------------------------------------------------------------
def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof 1; 0 for a single value)."""
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def paired(a: dict[int, float], b: dict[int, float]) -> dict[str, Any]:
    """Per-seed differences ``b − a`` on the seeds both have: mean, std, paired t-test, and whether they exceed
    the seed noise.

    "Exceeds the noise" means the two-sided paired t-test over seeds gives p < 0.05 (with 3 seeds: |t| > 4.30,
    i.e. |mean| > 2.48 std). ``same_sign`` says whether every seed moved the same way.
    """
    from scipy import stats

    seeds = sorted(set(a) & set(b))
    d = np.array([b[s] - a[s] for s in seeds], dtype=np.float64)
    out: dict[str, Any] = {"seeds": seeds, "diffs": d.tolist(), "mean": None, "std": None, "t": None, "p": None,
                           "same_sign": False, "exceeds_noise": False}
    if len(d) == 0:
        return out
    mean, std = _mean_std(d)
    out.update(mean=mean, std=std, same_sign=bool(np.all(d < 0) or np.all(d > 0)))
    if len(d) > 1 and std > 0:
        t = mean / (std / np.sqrt(len(d)))
        out.update(t=float(t), p=float(2 * stats.t.sf(abs(t), len(d) - 1)))
        out["exceeds_noise"] = out["p"] < 0.05
    return out


def summarise(cfg: FinetuneConfig, records: Sequence[dict], packaged: dict | None = None) -> dict[str, Any]:
    """Rows with mean ± std over seeds, and the paired comparisons the protocol asks for."""
    by_row: dict[str, dict[int, dict]] = {}
    for r in records:
        by_row.setdefault(r["row"], {})[r["key"]["seed"]] = r
    rows = []
    for method, backbone in cfg.rows():
        name = row_name(method, backbone)
        runs = by_row.get(name, {})
        if not runs:
            continue
        row = {"row": name, "method": method, "backbone": backbone, "seeds": sorted(runs)}
        for k in ("clean_error", "mce"):
            row[k], row[k + "_std"] = _mean_std([runs[s][k] for s in sorted(runs)])
            row[k + "_per_seed"] = {s: runs[s][k] for s in sorted(runs)}
        row["ce"] = {c: float(np.mean([runs[s]["ce"][c] for s in runs])) for c in BENCHMARK}
        for k in ("train_s", "ada_s", "eval_s", "ada_ssim_median", "ada_ssim_p10"):
            vals = [runs[s][k] for s in runs if runs[s].get(k) is not None]
            if vals:
                row[k] = float(np.mean(vals))
        rows.append(row)
    named = {r["row"]: r for r in rows}
    comparisons = []
    for base, other in ([("nominal", r["row"]) for r in rows if r["row"] != "nominal"]
                        + [("augmix", r["row"]) for r in rows if r["method"] == "ada+augmix"]):
        if base not in named:
            continue
        item = {"base": base, "other": other}
        for k in ("mce", "clean_error"):
            item[k] = paired(named[base][k + "_per_seed"], named[other][k + "_per_seed"])
        item["mce_relative"] = item["mce"]["mean"] / named[base]["mce"] if item["mce"]["mean"] is not None else None
        comparisons.append(item)
    settings = dataclasses.asdict(cfg)
    settings.pop("out")
    settings["data"], settings["dev"] = Path(cfg.data).name, Path(cfg.dev).name  # no local paths in reports
    return {"settings": settings, "rows": rows, "comparisons": comparisons,
            "packaged": None if packaged is None else {k: packaged[k] for k in ("clean_error", "mce", "ce")}}


# ---- report ---------------------------------------------------------------------------------------
def _pm(mean: float, std: float) -> str:
    return f"{mean:.2f} ± {std:.2f}"


def report(results: dict[str, Any]) -> str:
    """Markdown: settings, the table (mean ± std over seeds), paired comparisons, per-corruption means."""
    from .mini_report import SHORT

    s = results["settings"]
    share = ("every training image (Algorithm 1)" if s["ada_share"] == 1
             else f"a random {s['ada_share']:g} of each batch, the rest clean (CPU-scale option, not the paper's)")
    lines = [
        "# Fine-tuning the packaged ResNet-20: clean error and mCE (%)", "",
        f"Packaged ResNet-20 fine-tuned per method and seed (seeds {', '.join(map(str, s['seeds']))}) on "
        f"{s['subset']} training images × {s['epochs']} epochs (batch {s['batch_size']}, SGD Nesterov, "
        f"lr {s['lr']:g} cosine, weight decay {s['weight_decay']:g}). AdA: ν = {s['nu']:g}, M = {s['ada_steps']}, "
        f"SSIM line search t = 0.3, applied to {share}. AugMix: "
        + ("with the JSD loss (λ = 12)" if s["jsd"] else "without JSD") + ". "
        f"Scored on {s['dev_limit']} held-out dev images and their 15 × 5 corruptions (CIFAR-10-C format, "
        f"`make_c`, seed {s['dev_seed']}); mCE is the mean of the 15 corruption errors.", "",
        "| row | seeds | clean error | mCE | AdA SSIM median (10th pct.) |", "| --- | --- | --- | --- | --- |"]
    if results.get("packaged"):
        p = results["packaged"]
        lines.append(f"| packaged, not fine-tuned | – | {p['clean_error']:.2f} | {p['mce']:.2f} | – |")
    for r in results["rows"]:
        ssim = (f"{r['ada_ssim_median']:.3f} ({r['ada_ssim_p10']:.3f})" if "ada_ssim_median" in r else "–")
        lines.append(f"| {r['row']} | {len(r['seeds'])} | {_pm(r['clean_error'], r['clean_error_std'])} | "
                     f"{_pm(r['mce'], r['mce_std'])} | {ssim} |")
    lines += ["", "Paired differences (same seed: same training subset, batch order and draws), mean ± std over "
              "seeds, and the two-sided paired t-test's p; * = p < 0.05 (exceeds the seed noise):", "",
              "| comparison | Δ mCE | Δ mCE relative | p (mCE) | Δ clean error | p (clean) | per-seed Δ mCE |",
              "| --- | --- | --- | --- | --- | --- | --- |"]

    def p_of(d: dict) -> str:
        return "–" if d["p"] is None else f"{d['p']:.3f}" + ("*" if d["exceeds_noise"] else "")

    for c in results["comparisons"]:
        m, ce = c["mce"], c["clean_error"]
        if m["mean"] is None:
            continue
        lines.append(f"| {c['other']} vs {c['base']} | {_pm(m['mean'], m['std'])} | {100 * c['mce_relative']:+.1f} % | "
                     f"{p_of(m)} | {_pm(ce['mean'], ce['std'])} | {p_of(ce)} | "
                     + ", ".join(f"{d:+.2f}" for d in m["diffs"]) + " |")
    lines += ["", "Corruption errors (%), mean over seeds:", "",
              "| row | " + " | ".join(SHORT[c] for c in BENCHMARK) + " |", "|" + " --- |" * (1 + len(BENCHMARK))]
    for r in results["rows"]:
        lines.append(f"| {r['row']} | " + " | ".join(f"{r['ce'][c]:.1f}" for c in BENCHMARK) + " |")
    return "\n".join(lines)


def _machine() -> str:
    from .mini_report import machine_name

    return machine_name("cpu")  # fine-tuning runs on the CPU


def save_plot(results: dict[str, Any], path: Path) -> None:
    """Clean error and mCE per row: mean over seeds (bars), each seed (dots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, title in ((axes[0], "mce", "mCE (15 corruptions × 5 severities)"),
                           (axes[1], "clean_error", "clean error")):
        x = np.arange(len(rows))
        means = [r[key] for r in rows]
        colors = ["#999999" if r["method"] == "nominal" else "#8da0cb" if r["method"] == "augmix"
                  else "#fc8d62" if r["method"] == "ada" else "#66c2a5" for r in rows]
        ax.bar(x, means, 0.6, yerr=[r[key + "_std"] for r in rows], color=colors, capsize=3)
        for i, r in enumerate(rows):
            vals = list(r[key + "_per_seed"].values())
            ax.scatter(np.full(len(vals), i) + np.linspace(-0.15, 0.15, len(vals)), vals, s=10, color="k", zorder=3)
            ax.annotate(f"{r[key]:.2f}", (i, max(max(vals), r[key] + r[key + "_std"])), textcoords="offset points",
                        xytext=(0, 4), ha="center", fontsize=7)
        if results.get("packaged"):
            ax.axhline(results["packaged"][key], color="k", ls=":", lw=1)
            ax.text(0.99, results["packaged"][key], "packaged, not fine-tuned", fontsize=7, ha="right",
                    va="bottom", transform=ax.get_yaxis_transform())
        lo = min(min(r[key + "_per_seed"].values()) for r in rows)
        hi = max(max(max(r[key + "_per_seed"].values()), r[key] + r[key + "_std"]) for r in rows)
        if results.get("packaged"):  # keep the packaged model's line (and its label) inside the axes
            lo, hi = min(lo, results["packaged"][key]), max(hi, results["packaged"][key])
        ax.set_ylim(max(0.0, lo - 0.25 * (hi - lo) - 1), hi + 0.25 * (hi - lo) + 1)
        ax.set_xticks(x, [r["row"].replace(" + ", "\n+ ") for r in rows], fontsize=7)
        ax.set_ylabel("error (%)")
        ax.set_title(title, fontsize=9)
    s = results["settings"]
    fig.suptitle(f"Fine-tuned packaged ResNet-20: {s['subset']} images × {s['epochs']} epochs, AdA ν={s['nu']:g} "
                 f"M={s['ada_steps']} on {s['ada_share']:g} of each batch; {s['dev_limit']} held-out dev images; "
                 f"bars: mean ± std over seeds ({', '.join(map(str, s['seeds']))}), dots: one per seed\n"
                 f"{results.get('machine', _machine())}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
