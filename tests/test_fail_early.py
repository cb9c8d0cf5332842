"""Commands fail before the work starts, in one line, and leave nothing half-written.

Image sizes are checked against the preset and the AdA backbone while ``adaaug train`` checks its
settings (before the model is built or a file written); ``--device`` is checked by one function
for every command that has it; a failed ``deepaugment-data`` removes the folders it created.
All data is generated here, tiny; nothing trains.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from adaaug.cli import main as cli
from adaaug.train import distributed as D
from adaaug.train.config import ConfigError, TrainConfig
from adaaug.train.training_data import check_image_sizes, load_training_data

TRAIN = ["--epochs", "1", "--warmup-epochs", "0", "--arch", "resnet20", "--device", "cpu", "--no-progress"]


def _folder(root: Path, sizes: list[tuple[int, int]], per_size: int = 2, classes: int = 2) -> Path:
    """ImageFolder of random PNGs: for each class, ``per_size`` images of each ``(H, W)`` in ``sizes``."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
        for h, w in sizes:
            for i in range(per_size):
                array = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                Image.fromarray(array).save(root / f"c{c}" / f"{h}x{w}_{i}.png")
    return root


def _one_line(capsys, argv: list[str], *needles: str) -> str:
    assert cli(argv) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


# ---- image sizes against the preset and the backbones ------------------------------------------------------
def test_mixed_sizes_are_named_alike_and_each_command_gives_its_own_way_out(tmp_path, capsys):
    # one folder, images 32×32 and 48 wide × 40 high: every command names the sizes the same way (width×height)
    # and the option it has (before: eval and deepaugment-data were told of train's --data-path)
    data = _folder(tmp_path / "mixed", [(32, 32), (40, 48)])
    runs = {"train": (["train", "--data", str(data), "--batch-size", "4", "--data-path", "memory", "--workers", "0",
                       "--out", str(tmp_path / "run")] + TRAIN, "--preset imagenet"),
            "eval": (["eval", "--weights", "resnet20", "--data", str(data), "--out", str(tmp_path / "e.json"),
                      "--device", "cpu"], "adaaug eval --image-size N"),
            "deepaugment-data": (["deepaugment-data", str(data), str(tmp_path / "da"), "--weights", "none"],
                                 "resize them to one size")}
    for command, (argv, way) in runs.items():
        err = _one_line(capsys, argv, "(32×32, 48×40)", way)
        assert "--data-path" not in err or command == "train", err
    assert not (tmp_path / "run").exists() and not (tmp_path / "e.json").exists() and not (tmp_path / "da").exists()


@pytest.mark.parametrize("data_path", ["auto", "stream", "memory"])
def test_mixed_sizes_stop_train_before_anything_is_written(tmp_path, capsys, data_path):
    data = _folder(tmp_path / "mixed", [(32, 32), (40, 40)])
    out = tmp_path / "run"
    err = _one_line(capsys, ["train", "--data", str(data), "--batch-size", "4", "--data-path", data_path,
                             "--workers", "0", "--out", str(out)] + TRAIN,
                    "have different sizes (32×32, 40×40)", "resize them to one size")
    assert "--preset imagenet" in err  # the cifar10 preset keeps each image's size: the way out
    assert not out.exists()


def test_mixed_sizes_need_the_stream_path_under_the_imagenet_preset(tmp_path, capsys):
    data = _folder(tmp_path / "mixed", [(32, 32), (40, 40)])
    _one_line(capsys, ["train", "--data", str(data), "--batch-size", "4", "--preset", "imagenet", "--data-path",
                       "memory", "--out", str(tmp_path / "run")] + TRAIN, "--data-path stream")
    assert not (tmp_path / "run").exists()


def test_mixed_evaluation_sizes_without_a_crop_stop_before_training(tmp_path, capsys):
    train = _folder(tmp_path / "train", [(64, 64)])
    evaluation = _folder(tmp_path / "eval", [(64, 64), (80, 80)])
    argv = ["train", "--data", str(train), "--eval-data", str(evaluation), "--preset", "imagenet", "--batch-size", "4",
            "--data-path", "stream", "--workers", "0", "--out", str(tmp_path / "run")] + TRAIN
    _one_line(capsys, argv + ["--eval-crop", "none"], "images of --eval-data", "(64×64, 80×80)", "--eval-crop N")
    assert not (tmp_path / "run").exists()


def test_backbone_side_multiple_is_checked_before_the_first_step(tmp_path, capsys):
    """Images 50 high and 70 wide with --backbone cae (sides must be multiples of 4): the message names the sizes
    that work, width×height as every size message."""
    data = _folder(tmp_path / "odd", [(50, 70)])
    out = tmp_path / "run"
    _one_line(capsys, ["train", "--data", str(data), "--batch-size", "4", "--method", "ada", "--backbone", "cae",
                       "--backbone-weights", "none", "--ada-steps", "1", "--out", str(out)] + TRAIN,
              "--backbone cae needs image sides divisible by 4", "70×50", "crop them to 68×48", "pad them to 72×52")
    assert not out.exists()


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(data="d", arch="resnet20", epochs=1, warmup_epochs=0, device="cpu", **kw)


@pytest.mark.parametrize("kw, sizes, match", [
    (dict(method="ada", backbone="edsr"), [(50, 70)], None),                 # EDSR takes any size
    (dict(method="ada", backbone="unet"), [(50, 70)], "divisible by 4"),
    (dict(method="ada", backbone="edsr-down"), [(51, 70)], "divisible by 2"),
    (dict(method="ada", backbone="all"), [(50, 70)], "divisible by 4"),      # the strictest of the four
    (dict(method="ada", backbone="cae", preset="imagenet"), [(50, 70)], None),  # trained at 128×128
    (dict(method="ada", backbone="edsr"), [(8, 8)], "11×11 window"),
    (dict(method="ada", backbone="edsr", line_search=False), [(8, 8)], None),
    (dict(method="nominal"), [(50, 70)], None),
    (dict(method="nominal"), [(50, 70), (32, 32)], "different sizes"),
])
def test_size_rules(kw, sizes, match):
    cfg = _cfg(**kw)
    if match is None:
        check_image_sizes(cfg, sizes, "memory" if len(set(sizes)) == 1 else "stream")
    else:
        with pytest.raises(ConfigError, match=match):
            check_image_sizes(cfg, sizes, "stream")


def test_mixed_batch_in_a_worker_is_one_clean_error(tmp_path):
    """Sizes the header sample did not see reach a DataLoader worker: the error is raised in this process,
    one line, naming the sizes (not a worker's flattened traceback)."""
    data = _folder(tmp_path / "mixed", [(32, 32), (40, 40)], per_size=4)
    cfg = TrainConfig(data=str(data), out=str(tmp_path / "run"), arch="resnet20", epochs=1, warmup_epochs=0,
                      batch_size=8, device="cpu", data_path="stream", workers=1, progress=False)
    import adaaug.train.training_data as train_data

    real = train_data.sampled_sizes
    try:
        train_data.sampled_sizes = lambda files, sample=32: [(32, 32)]  # a sample that missed the 40×40 images
        source = load_training_data(cfg, D.DistEnv(), torch.Generator()).source
    finally:
        train_data.sampled_sizes = real
    with pytest.raises(ConfigError, match="different sizes") as caught:
        for _ in source.batches(0):
            pass
    assert "\n" not in str(caught.value) and "Traceback" not in str(caught.value)


# ---- --device: one check, before any work ------------------------------------------------------------------
@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _device_argv(command: str, tmp_path: Path) -> tuple[list[str], list[Path]]:
    """Arguments of ``command`` that are valid except for the device, and the paths it would write."""
    data = _folder(tmp_path / "data", [(32, 32)])
    ck = tmp_path / "ck.pt"
    ck.write_bytes(b"not read before the device is checked")
    out = tmp_path / "out"
    argv = {"train": ["train", "--data", str(data), "--out", str(out), "--batch-size", "2"],
            "eval": ["eval", "--checkpoint", str(ck), "--data", str(data), "--out", str(out / "r.json")],
            "bench": ["bench", "--out", str(out), "--backbones", "unet"],
            "bench --suite": ["bench", "--suite", "--out", str(out)],
            "deepaugment-data": ["deepaugment-data", str(data), str(out), "--weights", "none"],
            "mini-protocol": ["mini-protocol", "--data", str(data), "--dev", str(data), "--out", str(out)],
            "gpu-compare": ["gpu-compare", "--data", str(data), "--dev", str(data), "--out", str(out), "--work",
                            str(tmp_path / "work")]}[command]
    return argv, [out, tmp_path / "work"]


@pytest.mark.parametrize("command", ["train", "eval", "bench", "bench --suite", "deepaugment-data", "mini-protocol",
                                     "gpu-compare"])
def test_cuda_without_cuda_is_one_line_and_writes_nothing(tmp_path, capsys, no_cuda, command):
    argv, outputs = _device_argv(command, tmp_path)
    _one_line(capsys, argv + ["--device", "cuda"],
              "--device cuda asked for CUDA, which is not available here; use --device cpu")
    _one_line(capsys, argv + ["--device", "tpu"], "unknown --device 'tpu'; use auto, cpu, cuda or cuda:N")
    assert not any(p.exists() for p in outputs)


def test_every_device_option_is_checked_by_the_one_function():
    """Every command of the table that has --device gets it checked before its own code runs."""
    from adaaug.cli import _COMMANDS, command_parser

    with_device = [c for c in _COMMANDS if any("--device" in a.option_strings for a in command_parser(c)._actions)]
    assert set(with_device) == {"train", "eval", "bench", "deepaugment-data", "mini-protocol", "gpu-compare"}


def test_a_cuda_index_beyond_the_visible_devices(monkeypatch):
    from adaaug.runtime.devices import check_device, resolve_checked

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda:1") == "cuda:1" and resolve_checked(None).type == "cuda"
    with pytest.raises(ConfigError, match="no such CUDA device \\(2 visible\\); use --device cuda:0 .. cuda:1"):
        check_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_checked("auto") == torch.device("cpu")


# ---- a failed command removes what it started writing ------------------------------------------------------
@pytest.mark.parametrize("existing_dst", [False, True])
def test_failed_deepaugment_data_leaves_no_class_folders(tmp_path, capsys, monkeypatch, existing_dst):
    """Interrupted after its first batch, deepaugment-data removes the folders it made; the rerun needs no
    --overwrite. A DST folder that existed before (empty) stays."""
    from adaaug.augment.deepaugment import DeepAugment

    src = _folder(tmp_path / "src", [(16, 16)])
    dst = tmp_path / "dst"
    if existing_dst:
        dst.mkdir()
    calls = []
    real = DeepAugment.__call__

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the run
        return real(self, *args, **kwargs)

    argv = ["deepaugment-data", str(src), str(dst), "--weights", "none", "--batch-size", "2", "--no-progress"]
    monkeypatch.setattr(DeepAugment, "__call__", failing)
    assert cli(argv) == 130  # one line and Ctrl-C's exit status, no traceback
    assert len(calls) == 2 and dst.exists() == existing_dst
    assert not existing_dst or list(dst.iterdir()) == []
    monkeypatch.setattr(DeepAugment, "__call__", real)
    assert cli(argv) == 0  # no --overwrite needed
    assert sorted(p.name for p in (dst / "c0").iterdir()) == ["16x16_0.png", "16x16_1.png"]
    capsys.readouterr()


def test_deepaugment_data_checks_the_cae_size_before_writing(tmp_path, capsys):
    src = _folder(tmp_path / "src", [(18, 18)])
    _one_line(capsys, ["deepaugment-data", str(src), str(tmp_path / "dst"), "--backbone", "cae", "--weights",
                       "none"], "--backbone cae needs image sides divisible by 4", "18×18")
    assert not (tmp_path / "dst").exists()


def test_train_backbone_checks_sizes_before_writing(tmp_path, capsys):
    data = _folder(tmp_path / "odd", [(50, 70)])
    _one_line(capsys, ["train-backbone", "cae", "--data", str(data), "--out", str(tmp_path / "runs"), "--epochs", "1"],
              "cae needs image sides divisible by 4", "crop them to 68×48 or pad them to 72×52")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("checkpointed", [False, True])
def test_interrupted_train_backbone_keeps_only_a_resumable_run(tmp_path, monkeypatch, checkpointed):
    """Interrupted before its first checkpoint, train-backbone removes the folders it made; once a checkpoint
    exists the run is kept for --resume."""
    import adaaug.train.backbone as tb

    def interrupted(name, data, out, **kwargs):
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.jsonl").write_text("")
        if checkpointed:
            (out / "checkpoint.pt").write_bytes(b"epoch 1")
        raise KeyboardInterrupt

    monkeypatch.setattr(tb, "train_backbone", interrupted)
    data = _folder(tmp_path / "data", [(32, 32)])
    assert cli(["train-backbone", "unet", "--data", str(data), "--out", str(tmp_path / "runs"), "--no-progress"]) == 130
    assert (tmp_path / "runs" / "unet" / "checkpoint.pt").exists() == checkpointed
    assert (tmp_path / "runs").exists() == checkpointed


def test_eval_accepts_device_auto(tmp_path):
    """``auto`` is one of the forms the shared check accepts: eval maps it to its own default (CUDA if available)."""
    from adaaug.cli import command_parser
    from adaaug.evaluate.options import check_paths

    data = _folder(tmp_path / "data", [(32, 32)])
    args = command_parser("eval").parse_args(["--weights", "resnet20", "--data", str(data), "--out",
                                              str(tmp_path / "r.json"), "--device", "auto"])
    check_paths(args)
    assert args.device is None and args.label == "resnet20"
