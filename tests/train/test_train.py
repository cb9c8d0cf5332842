"""`adaaug train`: paper presets, end-to-end runs on a CIFAR-10 subset, bitwise resume, fail-fast configs.

CPU only and small: resnet20 on at most 512 images, AdA with one step of an untrained U-Net
(the smallest backbone; pretrained weights are not what these tests check).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from adaaug import paper
from adaaug.train import distributed as D
from adaaug.train.checkpoint import load_checkpoint
from adaaug.train.loop import WarmupCosine, center_crop, train
from adaaug.train.config import ConfigError, ConfigTypeError, TrainConfig

METRIC_KEYS = {"epoch", "train_loss", "train_acc", "eval_acc", "lr", "epoch_s", "wall_s", "images_per_s"}


def tiny(data: Path, out: Path, **overrides) -> TrainConfig:
    """A fast CPU configuration: resnet20, batch 128, 1 epoch, no warm-up, no progress bar."""
    settings = dict(data=str(data), out=str(out), arch="resnet20", epochs=1, batch_size=128, warmup_epochs=0,
                    progress=False, device="cpu")
    settings.update(overrides)
    return TrainConfig(**settings)


def ada(**overrides) -> dict:
    """AdA with one step of an untrained U-Net, nano-batches of 32."""
    return dict(method="ada", backbone="unet", backbone_weights=None, ada_steps=1, chunk_size=32, **overrides)


def read_metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def load_final(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(out / "final.safetensors"))


# ---- presets and schedule ----------------------------------------------------------------
def test_presets_are_the_papers_numbers():
    c = TrainConfig(preset="cifar10")
    assert (c.arch, c.epochs, c.batch_size, c.weight_decay) == ("preact_resnet50", 300, 1024, 1e-4)
    assert (c.lr, c.momentum, c.nesterov, c.warmup_epochs) == (0.1, 0.9, True, 5)
    assert (c.ada_steps, c.nu, c.chunk_size, c.ssim_threshold, c.step_scale) == (10, 0.015, 8, 0.3, 1.0)
    assert c.backbone_weights == "cifar10" and c.eval_crop is None
    assert c.peak_lr == pytest.approx(0.4)  # max(0.1 · 1024/256, 0.1)
    i = TrainConfig(preset="imagenet")
    assert (i.arch, i.epochs, i.batch_size, i.weight_decay, i.eval_crop) == ("resnet50", 90, 4096, 5e-4, 224)
    assert (i.ada_steps, i.chunk_size, i.ssim_threshold) == (3, 1, 0.7)
    assert i.step_scale == pytest.approx(10 / 3)
    assert i.peak_lr == pytest.approx(1.6)
    assert TrainConfig(batch_size=128).peak_lr == pytest.approx(0.1)  # never below the base LR
    assert TrainConfig(preset="imagenet", epochs=5, warmup_epochs=0).batch_size == 4096  # overrides keep the rest


def test_warmup_cosine_schedule():
    s = WarmupCosine(total_steps=100, warmup_steps=10)
    assert [s(k) for k in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    assert s(9) == pytest.approx(1.0) and s(10) == pytest.approx(1.0)
    assert s(55) == pytest.approx(0.5)
    assert s(99) == pytest.approx(0.5 * (1 + math.cos(math.pi * 89 / 90)))
    assert all(s(k) >= s(k + 1) for k in range(10, 99))
    assert WarmupCosine(10, 0)(0) == 1.0
    with pytest.raises(ValueError):
        WarmupCosine(10, 10)


def test_center_crop_and_sharding():
    x = torch.arange(2 * 3 * 6 * 8).view(2, 3, 6, 8)
    assert torch.equal(center_crop(x, 4), x[..., 1:5, 2:6])
    assert center_crop(x, None) is x
    with pytest.raises(ValueError, match="smaller than"):
        center_crop(x, 7)
    batch = torch.arange(8)
    shards = [D.shard(batch, D.DistEnv(rank=r, world_size=4)) for r in range(4)]
    assert torch.equal(torch.cat(shards), batch)
    assert torch.equal(D.epoch_order(50, 0, 3), D.epoch_order(50, 0, 3))
    assert not torch.equal(D.epoch_order(50, 0, 3), D.epoch_order(50, 0, 4))
    assert D.derive_seed(0, "augment", 0) != D.derive_seed(0, "augment", 1)


# ---- end to end --------------------------------------------------------------------------
def test_nominal_end_to_end(cifar_train_subset, cifar_dev_subset, tmp_path):
    out = tmp_path / "nominal"
    result = train(tiny(cifar_train_subset, out, subset=512, eval_data=str(cifar_dev_subset)))
    assert result["train_images"] == 512 and result["steps_per_epoch"] == 4 and result["ranks_agree"]
    (line,) = read_metrics(out)
    assert set(line) == METRIC_KEYS and line["epoch"] == 1
    assert math.isfinite(line["train_loss"]) and 0 <= line["train_acc"] <= 1 and 0 <= line["eval_acc"] <= 1
    # peak max(0.1 · 128/256, 0.1) = 0.1; "lr" is the last step's: step 3 of a 4-step cosine
    assert line["lr"] == pytest.approx(0.1 * WarmupCosine(4, 0)(3))
    ck = load_checkpoint(out / "checkpoint.pt")
    assert {"model", "optimizer", "scheduler", "epoch", "wall_s", "config", "rng", "world_size"} <= set(ck)
    assert ck["epoch"] == 1 and ck["world_size"] == 1 and ck["scheduler"]["last_epoch"] == 4
    assert set(ck["rng"][0]) == {"global", "augment"}
    assert ck["config"]["method"] == "nominal" and ck["config"]["arch"] == "resnet20"
    final = load_final(out)
    assert final.keys() == ck["model"].keys()
    assert all(torch.equal(final[k], ck["model"][k]) for k in final)
    from adaaug.models import build_classifier
    from adaaug.weights import load_safetensors_into
    load_safetensors_into(build_classifier("resnet20"), out / "final.safetensors")  # strict
    # config.json is the resolved config and round-trips through --config
    saved = json.loads((out / "config.json").read_text())
    assert saved["epochs"] == 1 and saved["weight_decay"] == paper.CIFAR10_WEIGHT_DECAY
    assert TrainConfig.from_sources(out / "config.json").record() == saved
    assert json.loads((out / "result.json").read_text())["final_eval_acc"] == line["eval_acc"]


def test_ada_end_to_end_through_cli(cifar_train_subset, tmp_path, capsys):
    from adaaug.cli import main

    out = tmp_path / "ada"
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"arch": "resnet20", "epochs": 3, "batch_size": 128, "method": "ada"}))
    rc = main(["train", "--config", str(config), "--data", str(cifar_train_subset), "--subset", "256",
               "--epochs", "1", "--warmup-epochs", "0", "--backbone", "unet", "--backbone-weights", "none",
               "--ada-steps", "1", "--chunk-size", "64", "--device", "cpu", "--no-progress", "--out", str(out)])
    assert rc == 0
    saved = json.loads((out / "config.json").read_text())
    assert (saved["epochs"], saved["method"], saved["backbone"], saved["ada_steps"]) == (1, "ada", "unet", 1)
    assert saved["backbone_weights"] is None and saved["nu"] == paper.NU_EDSR_CIFAR10
    (line,) = read_metrics(out)
    assert line["eval_acc"] is None and math.isfinite(line["train_loss"])
    captured = capsys.readouterr()
    assert json.loads(captured.out.split("\n", 1)[1])["train_images"] == 256
    # the time estimate, from the first timed steps: 256 images / batch 128 = 2 steps, so step 2 is timed
    estimate = re.search(r"--method ada: ([0-9.e+-]+) s per step on this machine, so about .* per epoch \(2 steps\)"
                         r" and .* for the 1 epoch to go \(measured on step 2;", captured.err)
    assert estimate is not None, captured.err
    assert 0 < float(estimate.group(1)) < line["epoch_s"]


def test_resume_after_kill_is_bitwise_identical(cifar_train_subset, cifar_dev_subset, tmp_path):
    """2 epochs straight vs. killed after epoch 1 and resumed: the same weights, bit for bit."""
    settings = dict(subset=32, batch_size=16, epochs=2, warmup_epochs=1, eval_data=str(cifar_dev_subset),
                    eval_batch_size=100, **ada())
    straight = train(tiny(cifar_train_subset, tmp_path / "straight", **settings))

    class Killed(Exception):
        pass

    def kill_after_first(epoch: int, record: dict) -> None:
        if epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        train(tiny(cifar_train_subset, tmp_path / "killed", **settings), on_epoch_end=kill_after_first)
    assert load_checkpoint(tmp_path / "killed" / "checkpoint.pt")["epoch"] == 1
    assert not (tmp_path / "killed" / "final.safetensors").exists()
    resumed = train(tiny(cifar_train_subset, tmp_path / "killed", resume=True, **settings))

    assert resumed["rank_checksums"] == straight["rank_checksums"]
    a, b = load_final(tmp_path / "straight"), load_final(tmp_path / "killed")
    assert all(torch.equal(a[k], b[k]) for k in a)
    ca, cb = (load_checkpoint(tmp_path / d / "checkpoint.pt") for d in ("straight", "killed"))
    assert torch.equal(ca["rng"][0]["augment"], cb["rng"][0]["augment"])
    for sa, sb in zip(ca["optimizer"]["state"].values(), cb["optimizer"]["state"].values()):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    drop = ("epoch_s", "wall_s", "images_per_s")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in drop} for r in rows]  # noqa: E731
    assert strip(read_metrics(tmp_path / "killed")) == strip(read_metrics(tmp_path / "straight"))


def test_all_three_augmentations_with_jsd(cifar_train_subset, tmp_path):
    """AdA + AugMix (JSD triple) + DeepAugment: the full App. E.5 pipeline trains.

    The "DeepAugment copies" here are the training set itself: aligned by construction.
    """
    out = tmp_path / "all"
    copies = [str(cifar_train_subset)] * 2  # two copies, as Hendrycks et al. (EDSR and CAE)
    result = train(tiny(cifar_train_subset, out, subset=32, batch_size=16, deepaugment_data=copies,
                        **{**ada(), "method": "ada+augmix+deepaugment"}))
    assert result["steps_per_epoch"] == 2 and math.isfinite(result["final_train_loss"])
    assert load_checkpoint(out / "checkpoint.pt")["config"]["jsd"] is True


def test_deepaugment_copies_are_mixed_per_example():
    from adaaug.data.images import ImageSet
    from adaaug.train.loop import _deepaugment_batch

    labels = torch.zeros(64, dtype=torch.int64)
    copies = [ImageSet(torch.full((64, 3, 4, 4), v, dtype=torch.uint8), labels, ["a"]) for v in (10, 20, 30)]
    idx = torch.arange(0, 64, 2)
    out = _deepaugment_batch(copies, idx, torch.Generator().manual_seed(0))
    assert out.shape == (32, 3, 4, 4) and set(out[:, 0, 0, 0].tolist()) == {10, 20, 30}
    assert bool((out == out[:, :1, :1, :1]).all())  # whole images, not mixed pixels
    assert torch.equal(_deepaugment_batch(copies[:1], idx, torch.Generator()), copies[0].images[idx])
    assert _deepaugment_batch([], idx, torch.Generator()) is None


def test_imagenet_preset_shapes(tmp_path, monkeypatch):
    """ImageNet protocol on 256×256 images: random crop resized to 128 for training, 224 centre crop for eval."""
    from PIL import Image

    root = tmp_path / "imagenet-like"
    g = torch.Generator().manual_seed(0)
    for c in ("n01", "n02"):
        (root / c).mkdir(parents=True)
        for k in range(4):
            small = (torch.rand(3, 16, 16, generator=g) * 255).to(torch.uint8)
            big = torch.nn.functional.interpolate(small[None].float(), size=256, mode="nearest")[0]
            Image.fromarray(big.to(torch.uint8).permute(1, 2, 0).numpy()).save(root / c / f"{k}.png")
    seen = []
    from adaaug.augment.compose import AugmentationPipeline
    call = AugmentationPipeline.__call__

    def spy(self, images, labels, deepaugment_images=None):
        views = call(self, images, labels, deepaugment_images)
        seen.append((tuple(images.shape), tuple(views[0].shape)))
        return views

    cfg = TrainConfig(preset="imagenet", data=str(root), eval_data=str(root), out=str(tmp_path / "run"),
                      arch="resnet20", epochs=1, batch_size=4, warmup_epochs=0, progress=False, device="cpu")
    assert cfg.eval_crop == 224 and cfg.weight_decay == 5e-4
    monkeypatch.setattr(AugmentationPipeline, "__call__", spy)
    result = train(cfg)
    assert seen == [((4, 3, 256, 256), (4, 3, 128, 128))] * 2
    assert result["final_eval_acc"] is not None
    import safetensors
    with safetensors.safe_open(str(tmp_path / "run" / "final.safetensors"), "pt") as f:
        assert f.metadata()["normalize"] == "imagenet" and f.metadata()["arch"] == "resnet20"


# ---- fail fast -----------------------------------------------------------------------------
@pytest.mark.parametrize("overrides, error, match", [
    (dict(preset="cifar100"), ConfigError, "unknown preset 'cifar100'.*cifar10, imagenet"),
    (dict(method="adversarial"), ConfigError, "unknown method 'adversarial'.*ada\\+augmix"),
    (dict(method="ada", backbone="resnet"), ConfigError, "unknown --backbone 'resnet'.*edsr"),
    (dict(arch="vgg16"), ConfigError, "unknown arch 'vgg16'.*resnet20"),
    (dict(epochs=0), ConfigError, "epochs \\(--epochs\\) must be ≥ 1"),
    (dict(epochs="300"), ConfigTypeError, "epochs \\(--epochs\\) must be an int"),
    (dict(lr=-0.1), ConfigError, "lr \\(--lr\\) must be > 0, got -0.1"),
    (dict(momentum=1.0), ConfigError, "momentum"),
    (dict(deepaugment_prob=1.5), ConfigError, "deepaugment_prob"),
    (dict(warmup_epochs=5, epochs=2), ConfigError, "warmup_epochs \\(5\\) must be smaller than epochs \\(2\\)"),
    (dict(batch_size=30, world_size=4), ConfigError, "batch_size 30 is not divisible by the world size 4"),
    (dict(data="/nonexistent/cifar"), ConfigError, "--data directory /nonexistent/cifar does not exist"),
    (dict(data="cifar10:/nonexistent"), ConfigError, "pass --download"),
    (dict(data=None), ConfigError, "no training data: pass --data"),
    (dict(eval_data="/nonexistent/test"), ConfigError, "--eval-data directory /nonexistent/test does not exist"),
    (dict(method="ada+deepaugment"), ConfigError, "needs --deepaugment-data DIR"),
    (dict(deepaugment_data="/tmp"), ConfigError, "only used by the deepaugment methods"),
    (dict(device="tpu"), ConfigError, "unknown --device 'tpu'"),
    (dict(momentum=0.0), ConfigError, "Nesterov momentum needs momentum > 0"),
    (dict(data_path="disk"), ConfigError, "unknown data_path 'disk' \\(--data-path\\); known: auto, memory, stream"),
    (dict(workers=-1), ConfigError, "workers \\(--workers\\) must be ≥ 0"),
    (dict(method="deepaugment", deepaugment_data="/tmp", data_path="stream"), ConfigError, "in-memory data path"),
])
def test_bad_config_fails_before_training(tmp_path, overrides, error, match):
    world = overrides.pop("world_size", 1)
    settings = dict(data=str(tmp_path), out=str(tmp_path / "run"), arch="resnet20", epochs=2, warmup_epochs=0)
    settings.update(overrides)
    with pytest.raises(error, match=match):
        TrainConfig(**settings).validate(world_size=world)
    assert not (tmp_path / "run").exists()


def test_world_size_is_checked_by_train(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ConfigError, match="not divisible by the world size 3"):
        train(tiny(tmp_path, tmp_path / "run"))  # before any process group is set up
    assert not (tmp_path / "run").exists()


def test_unknown_setting_in_config_file(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"epoch": 3}))
    with pytest.raises(ConfigError, match="unknown setting\\(s\\) epoch in .*known: preset"):
        TrainConfig.from_sources(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="JSON object"):
        TrainConfig.from_sources(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        TrainConfig.from_sources(tmp_path / "missing.json")


@pytest.mark.parametrize("overrides, match", [
    (dict(subset=10_000), "--subset 10000 exceeds the [0-9]+ images"),
    (dict(subset=100), "100 images, fewer than one batch of 128"),
    (dict(num_classes=5), "labels reach 9 but the classifier has 5 outputs"),
    (dict(method="ada", backbone="unet", backbone_weights="no-such-tag"), "cannot build the 'ada' augmentation"),
    (dict(method="deepaugment", deepaugment_data="DEV"), "is not aligned with --data"),
    (dict(eval_data="DEV", eval_crop=64), "smaller than the 64 centre crop"),
])
def test_data_dependent_errors_before_training(cifar_train_subset, cifar_dev_subset, tmp_path, overrides, match):
    overrides = {k: (str(cifar_dev_subset) if v == "DEV" else v) for k, v in overrides.items()}
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=match):
        train(tiny(cifar_train_subset, out, **overrides))
    assert not (out / "checkpoint.pt").exists() and not (out / "metrics.jsonl").exists()


def test_a_deepaugment_copy_of_other_images_is_refused(cifar_train_subset, tmp_path):
    # the same classes, counts and sizes, but other files: before, image i was silently paired with copy i
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(cifar_train_subset, copy)
    for f in sorted((copy / "cat").iterdir()):
        f.rename(f.with_name("other_" + f.name))
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"not aligned with --data .*: image \d+ is cat/cat_0000 in --data but "
                                          r"cat/other_cat_0000 in the copy"):
        train(tiny(cifar_train_subset, out, method="deepaugment", deepaugment_data=str(copy)))
    assert not (out / "checkpoint.pt").exists()


def test_existing_run_needs_resume_and_same_settings(cifar_train_subset, tmp_path):
    out = tmp_path / "run"
    train(tiny(cifar_train_subset, out, subset=128))
    before = (out / "metrics.jsonl").read_text()
    with pytest.raises(ConfigError, match="checkpoint.pt exists: pass --resume"):
        train(tiny(cifar_train_subset, out, subset=128))
    with pytest.raises(ConfigError, match="settings differ from the checkpoint's run: lr=0.1→0.2"):
        train(tiny(cifar_train_subset, out, subset=128, lr=0.2, resume=True))
    assert (out / "metrics.jsonl").read_text() == before


def test_cli_reports_config_errors(tmp_path, capsys):
    from adaaug.cli import main

    assert main(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("adaaug train: error: --data directory") and "does not exist" in err
    assert main(["train", "--preset", "imagenet", "--epochs", "9", "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["arch"], printed["epochs"], printed["batch_size"]) == ("resnet50", 9, 4096)


# ---- data paths, unreadable images, progress, help -----------------------------------------
@pytest.mark.parametrize("path", ["memory", "stream"])
def test_unreadable_image_is_named_or_skipped(make_image_folder, tmp_path, capsys, path):
    """A truncated JPEG stops `adaaug train` with one line naming the file and the fix (no traceback);
    --skip-bad-images trains without it and reports the count, on either data path."""
    from adaaug.cli import main

    root = make_image_folder(tmp_path / "data", per_class=5, classes=2, suffix=".jpg")
    bad = sorted((root / "automobile").iterdir())[2]
    bad.write_bytes(bad.read_bytes()[:250])
    argv = ["train", "--data", str(root), "--batch-size", "5", "--epochs", "1", "--warmup-epochs", "0", "--arch",
            "resnet20", "--device", "cpu", "--no-progress", "--data-path", path, "--workers", "0"]
    assert main(argv + ["--out", str(tmp_path / "stop")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"adaaug train: error: cannot read image {bad}") and "--skip-bad-images" in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert main(argv + ["--skip-bad-images", "--out", str(tmp_path / "skip")]) == 0
    assert "1 unreadable image(s)" in capsys.readouterr().err
    (line,) = read_metrics(tmp_path / "skip")
    result = json.loads((tmp_path / "skip" / "result.json").read_text())
    assert result["data_path"] == path and line["skipped_images"] == 1
    # memory: 9 readable images, one step of 5; stream: 10 listed files, two steps (one a batch of 4)
    assert (result["train_images"], result["steps_per_epoch"]) == ((9, 1) if path == "memory" else (10, 2))


def test_memory_and_stream_paths_read_the_same_examples(cifar_train_subset, tmp_path, monkeypatch):
    """Same seed, same subset: each step of the two paths holds the same labels in the same order."""
    from adaaug.train.training_data import load_training_data

    seen = {}
    for path in ("memory", "stream"):
        cfg = tiny(cifar_train_subset, tmp_path / path, subset=64, batch_size=16, data_path=path, workers=0)
        source = load_training_data(cfg, D.DistEnv(), torch.Generator()).source
        seen[path] = [b.labels.tolist() for b in source.batches(1)]
    assert seen["memory"] == seen["stream"] and len(seen["memory"]) == 4


def test_progress_on_stderr_and_no_progress(cifar_train_subset, tmp_path, capsys):
    from adaaug.cli import main

    argv = ["train", "--data", str(cifar_train_subset), "--subset", "64", "--batch-size", "32", "--epochs", "1",
            "--warmup-epochs", "0", "--arch", "resnet20", "--device", "cpu"]
    assert main(argv + ["--out", str(tmp_path / "a")]) == 0
    captured = capsys.readouterr()
    assert "nominal epoch 1/1" in captured.err and "nominal epoch" not in captured.out
    assert main(argv + ["--no-progress", "--out", str(tmp_path / "b")]) == 0
    assert "nominal epoch" not in capsys.readouterr().err


def test_every_train_option_has_help_with_its_default():
    import argparse
    import re

    from adaaug.train.loop import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = [a for a in parser._actions if a.dest != "help"]
    assert len(options) >= 40
    for action in options:
        assert action.help and re.search(r"\[[^\]]+\]$", action.help), action.option_strings
    fields = set(TrainConfig.field_names())
    # every flag is a setting, but for how a process starts: --config, --print-config, --overwrite
    assert {a.dest for a in options} - {"config", "print_config", "overwrite"} <= fields


def test_a_run_that_fails_before_its_first_checkpoint_leaves_nothing(cifar_train_subset, tmp_path, monkeypatch):
    import adaaug.train.loop as T

    real, calls = T.train_step, []

    def fails_on_the_second_step(*args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory (simulated)")
        return real(*args)

    monkeypatch.setattr(T, "train_step", fails_on_the_second_step)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated"):
        train(tiny(cifar_train_subset, out, subset=64, batch_size=16, epochs=2))
    assert not out.exists()  # no config.json or metrics.jsonl that would make the rerun look like a resume
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    calls.clear()
    with pytest.raises(RuntimeError, match="simulated"):
        train(tiny(cifar_train_subset, kept, subset=64, batch_size=16, epochs=2), overwrite=True)
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]  # the user's folder and file stay
    calls.clear()
    monkeypatch.setattr(T, "train_step", real)
    assert train(tiny(cifar_train_subset, out, subset=64, batch_size=16, epochs=1))["epochs"] == 1  # no --resume
