"""Markdown tables of ``adaaug eval``'s results (:func:`markdown_report`), with how many images and
classes each number was scored on."""
from __future__ import annotations

from typing import Mapping

from ..corruptions import BENCHMARK, EXTRA

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
    lines = [f"### {title}", "", "| model | clean error | mCE | " + " | ".join(SHORT[c] for c in cols) + " |",
             "|" + " --- |" * (3 + len(cols))]
    for name, clean, res in rows:
        vals = [_fmt(res.get(key, {}).get(c)) for c in cols]
        lines.append(f"| {name} | {_fmt(clean)} | {_fmt(res.get('mce'))} | " + " | ".join(vals) + " |")
    extra_cols = [c for c in EXTRA if any(c in r[2].get("extra", {}) for r in rows)]
    if extra_cols:
        lines += ["", "Extra corruptions (not in mCE), error %:", "",
                  "| model | " + " | ".join(SHORT[c] for c in extra_cols) + " |",
                  "|" + " --- |" * (1 + len(extra_cols))]
        lines += [f"| {n} | " + " | ".join(_fmt(r.get("extra", {}).get(c)) for c in extra_cols) + " |"
                  for n, _, r in rows]
    scored = scored_line(rows[0][2]) if rows else ""
    read = read_lines(rows[0][2]) if rows else []
    return lines + ([] if not scored else ["", scored]) + read + [""]


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
    outputs = results.get("model", {}).get("outputs")
    for key, title, ce_key in (("cifar10_c", "CIFAR-10-C (error %, mCE = mean of the 15)", "ce"),
                               ("imagenet_c", "ImageNet-C (CE normalised by AlexNet, %)", "normalized_ce")):
        if key in results:
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
        out += ["### Distribution shift (accuracy %)", "", "| set | accuracy | images | classes |",
                "| --- | --- | --- | --- |"]
        out += [f"| {k} | {_fmt(v['accuracy'])} | {_count(v['n'])} | {_count(v.get('classes'))} |"
                for k, v in results["shift"].items()] + [""]
        out += [f"Images of {k}: {v['preprocessing']}." for k, v in results["shift"].items() if v.get("preprocessing")]
        out += [""] if out[-1] else []
    if "robust" in results:
        r = results["robust"]
        cols = [("Linf", e) for e in r["Linf"]] + [("L2", e) for e in r["L2"]]
        out += [f"### Robust accuracy (%; {r['method']}, {r['n']} images)", "",
                "| clean | " + " | ".join(f"ℓ{'∞' if n == 'Linf' else '2'} ε={eps_label(n, e)}" for n, e in cols)
                + " |",
                "|" + " --- |" * (1 + len(cols)),
                f"| {_fmt(r.get('clean_accuracy'))} | " + " | ".join(_fmt(r[n][e]) for n, e in cols) + " |", ""]
    return "\n".join(out)
