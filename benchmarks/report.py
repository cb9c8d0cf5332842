"""Collect benchmarks/results/*.json into the markdown tables of benchmarks/README.md (printed).

    python benchmarks/report.py > /tmp/tables.md
"""
from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def perturbation_table(records: list[dict]) -> str:
    lines = ["| backbone | device | batch | chunk | vmap s | loop s | shared s | loop/vmap | vmap/shared | "
             "full call s | sum of parts s | date | commit |", "|" + " --- |" * 13]
    for r in records:
        s, ra = r["seconds"], r["ratios"]
        loop = s.get("loop per-example fwd+bwd")
        lines.append(
            f"| {r['args']['backbone']} | {r['device_name']}, {r['threads']} threads | {r['args']['batch_size']} | "
            f"{r['args']['chunk_size']} | {s['vmap per-example fwd+bwd']:.2f} | {loop if loop is None else f'{loop:.2f}'} | "
            f"{s['shared-weight fwd+bwd']:.2f} | "
            f"{ra.get('loop / vmap (target ≥ 3 CPU, ≥ 20 CUDA)', float('nan')):.2f}× | "
            f"{ra['vmap / shared (target ≤ 1.5)']:.2f}× | {s['ada(x, y) full call']:.2f} | "
            f"{s['sum of parts']:.2f} | {r['date']} | {r['commit']} |")
    return "\n".join(lines)


def step_table(records: list[dict]) -> str:
    pct = lambda r, k: f"{100 * r[k]:.1f}" if k in r else "–"
    ratio = lambda r, k: f"{r[k]:.2f}" if k in r else "–"
    lines = ["| backbone | machine | batch | M | nominal step s | AdA step s | floor s | AdA/floor | AdA/nominal | "
             "projection % | line search % | init % | final forward % | per-example/shared backbone pass | "
             "AdA/per-example floor | date | commit |", "|" + " --- |" * 17]
    for r in records:
        lines.append(
            f"| {r['backbone']} | {r['machine']} | {r['batch_size']} | {r['steps']} | {r['nominal_step_s']:.3f} | "
            f"{r['ada_step_s']:.2f} | {r['floor_s']:.2f} | {r['ada_over_floor']:.2f} | {r['ada_over_nominal']:.1f} | "
            f"{pct(r, 'share_projection_step')} | {pct(r, 'share_line_search')} | {pct(r, 'share_random_init')} | "
            f"{pct(r, 'share_final_forward')} | {ratio(r, 'per_example_over_shared')} | "
            f"{ratio(r, 'ada_over_per_example_floor')} | {r['date']} | {r['commit']} |")
    mem = ["| backbone | chunk size | batch | peak MB |", "| --- | --- | --- | --- |"]
    for r in records:
        for m in r.get("memory", {}).values():
            mem.append(f"| {r['backbone']} | {m['chunk_size']} | {m['batch']} | {m['peak_mb']:.0f} |")
    return "\n".join(lines) + "\n\nPeak memory added by one `ada(x, y)` call:\n\n" + "\n".join(mem)


def per_example_table(records: list[dict]) -> str:
    """bench_per_example.py: every implementation's CPU time over the shared pass, per backbone."""
    names = ["shared/nano", "vmap", "direct", "direct+storage", "im2col", "channels_last", "compile"]
    shown = [n for n in names if any(n in r["over_shared"] for r in records)]
    lines = ["| backbone | shared s | " + " | ".join(f"{n} /shared" for n in shown)
             + " | loop/batched before → after | load | commit |", "|" + " --- |" * (len(shown) + 5)]
    for r in records:
        o, lb = r["over_shared"], r.get("loop_over_batched", {})
        loop = f"{lb['before']:.2f} → {lb['after']:.2f}" if "before" in lb else "–"
        lines.append(f"| {r['backbone']} | {r['cpu_s']['shared']:.3f} | "
                     + " | ".join(f"{o[n]:.2f}" if n in o else "–" for n in shown)
                     + f" | {loop} | {r['load_1min'][0]:.1f}–{r['load_1min'][1]:.1f} | {r['commit']} |")
    return "\n".join(lines)


def augment_table(record: dict) -> str:
    meta = record["meta"]
    lines = [f"{meta['device_name']} {meta['device']}, {meta['threads']} thread(s), torch {meta['torch']}",
             "", "| augmentation | batch | s / batch | images / s |", "| --- | --- | --- | --- |"]
    for r in record["results"]:
        lines.append(f"| {r['augmentation']} | {r['batch']} | {r['median_s']:.3f} | {r['images_per_s']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    load = lambda pattern: [json.loads(p.read_text()) for p in sorted(RESULTS.glob(pattern))]
    print("### Per-example perturbation (bench_perturbation.py)\n")
    print(perturbation_table(load("perturbation-*.json")))
    print("\n### Per-example implementations (bench_per_example.py; CPU time over the shared pass)\n")
    print(per_example_table(load("per-example-*.json")))
    print("\n### A training step (bench_step.py / adaaug bench)\n")
    print(step_table(load("step-*.json")))
    for rec in load("augment-*.json"):
        print("\n### Companion augmentations (bench_augment.py)\n")
        print(augment_table(rec))


if __name__ == "__main__":
    main()
