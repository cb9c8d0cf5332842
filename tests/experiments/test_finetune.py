"""The fine-tuning protocol (adaaug.experiments.finetune): a tiny grid end to end, its cache, the AdA share
option, and the paired-difference statistics against hand calculations. Generates its own images."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from adaaug.experiments.finetune import FinetuneConfig, finetune, main, paired, row_name, run_grid


def _image_folder(root: Path, per_class: int, seed: int) -> Path:
    """An ImageFolder tree of 32×32 PNGs: 10 classes, each a coloured square on noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(10):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            img = rng.integers(0, 80, (32, 32, 3), dtype=np.uint8)
            top, left = rng.integers(0, 16, 2)
            img[top:top + 16, left:left + 16] = (25 * c, 255 - 25 * c, 120)
            Image.fromarray(img).save(root / f"class{c}" / f"{i}.png")
    return root


def test_paired_differences_match_hand_calculation() -> None:
    a = {0: 30.0, 1: 31.0, 2: 29.0}
    b = {0: 27.0, 1: 28.5, 2: 26.0, 3: 10.0}  # seed 3 has no partner: ignored
    p = paired(a, b)
    assert p["seeds"] == [0, 1, 2] and p["diffs"] == [-3.0, -2.5, -3.0]
    std = np.sqrt(((1 / 6) ** 2 * 2 + (1 / 3) ** 2) / 2)
    assert p["mean"] == pytest.approx(-8.5 / 3) and p["std"] == pytest.approx(std)
    t = (-8.5 / 3) / (std / np.sqrt(3))
    assert p["t"] == pytest.approx(t)
    assert p["p"] == pytest.approx(1 - abs(t) / np.sqrt(t * t + 2))  # Student's t with 2 dof, two-sided
    assert p["exceeds_noise"] and p["same_sign"]
    weak = paired(a, {0: 29.0, 1: 30.5, 2: 27.0})  # diffs −1, −0.5, −2: same sign, t = −2.646, p = 0.118
    assert weak["same_sign"] and weak["p"] == pytest.approx(0.1181, abs=1e-4) and not weak["exceeds_noise"]
    assert not paired(a, {0: 29.0, 1: 32.0, 2: 28.0})["same_sign"]
    single = paired({0: 1.0}, {0: 0.0})  # one seed cannot exceed the noise
    assert single["p"] is None and not single["exceeds_noise"]


def test_ada_share_corrupts_that_many_images_per_batch() -> None:
    from adaaug.weights import load_classifier

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (20,), generator=g)
    model = load_classifier()
    before = [p.detach().clone() for p in model.parameters()]
    stats = finetune(model, images, labels, method="ada", backbone="edsr-down", seed=0, epochs=2, batch_size=8,
                     lr=0.01, weight_decay=5e-4, ada_steps=1, nu=0.015, ada_share=0.25, jsd=False, chunk_size=8)
    # batches of 8, 8, 4 → round(0.25·B) = 2, 2, 1 AdA images per epoch
    assert stats["ada_images"] == 2 * (2 + 2 + 1)
    assert 0 < stats["ada_ssim_p10"] <= stats["ada_ssim_median"] <= 1
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))  # it was fine-tuned
    assert not model.training


def test_tiny_grid_table_cache_and_determinism(tmp_path: Path) -> None:
    train = _image_folder(tmp_path / "train", per_class=3, seed=0)
    dev = _image_folder(tmp_path / "dev", per_class=2, seed=1)
    out = tmp_path / "out"
    argv = ["--data", str(train), "--dev", str(dev), "--out", str(out), "--methods", "nominal", "ada", "augmix",
            "--backbones", "edsr-down", "--seeds", "0", "1", "--subset", "16", "--epochs", "1", "--batch-size", "8",
            "--ada-steps", "1", "--ada-share", "0.5", "--dev-limit", "12"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert [r["row"] for r in results["rows"]] == ["nominal", "ada (edsr-down)", "augmix"]
    for r in results["rows"]:
        per_seed = list(r["mce_per_seed"].values())
        assert len(per_seed) == 2 and r["mce"] == pytest.approx(np.mean(per_seed))
        assert r["mce_std"] == pytest.approx(np.std(per_seed, ddof=1))
        assert 0 <= r["clean_error"] <= 100 and r["ce"].keys() == set(results["rows"][0]["ce"])
        assert len(r["ce"]) == 15
    comp = {(c["base"], c["other"]): c for c in results["comparisons"]}
    ada, nominal = results["rows"][1], results["rows"][0]
    diffs = [ada["mce_per_seed"][s] - nominal["mce_per_seed"][s] for s in ("0", "1")]
    assert comp[("nominal", "ada (edsr-down)")]["mce"]["diffs"] == pytest.approx(diffs)
    assert results["settings"]["data"] == "train"  # no local paths in what is published
    md = (out / "results.md").read_text()
    assert "ada (edsr-down) vs nominal" in md and "0.5 of each batch" in md
    assert (out / "finetune.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a rerun reuses every cached run (files untouched) and gives the same table
    runs = sorted((out / "runs").glob("*.json"))
    stamps = [p.stat().st_mtime_ns for p in runs]
    assert main(argv) == 0
    assert [p.stat().st_mtime_ns for p in runs] == stamps
    assert (out / "results.md").read_text() == md

    # a fresh run of one cell repeats bitwise (CPU, seeded)
    fresh = FinetuneConfig(data=str(train), dev=str(dev), out=str(tmp_path / "again"), methods=("ada",),
                           backbones=("edsr-down",), seeds=(1,), subset=16, epochs=1, batch_size=8, ada_steps=1,
                           ada_share=0.5, dev_limit=12)
    again = run_grid(fresh)
    assert again["rows"][0]["mce"] == ada["mce_per_seed"]["1"]
    assert again["rows"][0]["clean_error"] == ada["clean_error_per_seed"]["1"]


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    base = dict(data="d", dev="d", out="o")
    with pytest.raises(ValueError, match="ada_share"):
        FinetuneConfig(**base, ada_share=0.0).validate()
    with pytest.raises(ValueError, match="methods"):
        FinetuneConfig(**base, methods=("mixup",)).validate()
    with pytest.raises(ValueError, match="subset"):
        FinetuneConfig(**base, subset=0).validate()
    assert main(["--data", str(tmp_path / "none.tar.gz"), "--dev", "x", "--out", str(tmp_path / "o")]) == 2
    assert row_name("ada+augmix", "edsr") == "ada (edsr) + augmix" and row_name("nominal", None) == "nominal"


def test_sets_with_other_classes_are_refused_before_any_work(tmp_path: Path, capsys) -> None:
    # the packaged ResNet-20 has 10 outputs: --data needs 10 classes, --dev some of them (checked up front)
    import re
    import shutil

    from adaaug.cli import main as cli

    train = _image_folder(tmp_path / "train", per_class=1, seed=0)
    dev = _image_folder(tmp_path / "dev", per_class=1, seed=1)
    (dev / "class9").rename(dev / "zebra")
    small = tmp_path / "small"
    (small / "a").mkdir(parents=True)
    shutil.copy(train / "class0" / "0.png", small / "a" / "0.png")
    for data, dev_set, needle in ((train, dev, r"classes that --data .* lacks \(zebra\)"),
                                  (small, train, "has 1 classes; finetune starts from the packaged CIFAR-10")):
        out = tmp_path / f"out-{data.name}"
        assert cli(["finetune", "--data", str(data), "--dev", str(dev_set), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert re.search(needle, err), err
        assert not (out / "runs").exists() and not (out / "clean").exists()
