"""``adaaug gpu-compare`` at its tiny size on a CPU, and the pieces of its fast recipe and plan."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from adaaug.corruptions import BENCHMARK
from adaaug.experiments.fast_recipe import Recipe, ResNet9, cutout
from adaaug.experiments.gpu_compare import CompareConfig, file_tag, plan, run


def test_tiny_run_writes_every_row(cifar_train_subset, cifar_dev_subset, tmp_path):
    """The whole command, shrunk: 4 rows trained and scored, the -C set built by make-c with the expected
    shape, results written; figures checked against what they must be for 20 dev images."""
    cfg = CompareConfig(data=str(cifar_train_subset), dev=str(cifar_dev_subset), out=str(tmp_path / "out"),
                        work=str(tmp_path / "work"), size="tiny", device="cpu", backbone="unet", train_limit=32,
                        dev_limit=20, batch_size=16, workers=1)  # make-c workers: test_make_c
    results = run(cfg)
    rows = results["rows"]
    assert list(rows) == ["nominal", "ada", "augmix", "ada+augmix"]  # the requested order, whatever ran first
    for name, row in rows.items():
        assert math.isfinite(row["clean_error"]) and math.isfinite(row["mce"]), name
        # 20 dev images: every error is a multiple of 5 %; the -C errors are means of 5 severities of 20 images
        assert abs(row["clean_error"] / 5 - round(row["clean_error"] / 5)) < 1e-9, row["clean_error"]
        assert set(row["ce"]) == set(BENCHMARK)
        assert row["mce"] == pytest.approx(np.mean([row["ce"][c] for c in BENCHMARK]))
        assert all(0 <= e <= 100 for e in row["ce"].values())
        assert row["steps"] == row["steps_planned"] == 2 and "stopped_at_step" not in row  # 32 images / 16, 1 epoch
        assert ("ada_ssim_median" in row) == ("ada" in name), name
        if "ada" in name:
            assert 0 < row["ada_ssim_median"] <= 1
    c_dir = tmp_path / "work" / "cifar10-c"
    labels = np.load(c_dir / "labels.npy")
    assert labels.shape == (100,) and labels.dtype == np.int64
    np.testing.assert_array_equal(labels[:20], labels[20:40])  # severities stacked over the same 20 images
    for name in BENCHMARK:
        arr = np.load(c_dir / f"{name}.npy", mmap_mode="r")
        assert arr.shape == (100, 32, 32, 3) and arr.dtype == np.uint8, name
    tag = file_tag(cfg.rows, "cpu")
    saved = json.loads((tmp_path / "out" / f"{tag}.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(rows)) and saved["meaningful"] is False
    timed = saved["calibration"]["seconds_per_step"]
    assert set(timed) == set(rows) and timed["ada"].keys() == {"M=2", "M=1"} and timed["nominal"].keys() == {"-"}
    assert "1 epochs, M = 2" in saved["calibration"]["plan"] and saved["settings"]["ada_steps"] == 2
    assert saved["train_images"] == 32 and saved["dev_images"] == 20 and saved["recipe"]["epochs"] == 1
    md = (tmp_path / "out" / f"{tag}.md").read_text()
    assert "Not meaningful" in md and md.count("\n| ") == 2 + 4  # header, rule, four rows
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([f"{tag}.json", f"{tag}.md"])


def test_plan_lowers_epochs_then_m_to_fit():
    cfg = CompareConfig(data="", dev="", epochs=16, rows=("nominal", "ada")).resolved()
    assert cfg.ada_steps == 2 and cfg.min_epochs == 10
    per_step = {"nominal": {0: 0.01}, "ada": {2: 0.09, 1: 0.05}}  # 0.1 s per step of both rows at M = 2, 0.06 at 1
    # 98 steps per epoch → 9.8 s per epoch at M = 2; evaluation 2 × 10 s comes off the time left
    assert plan(cfg, per_step, 98, 10.0, 200.0, 10)[:2] == (16, 2)  # 180 s of room: 156.8 s needed
    epochs, m, why = plan(cfg, per_step, 98, 10.0, 120.0, 10)  # 100 s of room → 10 epochs at M = 2
    assert (epochs, m) == (10, 2) and "lowered from 16 to 10" in why
    epochs, m, why = plan(cfg, per_step, 98, 10.0, 80.0, 10)  # 60 s: 6 epochs at M = 2 < 10; at M = 1 (5.88 s) 10
    assert (epochs, m) == (10, 1) and "M lowered from 2 to 1" in why
    assert plan(cfg, per_step, 98, 10.0, 25.0, 10)[:2] == (1, 1)  # never below one epoch
    cfg.fit = False
    assert plan(cfg, per_step, 98, 10.0, 120.0, 10)[:2] == (16, 2)


def test_bad_settings_say_what_to_pass():
    with pytest.raises(ValueError, match="--rows"):
        CompareConfig(data="", dev="", rows=("nominal", "cutmix")).resolved()
    with pytest.raises(ValueError, match="--ada-share"):
        CompareConfig(data="", dev="", ada_share=0.0).resolved()
    with pytest.raises(ValueError, match="--size"):
        CompareConfig(data="", dev="", size="huge").resolved()
    cfg = CompareConfig(data="", dev="", size="tiny", dev_limit=0).resolved()
    assert cfg.dev_limit is None and cfg.train_limit == 32  # 'all' on the command line, the size's default
    assert file_tag(("nominal", "ada+augmix"), "cuda") == "compare-cuda-nominal_ada-augmix"


def test_recipe_schedule_cutout_and_network():
    r = Recipe(epochs=24)
    total = 24 * 98
    assert r.lr_at(0, total) == 0.0
    assert r.lr_at(5 * 98, total) == pytest.approx(0.4)  # the peak at epoch 5 of 24
    assert r.lr_at(int(14.5 * 98), total) == pytest.approx(0.2)  # half-way down
    assert r.lr_at(total, total) == 0.0
    x = torch.ones(4, 3, 32, 32)
    out = cutout(x, 8, torch.Generator().manual_seed(0))
    zeros = (out == 0).all(1).sum((1, 2))  # pixels zeroed in every channel, per image
    assert torch.all(zeros <= 64) and torch.all(zeros >= 16) and torch.all((out == 0) | (out == 1))
    assert torch.equal(out, cutout(x, 8, torch.Generator().manual_seed(0))) and torch.equal(x, torch.ones_like(x))
    net = ResNet9(10, width=4)
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert sum(p.numel() for p in ResNet9().parameters()) == pytest.approx(6.57e6, rel=0.01)  # Page's 6.5 M


def test_a_deadline_cuts_the_budget_and_the_plan_fits_what_is_left():
    from adaaug.experiments.gpu_compare import time_budget

    assert time_budget(500.0, None, 1000.0) == 500.0
    assert time_budget(500.0, 1000.0 + 120.0, 1000.0) == 120.0  # 120 s left before the deadline
    assert time_budget(500.0, 1000.0 + 900.0, 1000.0) == 500.0  # a far deadline leaves the budget as it is
    with pytest.raises(ValueError, match="--deadline .* passed 5 s ago"):
        time_budget(500.0, 995.0, 1000.0)
    # the plan of test_plan_lowers_epochs_then_m_to_fit, its time left taken from a deadline
    cfg = CompareConfig(data="", dev="", epochs=16, rows=("nominal", "ada")).resolved()
    per_step = {"nominal": {0: 0.01}, "ada": {2: 0.09, 1: 0.05}}
    assert plan(cfg, per_step, 98, 10.0, time_budget(500.0, None, 0.0), 10)[:2] == (16, 2)
    assert plan(cfg, per_step, 98, 10.0, time_budget(500.0, 120.0, 0.0), 10)[:2] == (10, 2)
    assert plan(cfg, per_step, 98, 10.0, time_budget(500.0, 80.0, 0.0), 10)[:2] == (10, 1)


def test_backbone_weights_reach_adversarial_augment(tmp_path):
    """``--backbone-weights FILE`` is parsed into the config and given to AdversarialAugment as ``weights``:
    the corruption network of a row holds the file's tensors, not the packaged ones."""
    from safetensors.torch import save_file

    from adaaug import cli
    from adaaug.backbones import build_backbone
    from adaaug.experiments.fast_recipe import ResNet9
    from adaaug.experiments.gpu_compare import _Runner, config_from_args

    torch.manual_seed(7)
    saved = {k: v.contiguous() for k, v in build_backbone("unet").state_dict().items()}
    path = tmp_path / "unet-mine.safetensors"
    save_file(saved, str(path))
    args = cli.command_parser("gpu-compare").parse_args(
        ["--data", "TRAIN", "--dev", "DEV", "--size", "tiny", "--backbone", "unet", "--backbone-weights", str(path),
         "--deadline", "1e10"])
    cfg = config_from_args(args).resolved()
    assert cfg.backbone_weights == str(path) and cfg.deadline == 1e10
    runner = _Runner(cfg, None, None, 10, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    module = runner.make_ada(ResNet9(10, 8), 1, g).corruptors[0].module
    state = module.state_dict()
    assert set(state) == set(saved)
    assert all(torch.equal(state[k], saved[k]) for k in saved)
    packaged = _Runner(CompareConfig(data="", dev="", size="tiny", backbone="unet").resolved(), None, None, 10,
                       torch.device("cpu")).make_ada(ResNet9(10, 8), 1, g).corruptors[0].module.state_dict()
    assert not all(torch.equal(packaged[k], saved[k]) for k in saved)  # the default is another network
    with pytest.raises(ValueError, match="--backbone-weights .*no such file"):
        CompareConfig(data="", dev="", backbone_weights=str(tmp_path / "missing.pt")).resolved()
