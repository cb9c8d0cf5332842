"""``adaaug train --out`` that already holds something: refused (naming ``--resume`` or ``--overwrite``) before any
work, or with ``--overwrite`` the earlier run's files replaced and every other file kept."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaaug.cli import main as cli_main
from adaaug.train.config import ConfigError, TrainConfig
from adaaug.train.loop import train
from adaaug.train.run_folder import RUN_FILES, check_run_dir



def tiny(data: Path, out: Path, **overrides) -> TrainConfig:
    """resnet20, batch 128, 1 epoch on the CPU (as test_train.tiny)."""
    return TrainConfig(**{**dict(data=str(data), out=str(out), arch="resnet20", epochs=1, batch_size=128,
                                 warmup_epochs=0, progress=False, device="cpu"), **overrides})


def _train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--data", str(data), "--out", str(out), "--arch", "resnet20", "--epochs", "1", "--batch-size",
            "128", "--warmup-epochs", "0", "--subset", "128", "--device", "cpu", "--no-progress", *extra]


def test_a_non_empty_out_without_a_checkpoint_is_refused_naming_overwrite(cifar_train_subset, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert cli_main(_train_args(cifar_train_subset, out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not empty (notes.txt)" in err and "--overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # nothing written
    # --resume without a checkpoint does not write into it either
    assert cli_main(_train_args(cifar_train_subset, out, "--resume")) == 2
    err = capsys.readouterr().err
    assert "holds no checkpoint.pt" in err and "drop --resume and pass --overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_check_run_dir_cases(tmp_path):
    out = tmp_path / "run"
    check_run_dir(out, resume=False, overwrite=False)  # new
    out.mkdir()
    check_run_dir(out, resume=False, overwrite=False)  # empty
    (out / "checkpoint.pt").write_bytes(b"x")
    with pytest.raises(ConfigError, match="checkpoint.pt exists: pass --resume to continue that run, --overwrite"):
        check_run_dir(out, resume=False, overwrite=False)
    check_run_dir(out, resume=True, overwrite=False)
    check_run_dir(out, resume=False, overwrite=True)
    with pytest.raises(ConfigError, match="pass one of them"):
        check_run_dir(out, resume=True, overwrite=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="exists and is not a directory"):
        check_run_dir(tmp_path / "file", resume=False, overwrite=True)


def test_overwrite_replaces_the_earlier_run_and_keeps_other_files(cifar_train_subset, tmp_path, capsys):
    out = tmp_path / "run"
    train(tiny(cifar_train_subset, out, subset=128))
    assert set(RUN_FILES[:5]) <= {p.name for p in out.iterdir()}
    first = (out / "final.safetensors").read_bytes()
    (out / "notes.txt").write_text("mine")
    (out / ".checkpoint.pt.tmp-999").write_bytes(b"left by a killed run")
    # a new run that fails its data checks removes nothing of the earlier run
    with pytest.raises(ConfigError, match="exceeds"):
        train(tiny(cifar_train_subset, out, subset=10_000), overwrite=True)
    assert (out / "final.safetensors").read_bytes() == first
    # the command line has the flag the refusal names, and it starts a new run in place of the earlier one
    assert cli_main(_train_args(cifar_train_subset, out, "--lr", "0.2")) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli_main(_train_args(cifar_train_subset, out, "--lr", "0.2", "--overwrite")) == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert not (out / ".checkpoint.pt.tmp-999").exists()
    assert json.loads((out / "config.json").read_text())["lr"] == 0.2
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1]  # one run's metrics, not two
    assert (out / "final.safetensors").read_bytes() != first
