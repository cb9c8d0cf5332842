"""The commands agree with each other and with their documentation.

``--no-progress`` on every long command; ``finetune``'s options described and its defaults the
documented headline grid; ``eval`` rows named after the run folder, ε as ``k/255``, the AlexNet
normalisation refused for a model without ImageNet's classes; ``mini-protocol``'s report names the
data it was given.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from adaaug import cli
from adaaug.evaluate.report import eps_label, markdown_report

ROOT = Path(__file__).resolve().parents[1]


# ---- --no-progress ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [c for c in cli._COMMANDS if c not in ("publish-weights", "convert-weights")])
def test_every_long_command_accepts_no_progress(command):
    parser = cli.command_parser(command)
    options = {s for a in parser._actions for s in a.option_strings}
    assert {"--progress", "--no-progress"} <= options, command


def test_demo_progress_bar_follows_the_flag(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ADAAUG_PROGRESS", raising=False)
    argv = ["demo", "--backbones", "edsr", "--steps", "0", "--images", "1"]
    assert cli.main(argv + ["--out", str(tmp_path / "a.png")]) == 0
    assert "1/1" in capsys.readouterr().err  # the bar over the backbones
    assert cli.main(argv + ["--out", str(tmp_path / "b.png"), "--no-progress"]) == 0
    assert "1/1" not in capsys.readouterr().err and (tmp_path / "b.png").exists()


# ---- finetune: described options, documented defaults ------------------------------------------------------
def test_every_finetune_option_is_described():
    parser = cli.command_parser("finetune")
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        text = re.sub(r"\[[^\]]*\]\s*$", "", action.help or "").strip()  # the help without its [default]
        assert len(text) >= 8, (action.option_strings, action.help)


def _documented_headline() -> list[str]:
    """The first ``adaaug finetune`` command of the benchmark's Reproduce section, as an argument list."""
    text = (ROOT / "benchmarks" / "finetune" / "README.md").read_text()
    block = text.split("## Reproduce", 1)[1].split("```", 2)[1]
    command = block.replace("\\\n", " ").strip().splitlines()[0]
    argv = shlex.split(command)
    assert argv[:2] == ["adaaug", "finetune"]
    return argv[1:]


def test_finetune_defaults_are_the_documented_headline_grid():
    """The defaults plus the flags the help's epilog names give the documented grid (paths and --jobs aside)."""
    from adaaug.experiments.finetune import HEADLINE

    parser = cli.command_parser("finetune")
    documented = vars(parser.parse_args(_documented_headline()[1:]))
    named = vars(parser.parse_args(shlex.split(HEADLINE)[2:]))
    for key in ("data", "dev", "out", "jobs"):
        documented.pop(key), named.pop(key)
    documented["backbones"], named["backbones"] = sorted(documented["backbones"]), sorted(named["backbones"])
    assert named == documented
    assert HEADLINE.replace("TRAIN", "x") in " ".join(parser.epilog.split()).replace("TRAIN", "x")


# ---- eval: row names, ε, AlexNet normalisation -----------------------------------------------------------------
def _checkpoint(path: Path, num_classes: int = 10) -> Path:
    from safetensors.torch import save_file

    from adaaug.models import build_classifier

    torch.manual_seed(0)
    model = build_classifier("resnet20", num_classes)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"arch": "resnet20", "num_classes": str(num_classes), "normalize": "cifar10"})
    return path


def _clean_npy(root: Path, n: int = 6) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    np.save(root / "test_data.npy", rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))
    np.save(root / "test_labels.npy", np.arange(n) % 10)
    return root


def test_eval_names_the_row_after_the_run_folder_and_prints_eps_as_levels(tmp_path, capsys):
    ck = _checkpoint(tmp_path / "runs" / "x" / "ada-edsr" / "final.safetensors")
    out, md = tmp_path / "r.json", tmp_path / "r.md"
    argv = ["eval", "--checkpoint", str(ck), "--data", str(_clean_npy(tmp_path / "clean")), "--attacks",
            "--attack-method", "pgd", "--pgd-steps", "1", "--pgd-restarts", "1", "--attack-samples", "2",
            "--device", "cpu", "--no-progress", "--out", str(out), "--markdown", str(md)]
    assert cli.main(argv) == 0
    table = md.read_text()
    assert "ada-edsr" in table and "final" not in table
    assert "ℓ∞ ε=1/255 | ℓ∞ ε=2/255 | ℓ2 ε=0.5 | ℓ2 ε=1 |" in table and "0.0039" not in table
    robust = json.loads(out.read_text())["robust"]
    assert set(robust["Linf"]) == {f"{1 / 255:.6g}", f"{2 / 255:.6g}"}  # the JSON keys are unchanged
    capsys.readouterr()
    assert cli.main(argv + ["--label", "mine", "--overwrite"]) == 0 and "mine" in md.read_text()  # --label still wins


@pytest.mark.parametrize("norm, key, label", [
    ("Linf", f"{1 / 255:.6g}", "1/255"), ("Linf", f"{8 / 255:.6g}", "8/255"), ("Linf", 4 / 255, "4/255"),
    ("Linf", "0.03", "0.03"), ("L2", "0.5", "0.5"), ("L2", f"{1 / 255:.6g}", "0.00392157"),
])
def test_eps_labels(norm, key, label):
    assert eps_label(norm, key) == label


def test_default_labels():
    from adaaug.evaluate.options import default_label

    assert default_label("runs/c10/ada-edsr/final.safetensors", None) == "ada-edsr"
    assert default_label("runs/c10/ada-edsr/checkpoint.pt", None) == "ada-edsr"
    assert default_label("models/resnet20-augmix.safetensors", None) == "resnet20-augmix"
    assert default_label(None, "resnet20:cifar10") == "resnet20"


def test_imagenet_c_is_refused_for_a_model_without_imagenets_classes(tmp_path, capsys):
    ck = _checkpoint(tmp_path / "runs" / "c10" / "final.safetensors")
    c_dir = tmp_path / "imagenet-c"
    c_dir.mkdir()
    argv = ["eval", "--checkpoint", str(ck), "--data", str(_clean_npy(tmp_path / "clean")), "--imagenet-c",
            str(c_dir), "--out", str(tmp_path / "r.json"), "--device", "cpu"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ImageNet's 1000 classes, but this model has 10 outputs" in err
    assert "--cifar-c" in err and not (tmp_path / "r.json").exists()


def test_declared_outputs_before_loading(tmp_path):
    from adaaug.evaluate.options import declared_outputs

    def ns(**kw):
        return argparse.Namespace(**{"num_classes": None, "weights": None, "checkpoint": None, **kw})

    assert declared_outputs(ns(checkpoint=str(_checkpoint(tmp_path / "a" / "final.safetensors", 1000)))) == 1000
    assert declared_outputs(ns(checkpoint=str(_checkpoint(tmp_path / "b" / "final.safetensors", 7)))) == 7
    assert declared_outputs(ns(checkpoint="x.pt", num_classes=1000)) == 1000
    assert declared_outputs(ns(checkpoint="x.pt")) is None  # known only once loaded: the report warns then
    assert declared_outputs(ns(weights="resnet20")) == 10


def test_report_warns_about_an_imagenet_c_mce_of_another_class_count():
    res = {"model": {"outputs": 10}, "clean": {"error": 50.0},
           "imagenet_c": {"mce": 120.0, "normalized_ce": {"gaussian_noise": 120.0}}}
    assert "**Warning:** the model has 10 outputs, not ImageNet's 1000 classes" in markdown_report(res, "m")
    res["model"]["outputs"] = 1000
    assert "Warning" not in markdown_report(res, "m")


# ---- mini-protocol names its data -----------------------------------------------------------------------------
def test_mini_protocol_report_names_the_data_it_was_given():
    from adaaug.experiments.mini_report import report

    settings = dict(epochs=1, batch_size=8, lr=0.1, weight_decay=5e-4, backbone="edsr", backbone_weights="cifar10",
                    nu=0.015, ada_steps=1, seed=0, data="data/flowers/train", dev="data/flowers/val")
    results = {"settings": settings, "train_images": 16, "dev_images": 8, "dev_classes": 5, "rows": [],
               "paper_mce": {"nominal": 29.37}}
    text = report(results)
    assert "trained on data/flowers/train, scored on data/flowers/val (5 classes)" in text
    assert "Data: CIFAR-10" not in text
    settings.update(data="cifar10:data/c10", dev="cifar10:data/c10")
    assert "trained on CIFAR-10 (torchvision, data/c10)" in report(results)
