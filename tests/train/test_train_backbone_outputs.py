"""``adaaug train-backbone``'s output folders: the run folder ``OUT/NAME`` (new or empty, ``--resume`` of the same
settings, or ``--overwrite``) and the ``--export`` weights directory (other weights kept, manifest merged, an
earlier export of the same name and tag replaced only with ``--overwrite``), all checked before training."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adaaug.cli import main as cli


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(16):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "data" / c / f"{i}.png")
    return tmp_path / "data"


def _argv(folder: Path, out: Path, *extra: str) -> list[str]:
    return ["train-backbone", "unet", "--data", str(folder), "--out", str(out), "--epochs", "1", "--batch-size", "16",
            "--threads", "1", "--no-progress", *extra]


def test_run_folder_refused_unless_resume_or_overwrite(folder, tmp_path, capsys):
    out = tmp_path / "runs"
    run = out / "unet"
    run.mkdir(parents=True)
    (run / "notes.txt").write_text("mine")
    assert cli(_argv(folder, out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not empty (notes.txt)" in err and "--overwrite" in err
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]  # nothing trained or written
    assert cli(_argv(folder, out, "--overwrite")) == 0  # a new run beside the user's file
    assert (run / "notes.txt").read_text() == "mine"
    assert json.loads((run / "config.json").read_text())["lr"] == 1e-3
    first = (run / "final_state.pt").read_bytes()
    capsys.readouterr()
    # a finished run with a checkpoint: --resume or --overwrite is named
    assert cli(_argv(folder, out)) == 2
    assert "pass --resume to continue that run, or pass --overwrite" in capsys.readouterr().err
    # --resume of other settings is refused, naming what differs
    assert cli(_argv(folder, out, "--resume", "--lr", "0.01")) == 2
    err = capsys.readouterr().err
    assert "settings differ from the checkpoint's run (--lr 0.001 → 0.01)" in err
    assert (run / "final_state.pt").read_bytes() == first
    # --overwrite starts a new run: one epoch of metrics, the new settings recorded
    assert cli(_argv(folder, out, "--lr", "0.01", "--overwrite")) == 0
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1
    assert json.loads((run / "config.json").read_text())["lr"] == 0.01
    assert (run / "notes.txt").read_text() == "mine"


def test_export_keeps_other_weights_merges_the_manifest_and_refuses_replacing_one(folder, tmp_path, capsys):
    weights = tmp_path / "weights"
    assert cli(_argv(folder, tmp_path / "a", "--export", str(weights), "--tag", "t1")) == 0
    assert cli(_argv(folder, tmp_path / "b", "--export", str(weights), "--tag", "t2")) == 0
    manifest = json.loads((weights / "manifest.json").read_text())
    assert sorted(manifest["files"]["unet"]) == ["t1", "t2"]  # merged, by design
    assert {p.name for p in weights.iterdir()} >= {"unet-t1.safetensors", "unet-t1.json", "unet-t2.safetensors"}
    t1 = (weights / "unet-t1.safetensors").read_bytes()
    capsys.readouterr()
    # the same name and tag again: refused before training (no run folder is made)
    assert cli(_argv(folder, tmp_path / "c", "--export", str(weights), "--tag", "t1")) == 2
    err = capsys.readouterr().err
    assert "unet-t1.safetensors" in err and "--overwrite" in err and "--tag" in err
    assert not (tmp_path / "c").exists() and (weights / "unet-t1.safetensors").read_bytes() == t1
    assert cli(_argv(folder, tmp_path / "c", "--export", str(weights), "--tag", "t1", "--lr", "0.01",
                     "--overwrite")) == 0
    assert (weights / "unet-t1.safetensors").read_bytes() != t1
    assert sorted(json.loads((weights / "manifest.json").read_text())["files"]["unet"]) == ["t1", "t2"]
    # a non-empty folder that is not a weights directory
    other = tmp_path / "docs"
    other.mkdir()
    (other / "report.txt").write_text("mine")
    assert cli(_argv(folder, tmp_path / "d", "--export", str(other))) == 2
    assert "is not empty (report.txt)" in capsys.readouterr().err and not (tmp_path / "d").exists()
