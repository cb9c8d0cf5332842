"""Results of ``adaaug gpu-compare`` (:mod:`adaaug.experiments.gpu_compare`): file names, the machine, the table."""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

DEFAULT_ROWS = ("nominal", "ada", "augmix", "ada+augmix")
GOALS = "nominal clean accuracy ≥ 92 %; AdA mCE ≥ 25 % below nominal with clean error within 2 points; " \
        "AdA+AugMix mCE below AugMix's"


def file_tag(rows: tuple[str, ...], device: str) -> str:
    """``compare-<device>-<rows>``: letters, digits, '-' and '_' only."""
    rows_tag = "all4" if tuple(rows) == DEFAULT_ROWS else "_".join(r.replace("+", "-") for r in rows)
    return f"compare-{device}-{rows_tag}"


def environment(device) -> dict[str, Any]:
    import torch

    from ..runtime.provenance import source_commit

    commit = source_commit()
    env = {"torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
           "cpus": os.cpu_count(), "commit": commit or "unknown", "date": time.strftime("%Y-%m-%d %H:%M")}
    if device.type == "cuda":
        env.update(device_name=torch.cuda.get_device_name(device), cuda=torch.version.cuda)
    else:
        env["device_name"] = f"{platform.machine()} CPU, {torch.get_num_threads()} thread(s)"
    return env


def markdown(results: dict[str, Any]) -> str:
    """The results as a markdown table with the goals checked."""
    s, env, rows = results["settings"], results["environment"], results["rows"]
    head = [f"## CIFAR-10 comparison ({s['size']} size) on {env.get('device_name')}", ""]
    if not results.get("meaningful"):
        head += ["**Not meaningful:** a rehearsal at a tiny size (or off a GPU); the figures only show "
                 "that the pipeline runs.", ""]
    r = results.get("recipe", {})
    weights = f" (weights {Path(s['backbone_weights']).name})" if s.get("backbone_weights") else ""
    head += [f"ResNet-9 (Page's fast recipe), {results['train_images']} training images × {r.get('epochs')} "
             f"epochs, batch {r.get('batch_size')}; AdA: {s['backbone']}{weights}, M = {s['ada_steps']}, "
             f"ν = {s['nu']}; "
             f"{results['dev_images']} dev images, 15 corruptions × 5 severities; one seed. "
             f"torch {env['torch']}, commit {env['commit']}, {env['date']}.", ""]
    if "calibration" in results:
        head += [f"Plan: {results['calibration']['plan']}.", ""]
    lines = ["| row | clean error % | mCE % | mCE vs nominal | train s | steps | AdA SSIM median |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    nominal = rows.get("nominal", {}).get("mce")
    for name, row in rows.items():
        rel = f"{100 * (row['mce'] / nominal - 1):+.1f} %" if nominal and row.get("mce") is not None else "–"
        steps = f"{row['steps']}/{row['steps_planned']}" + (" (stopped at the deadline)" if "stopped_at_step" in row
                                                             else "")
        ssim = f"{row['ada_ssim_median']:.3f}" if "ada_ssim_median" in row else "–"
        lines.append(f"| {name} | {row['clean_error']:.2f} | {row['mce']:.2f} | {rel} | {row['train_s']:.0f} | "
                     f"{steps} | {ssim} |")
    tail = ["", f"Goals: {GOALS}."]
    if "error" in results:
        tail.append(f"The run stopped with an error: {results['error']}")
    return "\n".join(head + lines + tail)
