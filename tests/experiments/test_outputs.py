"""Outputs that already exist, per command, refused before any work unless ``--overwrite`` (which replaces only the
command's own earlier files): finetune's folder, bench's result files, eval's ``--out``, demo's figure (its own
earlier figure is replaced), gpu-compare's result files. mini-protocol's settings check is in test_mini.py."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaaug.cli import main as cli


def test_finetune_refuses_a_foreign_folder_and_overwrite_removes_only_an_earlier_grids_files(tmp_path, capsys):
    from adaaug.experiments.finetune import main

    out = tmp_path / "ft"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    missing = str(tmp_path / "none.tar.gz")  # every run below stops at its data, after the folder check
    argv = ["--data", missing, "--dev", missing, "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "is not empty (notes.txt)" in err and "--overwrite" in err and not (out / "finetune.json").exists()
    assert main(argv + ["--overwrite"]) == 2 and "does not exist" in capsys.readouterr().err
    assert json.loads((out / "finetune.json").read_text())["command"] == "finetune"
    (out / "runs").mkdir()
    (out / "runs" / "cached.json").write_text("{}")  # as a finished run of an earlier grid
    assert main(argv + ["--epochs", "3"]) == 2  # other settings: finished runs are a keyed cache, kept
    assert "does not exist" in capsys.readouterr().err
    assert (out / "runs" / "cached.json").exists()
    assert main(argv + ["--overwrite"]) == 2
    assert sorted(p.name for p in out.iterdir()) == ["finetune.json", "notes.txt"]


def test_bench_refuses_replacing_its_result_files(tmp_path, capsys):
    out = tmp_path / "results"
    out.mkdir()
    (out / "step-unet-cpu.json").write_text("earlier")
    (out / "suite-cpu.md").write_text("earlier")
    assert cli(["bench", "--backbones", "unet", "--device", "cpu", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "step-unet-cpu.json exists" in err and "--overwrite" in err
    assert cli(["bench", "--suite", "--device", "cpu", "--out", str(out), "--no-progress"]) == 2
    assert "suite-cpu.md exists" in capsys.readouterr().err
    # with the flag the check passes (here the run stops at an unknown part, before writing)
    assert cli(["bench", "--suite", "--device", "cpu", "--out", str(out), "--parts", "nosuch", "--overwrite",
                "--no-progress"]) == 2
    assert "unknown suite parts" in capsys.readouterr().err
    assert (out / "step-unet-cpu.json").read_text() == "earlier" == (out / "suite-cpu.md").read_text()


def test_eval_refuses_an_existing_out_before_evaluating(tmp_path, capsys, monkeypatch):
    from adaaug.evaluate import command

    res = tmp_path / "res.json"
    res.write_text("earlier")
    argv = ["eval", "--weights", "resnet20", "--data", str(tmp_path), "--out", str(res), "--device", "cpu"]
    monkeypatch.setattr(command, "load_model_described", lambda *a, **k: (_ for _ in ()).throw(
        RuntimeError("reached the model")))
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert "res.json exists (an earlier evaluation's results): pass --overwrite" in err
    assert res.read_text() == "earlier"
    with pytest.raises(RuntimeError, match="reached the model"):  # the flag lets the evaluation start
        cli(argv + ["--overwrite"])
    md = tmp_path / "table.md"
    md.write_text("earlier")
    res.unlink()
    assert cli(argv + ["--markdown", str(md)]) == 2 and "table.md exists" in capsys.readouterr().err


def test_demo_replaces_its_own_figure_and_refuses_another_file(tmp_path, capsys, monkeypatch):
    import argparse

    import torch

    from adaaug.experiments import demo

    torch.manual_seed(0)
    x = torch.rand(2, 3, 8, 8)
    own, other = tmp_path / "demo.png", tmp_path / "photo.png"
    demo.save_figure(own, x, {"a": x.flip(-1)}, 2, 4.0)
    from PIL import Image

    Image.new("RGB", (4, 4)).save(other)
    assert demo.demo_figure(own) and not demo.demo_figure(other) and not demo.demo_figure(tmp_path / "none.png")
    monkeypatch.setattr(demo, "run_demo", lambda *a: (_ for _ in ()).throw(RuntimeError("reached the demo")))

    def args(out: Path, overwrite: bool = False) -> argparse.Namespace:
        return argparse.Namespace(out=str(out), backbones=["edsr"], nu=0.015, steps=1, images=2, gain=4.0, seed=0,
                                  overwrite=overwrite)

    with pytest.raises(RuntimeError, match="reached the demo"):
        demo.main(args(own))  # an earlier demo's figure: replaced without asking
    with pytest.raises(FileExistsError, match=r"photo.png exists \(not a figure of adaaug demo\): pass --overwrite"):
        demo.main(args(other))
    with pytest.raises(RuntimeError, match="reached the demo"):
        demo.main(args(other, overwrite=True))
    assert cli(["demo", "--out", str(other), "--overwrite", "--images", "0"]) == 2  # the command has the flag
    assert "--images must be in 1..10" in capsys.readouterr().err


def test_gpu_compare_refuses_replacing_its_result_files(tmp_path):
    from adaaug.experiments.gpu_compare import CompareConfig, file_tag, run

    out = tmp_path / "results"
    out.mkdir()
    tag = file_tag(("nominal", "ada"), "cpu")
    (out / f"{tag}.md").write_text("earlier")
    cfg = CompareConfig(data=str(tmp_path / "none"), dev=str(tmp_path / "none"), out=str(out),
                        work=str(tmp_path / "work"), size="tiny", device="cpu", rows=("nominal", "ada"))
    with pytest.raises(FileExistsError, match=f"{tag}.md exists.*--overwrite"):
        run(cfg)
    assert not (tmp_path / "work").exists() and (out / f"{tag}.md").read_text() == "earlier"
    with pytest.raises(FileNotFoundError):  # with the flag the run starts (and stops at its missing data)
        run(cfg, overwrite=True)
