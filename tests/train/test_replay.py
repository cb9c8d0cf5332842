"""A run's record replayed, and the records that name what produced them; the cost told before step 1.

``config.json`` describes the run, not how its process was started: replaying it (``--config``) is a
new run, whatever the record says about ``resume``; ``adaaug eval`` of a ``train`` checkpoint names its
architecture; ``adaaug train --method ada`` with slow settings says what a step costs before the first step.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from adaaug.cli import main
from adaaug.train.config import START_KEYS, TrainConfig
from adaaug.train.loop import train

FLAGS = ["--arch", "resnet20", "--subset", "32", "--batch-size", "16", "--epochs", "1", "--warmup-epochs", "0",
         "--device", "cpu", "--no-progress"]


def test_replaying_a_resumed_runs_record_is_a_new_run(cifar_train_subset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(cifar_train_subset), "--out", str(run), *FLAGS]) == 0
    assert main(["train", "--data", str(cifar_train_subset), "--out", str(run), "--resume", *FLAGS]) == 0
    record = json.loads((run / "config.json").read_text())
    assert not set(START_KEYS) & set(record) and record["arch"] == "resnet20"  # the run, not the process
    capsys.readouterr()
    # into a new folder: a new run from scratch, no "resuming", no "starting from scratch" notice
    assert main(["train", "--config", str(run / "config.json"), "--out", str(tmp_path / "new"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "resum" not in err and "from scratch" not in err
    assert [json.loads(x)["epoch"] for x in (tmp_path / "new" / "metrics.jsonl").read_text().splitlines()] == [1]
    # into the run's own folder (the record's out): refused, naming the flag that continues it
    assert main(["train", "--config", str(run / "config.json"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint.pt exists: pass --resume" in err and "--overwrite" in err and "choose another --out" in err


def test_a_record_of_an_earlier_version_with_resume_true_is_read_as_a_new_run(tmp_path):
    legacy = tmp_path / "config.json"
    legacy.write_text(json.dumps({"arch": "resnet20", "epochs": 2, "resume": True, "progress": False,
                                  "download": True}))
    cfg = TrainConfig.from_sources(legacy)
    assert (cfg.resume, cfg.progress, cfg.download, cfg.epochs) == (False, True, False, 2)
    assert TrainConfig.from_sources(legacy, resume=True).resume  # the flag still continues a run


def test_eval_of_a_train_checkpoint_names_what_produced_it(cifar_train_subset, cifar_dev_subset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(cifar_train_subset), "--out", str(run), *FLAGS]) == 0
    result = json.loads((run / "result.json").read_text())
    assert result["arch"] == "resnet20" and result["producer"]["command"] == "adaaug train"
    for name in ("final.safetensors", "checkpoint.pt"):  # no --arch: the run's files say what it is
        report = tmp_path / f"{name}.json"
        assert main(["eval", "--checkpoint", str(run / name), "--data", str(cifar_dev_subset), "--limit", "20",
                     "--out", str(report), "--device", "cpu", "--no-progress"]) == 0, capsys.readouterr().err
        model = json.loads(report.read_text())["model"]
        assert (model["arch"], model["method"], model["normalize"], model["outputs"]) == (
            "resnet20", "nominal", "cifar10", 10), name
        producer = json.loads(report.read_text())["producer"]
        assert producer["command"] == "adaaug eval" and producer["adaaug"] and producer["torch"]
        assert all(model[k] is not None for k in ("arch", "checkpoint", "normalize", "method", "class_names_from"))


def test_slow_ada_settings_are_told_before_the_first_step(cifar_train_subset, tmp_path, monkeypatch, capsys):
    """The floor is printed before any training step runs (a marker written by the first step comes after it)."""
    import sys

    from adaaug.train import loop, timing

    monkeypatch.setattr(timing, "SLOW_STEP_S", 0.0)  # these tiny settings count as slow
    first_step = loop.train_step

    def marked(*args, **kwargs):
        print("FIRST STEP", file=sys.stderr)
        monkeypatch.setattr(loop, "train_step", first_step)
        return first_step(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", marked)
    train(TrainConfig(data=str(cifar_train_subset), out=str(tmp_path / "ada"), arch="resnet20", subset=32,
                      batch_size=16, epochs=1, warmup_epochs=0, device="cpu", progress=False, method="ada",
                      backbone="unet", backbone_weights=None, ada_steps=2, chunk_size=16))
    err = capsys.readouterr().err
    floor = err.index("adaaug train --method ada: a step will take at least")
    assert floor < err.index("FIRST STEP") < err.index("s per step on this machine")
    line = err[floor:].splitlines()[0]
    assert "M + 1 = 3 classifier and 2 backbone forward+backward passes of 16 images" in line
    assert "(2 steps)" in line and "--ada-steps" in line


def test_fast_settings_say_nothing_before_the_first_step(cifar_train_subset, tmp_path, capsys, monkeypatch):
    from adaaug.train import timing

    monkeypatch.setattr(timing, "SLOW_STEP_S", 60.0)  # a floor the tiny settings stay below on a loaded machine too
    train(TrainConfig(data=str(cifar_train_subset), out=str(tmp_path / "ada"), arch="resnet20", subset=32,
                      batch_size=16, epochs=1, warmup_epochs=0, device="cpu", progress=False, method="ada",
                      backbone="unet", backbone_weights=None, ada_steps=1, chunk_size=16))
    assert "a step will take at least" not in capsys.readouterr().err
