"""`adaaug mini-protocol`: a tiny end-to-end run (train → make-c → evaluate → table and figure).

CPU and tiny: 200 training images, 1 epoch, nominal and AdA (one step of an untrained U-Net, the
smallest backbone), 20 dev images read from a .tar.gz; both sets are generated (tests/conftest.py).
"""
from __future__ import annotations

import json
import platform
import tarfile
from pathlib import Path

import pytest

from adaaug.cli import main as cli
from adaaug.corruptions import BENCHMARK
from adaaug.experiments.mini import SHORT, MiniConfig, estimate_seconds, markdown_table

COLUMNS = ["method", "clean error", "mCE", "mCE − clean"] + [SHORT[c] for c in BENCHMARK]


def _table(md: str) -> list[list[str]]:
    rows = [line for line in md.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in rows]


def test_tiny_run_writes_table_and_figure(tmp_path: Path, cifar_train_subset: Path, cifar_dev_subset: Path,
                                         capsys) -> None:
    archive = tmp_path / "dev.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(cifar_dev_subset, arcname="test")  # the archive layout <split>/<class>/<image>
    out = tmp_path / "mini"
    argv = ["mini-protocol", "--data", str(cifar_train_subset), "--dev", str(archive), "--out", str(out),
            "--subset", "200", "--epochs", "1", "--methods", "nominal", "ada", "--dev-limit", "20",
            "--backbone", "unet", "--backbone-weights", "none", "--ada-steps", "1", "--seed", "0"]
    assert cli(argv + ["--jobs", "1"]) == 0
    for name in ("results.json", "results.md", "mce.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "mce.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = _table((out / "results.md").read_text())
    assert table[0] == COLUMNS
    assert [r[0] for r in table[2:]] == ["nominal", "ada"]
    for row in table[2:]:
        assert len(row) == len(COLUMNS)
        assert all(0.0 <= float(v) <= 100.0 for v in row[1:3] + row[4:])
        assert float(row[3]) == pytest.approx(float(row[2]) - float(row[1]), abs=0.011)
    results = json.loads((out / "results.json").read_text())
    assert results["train_images"] == 200 and results["dev_images"] == 20
    assert results["machine"].startswith(f"{platform.machine()} CPU (") and "torch" in results["machine"]
    for row in results["rows"]:
        assert set(row["ce"]) == set(BENCHMARK) and all(len(e) == 5 for e in row["errors"].values())
        assert row["mce"] == pytest.approx(sum(row["ce"].values()) / 15)
    assert len(list((out / "cifar10-c").glob("*.npy"))) == 16  # 15 corruptions + labels

    # a rerun (here through two worker processes) reuses the trained models and the corruption set,
    # and gives the same table
    before = (out / "results.md").read_text()
    mtime = (out / "runs" / "ada" / "final.safetensors").stat().st_mtime_ns
    assert cli(argv + ["--jobs", "2"]) == 0
    assert (out / "results.md").read_text() == before
    assert (out / "runs" / "ada" / "final.safetensors").stat().st_mtime_ns == mtime

    # other settings into the same folder are refused before any work, naming what differs and --overwrite,
    # which replaces the earlier run's files and keeps the others (the run then stops at its missing data)
    (out / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert cli(argv + ["--jobs", "1", "--epochs", "2"]) == 2
    err = capsys.readouterr().err
    assert "holds a mini-protocol run with other settings (epochs: 1 → 2)" in err and "--overwrite" in err
    assert (out / "runs" / "ada" / "final.safetensors").stat().st_mtime_ns == mtime
    assert (out / "results.md").read_text() == before
    assert cli(argv + ["--epochs", "2", "--data", str(tmp_path / "none"), "--overwrite"]) == 2
    assert not any((out / n).exists() for n in ("runs", "clean", "cifar10-c", "results.json", "results.md", "mce.png"))
    assert (out / "notes.txt").read_text() == "mine"  # (data/ holds the new run's extracted dev archive)
    assert json.loads((out / "mini_protocol.json").read_text())["settings"]["epochs"] == 2


def test_a_dev_set_with_classes_the_training_set_lacks_is_refused_before_training(
        tmp_path: Path, cifar_train_subset: Path, cifar_dev_subset: Path, capsys) -> None:
    # before: the models were trained, then scoring failed with advice about options mini-protocol lacks
    import shutil

    dev = tmp_path / "dev"
    shutil.copytree(cifar_dev_subset, dev)
    (dev / "truck").rename(dev / "zebra")
    out = tmp_path / "mini"
    argv = ["mini-protocol", "--data", str(cifar_train_subset), "--dev", str(dev), "--out", str(out),
            "--subset", "200", "--epochs", "1", "--methods", "nominal", "--dev-limit", "20", "--jobs", "1"]
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--dev" in err[0] and "lacks (zebra)" in err[0] and "--classes" not in err[0], err
    assert not (out / "runs").exists() and not (out / "cifar10-c").exists()


def test_a_non_empty_folder_that_is_not_a_mini_protocol_run_is_refused(tmp_path: Path, capsys) -> None:
    out = tmp_path / "mine"
    (out / "runs").mkdir(parents=True)  # e.g. a finetune folder, or one written before mini_protocol.json
    argv = ["mini-protocol", "--data", str(tmp_path / "none"), "--dev", str(tmp_path / "none"), "--out", str(out)]
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert "is not empty (runs)" in err and "--overwrite" in err
    assert cli(argv + ["--overwrite"]) == 2
    assert "holds runs, which no mini_protocol.json there lists" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["runs"]


def test_table_marks_missing_values() -> None:
    row = {"method": "nominal", "clean_error": 12.345, "mce": None, "ce": {"gaussian_noise": 50.0}}
    table = _table(markdown_table([row]))
    assert table[0] == COLUMNS
    assert table[2][:5] == ["nominal", "12.35", "–", "–", "50.00"] and table[2][5:] == ["–"] * 14


def test_the_report_names_the_corruptions_it_scored() -> None:
    # before: "CIFAR-10-C's 15 corruptions" whatever --corruptions chose
    from adaaug.experiments.mini_report import report

    settings = {**MiniConfig(data="train", dev="dev", out="o").__dict__}
    results = {"settings": settings, "train_images": 10, "dev_images": 20, "dev_classes": 10, "paper_mce": {},
               "rows": [{"method": "nominal", "clean_error": 10.0, "mce": None, "ce": {"fog": 30.0}}]}
    settings["corruptions"] = ["gaussian_noise", "fog"]
    text = report(results)
    assert "2 of CIFAR-10-C's corruptions, Gauss, Fog, at its severities 1–5" in text and "15 corruptions" not in text
    assert "mCE needs all 15 benchmark corruptions" in text
    settings["corruptions"] = list(BENCHMARK)
    assert "CIFAR-10-C's 15 corruptions at its severities 1–5" in report(results)


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--methods"):
        MiniConfig(data="d", dev="d", out="o", methods=("nominal", "mixup")).validate()
    with pytest.raises(ValueError, match="--corruptions"):
        MiniConfig(data="d", dev="d", out="o", corruptions=("saturate",)).validate()
    assert cli(["mini-protocol", "--data", str(tmp_path / "none.tar.gz"), "--dev", "x", "--out", str(tmp_path)]) == 2


def test_default_size_is_estimated_under_an_hour() -> None:
    """The defaults were chosen from throughputs measured on 2 shared cores (``RATES``)."""
    cfg = MiniConfig(data="d", dev="d", out="o")
    assert estimate_seconds(cfg, cfg.subset, cfg.dev_limit) < 3600
