"""Markdown tables of ``adaaug eval``'s results (:func:`markdown_report`), with how many images and
classes each number was scored on; a -C set made by ``adaaug make-c`` is named by its severity table and
image size (:func:`c_set_description`, :func:`c_set_title`)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

from ..corruptions import BENCHMARK, EXTRA
from ..runtime.markdown import table

#: The severity tables ``adaaug make-c`` records in ``make_c.json`` (``"params"``), as the reports name them.
SEVERITY_TABLES = {"cifar": "CIFAR-10-C", "imagenet": "ImageNet-C"}

SHORT = {"gaussian_noise": "Gauss", "shot_noise": "Shot", "impulse_noise": "Impulse", "defocus_blur": "Defocus",
         "glass_blur": "Glass", "motion_blur": "Motion", "zoom_blur": "Zoom", "snow": "Snow", "frost": "Frost",
         "fog": "Fog", "brightness": "Bright", "contrast": "Contrast", "elastic_transform": "Elastic",
         "pixelate": "Pixel", "jpeg_compression": "JPEG", "speckle_noise": "Speckle",
         "gaussian_blur": "Gauss. blur", "spatter": "Spatter", "saturate": "Saturate"}


def eps_label(norm: str, key: str | float) -> str:
    """An attack radius as people write it: ℓ∞ radii that are whole uint8 levels as ``k/255`` (the JSON key
    ``"0.00392157"`` → ``1/255``), everything else with up to 6 significant digits (``"0.5"``)."""
    value = float(key)
    levels = value * 255
    if norm == "Linf" and round(levels) >= 1 and abs(levels - round(levels)) < 1e-4 * max(levels, 1):
        return f"{round(levels)}/255"
    return f"{value:.6g}"


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def _count(v) -> str:
    return "–" if v is None else f"{v:,}"


def scored_line(res: Mapping) -> str:
    """``Scored: N images of K classes (...)`` for a corruption result; empty when it records no counts."""
    if "n" not in res:
        return ""
    per = sorted({n for ns in res.get("n_per_set", {}).values() for n in ns})
    each = f"; {per[0]:,} per corruption and severity" if len(per) == 1 else (
        f"; {per[0]:,}–{per[-1]:,} per corruption and severity" if per else "")
    if "subset" in res and len(per) == 1:
        each = (f"; the same {per[0]:,} images at every corruption and severity (listed in the JSON's \"subset\""
                + (f"; {res['left_out']:,} images left out because some severity lacks them" if res.get("left_out")
                   else "") + ")")
    return f"Scored: {_count(res['n'])} images of {_count(res.get('classes'))} classes{each}."


def read_lines(res: Mapping) -> list[str]:
    """How a -C set's images were read (preprocessing, storage) and the files its manifest made it ignore."""
    lines = []
    if res.get("preprocessing"):
        lines.append(f"Images: {res['preprocessing']}; {res.get('storage', 'storage not recorded')}.")
    if res.get("ignored"):
        lines.append(f"**Not read:** {', '.join(res['ignored'])} (not listed in make_c.json: another run's files).")
    return lines


def _table(title: str, rows: list[tuple[str, float | None, Mapping]], key: str) -> list[str]:
    cols = [c for c in BENCHMARK if any(c in r[2].get(key, {}) for r in rows)]
    lines = [f"### {title}", ""] + table(
        ["model", "clean error", "mCE"] + [SHORT[c] for c in cols],
        ([name, _fmt(clean), _fmt(res.get("mce"))] + [_fmt(res.get(key, {}).get(c)) for c in cols]
         for name, clean, res in rows))
    extra_cols = [c for c in EXTRA if any(c in r[2].get("extra", {}) for r in rows)]
    if extra_cols:
        lines += ["", "Extra corruptions (not in mCE), error %:", ""]
        lines += table(["model"] + [SHORT[c] for c in extra_cols],
                       ([n] + [_fmt(r.get("extra", {}).get(c)) for c in extra_cols] for n, _, r in rows))
    scored = scored_line(rows[0][2]) if rows else ""
    read = read_lines(rows[0][2]) if rows else []
    return lines + ([] if not scored else ["", scored]) + read + [""]


def c_set_title(key: str, res: Mapping) -> str:
    """The heading of a -C set's table: the set named by what made it (``res["set"]``, from the ``make_c.json``
    that ``adaaug make-c`` writes: its severity table and image size), else by the option that passed it
    (``cifar10_c``: CIFAR-10-C, ``imagenet_c``: ImageNet-C)."""
    measure = "error %, mCE = mean of the 15" if key == "cifar10_c" else "CE normalised by AlexNet, %"
    made = res.get("set") or {}
    if made.get("severities") in SEVERITY_TABLES:
        size = f", {made['height']}×{made['width']} images" if made.get("height") and made.get("width") else ""
        source = f" from {made['source']}" if made.get("source") else ""
        return (f"-C set made by adaaug make-c{source} ({SEVERITY_TABLES[made['severities']]} severities{size}; "
                f"{measure})")
    return f"{'CIFAR-10-C' if key == 'cifar10_c' else 'ImageNet-C'} ({measure})"


def c_set_description(root: str | os.PathLike) -> dict | None:
    """What made the -C directory ``root``, from its ``make_c.json`` (``adaaug make-c``): ``{"severities":
    "cifar" | "imagenet", "height", "width", "source"}`` (the source's folder name); None without one."""
    path = Path(root) / "make_c.json"
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("params") not in SEVERITY_TABLES:
        return None
    source = str(meta.get("source") or "")
    name = source.split(":", 1)[0] + ":" if source.startswith("cifar10:") else ""
    return {"severities": meta["params"], "height": meta.get("height"), "width": meta.get("width"),
            "source": (name + Path(source.split(":", 1)[-1]).name) if source else None}


def markdown_report(results: Mapping, label: str = "model") -> str:
    """Markdown tables shaped like the paper's Tables 1, 4 and 8: clean error, mCE, then per-corruption errors.

    Each set's table or line says how many images (``n``) and classes (``classes``) were scored.
    """
    clean_res = results.get("clean", {})
    clean = clean_res.get("error")
    out: list[str] = []
    if "n" in clean_res:
        how = f" Images: {clean_res['preprocessing']}." if clean_res.get("preprocessing") else ""
        out += [f"Clean test set: {_count(clean_res['n'])} images of {_count(clean_res.get('classes'))} classes, "
                f"error {_fmt(clean)} %.{how}", ""]
    skipped = results.get("skipped") or {}
    if skipped.get("count"):
        shown = ", ".join(skipped["files"][:3]) + (", ..." if skipped["count"] > 3 else "")
        out += [f"Skipped {skipped['count']:,} unreadable image file(s) (--skip-bad-images): {shown}.", ""]
    outputs = results.get("model", {}).get("outputs")
    for key, ce_key in (("cifar10_c", "ce"), ("imagenet_c", "normalized_ce")):
        if key in results:
            title = c_set_title(key, results[key])
            if key == "imagenet_c" and outputs is not None and outputs != 1000:
                out += [f"**Warning:** the model has {outputs} outputs, not ImageNet's 1000 classes: the AlexNet "
                        f"normalisation below assumes ImageNet's, so this mCE is not comparable with published "
                        f"ImageNet-C numbers.", ""]
            out += _table(title, [(label, clean, results[key])], ce_key)
    if "param_noise" in results:
        noise = results["param_noise"]
        ce_key = "normalized_ce" if any("normalized_ce" in r for r in noise["results"].values()) else "ce"
        rows = [(f"{label}, η = {eta}", r["clean_error"], r) for eta, r in noise["results"].items()]
        out += _table(f"Parameter noise (Table 4; {noise['samples']} samples, error %)", rows, ce_key)
    if not any(line.startswith("###") for line in out):
        out += [f"### {label}", "", f"clean error: {_fmt(clean)}", ""]
    if results.get("shift"):
        out += ["### Distribution shift (accuracy %)", ""]
        out += table(["set", "accuracy", "images", "classes"],
                     ([k, _fmt(v["accuracy"]), _count(v["n"]), _count(v.get("classes"))]
                      for k, v in results["shift"].items())) + [""]
        out += [f"Images of {k}: {v['preprocessing']}." for k, v in results["shift"].items() if v.get("preprocessing")]
        out += [""] if out[-1] else []
    if "robust" in results:
        r = results["robust"]
        cols = [("Linf", e) for e in r["Linf"]] + [("L2", e) for e in r["L2"]]
        out += [f"### Robust accuracy (%; {r['method']}, {r['n']} images)", ""]
        out += table(["clean"] + [f"ℓ{'∞' if n == 'Linf' else '2'} ε={eps_label(n, e)}" for n, e in cols],
                     [[_fmt(r.get("clean_accuracy"))] + [_fmt(r[n][e]) for n, e in cols]]) + [""]
    return "\n".join(out)
