"""Every set of one evaluation is scored at one size and on the same images: -C sets are read as stored (never
resized, RobustBench #59), a size other than the clean set's is refused, and ``--limit`` keeps the same
images at every severity (RobustBench #47); the report says what preprocessing each set got."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from adaaug.cli import main as cli_main
from adaaug.evaluate.metrics import evaluate_corruptions
from adaaug.evaluate.report import markdown_report
from adaaug.evaluate.sets import CorruptionDir, open_image_set

CLASSES = ["c0", "c1"]


class Zero(nn.Module):
    """Always predicts class 0, whatever the image size."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.ones(len(x)), torch.zeros(len(x))], 1) + self.w


def _png_tree(root: Path, size: int, per_class: int = 3, seed: int = 0, skip: str | None = None) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in CLASSES:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            if f"{c}/{i}.png" != skip:
                Image.fromarray(image).save(root / c / f"{i}.png")
    return root


def _folder_c(root: Path, size: int, skip: dict[int, str] | None = None) -> Path:
    for s in range(1, 6):
        _png_tree(root / "fog" / str(s), size, seed=s, skip=(skip or {}).get(s))
    return root


def test_a_folder_c_set_is_read_as_stored_not_resized_again(tmp_path):
    """Before, a size given for the clean set resized every stored -C image (shorter side to size/0.875) and
    cropped it back: the pixels must be the stored ones, as Pillow decodes them."""
    from PIL import Image

    root = _folder_c(tmp_path / "c", 32)
    batch = next(CorruptionDir(root, 32).source("fog", 2).batches(64))
    files = sorted((root / "fog" / "2").glob("*/*.png"))
    reference = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]).astype(np.float64) / 255
    np.testing.assert_allclose(batch.permute(0, 2, 3, 1).double().numpy(), reference, atol=1e-7)


def test_a_c_set_of_another_size_than_the_clean_set_is_refused(tmp_path):
    npy = tmp_path / "npy"
    npy.mkdir()
    np.save(npy / "fog.npy", np.zeros((10, 32, 32, 3), np.uint8))
    np.save(npy / "labels.npy", np.zeros(10, np.int64))
    for c_dir in (npy, _folder_c(tmp_path / "folders", 32)):
        with pytest.raises(ValueError, match=r"holds 32×32 images, but the clean set \(--data\) is scored at "
                                             r"64×64.*--image-size.*make-c SRC OUT --resize N"):
            CorruptionDir(c_dir, 64)
        CorruptionDir(c_dir, 32)  # the same size: fine


def test_an_array_clean_set_is_not_silently_left_at_its_stored_size(tmp_path):
    npy = tmp_path / "clean"
    npy.mkdir()
    np.save(npy / "images.npy", np.zeros((4, 32, 32, 3), np.uint8))
    np.save(npy / "labels.npy", np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="--image-size 64 resizes image folders only.*leave out --image-size"):
        open_image_set(npy, 64)
    assert len(open_image_set(npy, 32)) == 4


@pytest.fixture
def zero_checkpoint(tmp_path, monkeypatch):
    from adaaug.evaluate import command

    described = {"arch": "zero", "num_classes": len(CLASSES), "normalize": None, "method": None}
    monkeypatch.setattr(command, "load_model_described", lambda *a, **k: (Zero(), list(CLASSES), described))
    ck = tmp_path / "ck.pt"
    ck.write_bytes(b"")
    return ck


def _eval(ck: Path, tmp_path: Path, *extra: str) -> int:
    return cli_main(["eval", "--checkpoint", str(ck), "--out", str(tmp_path / "res.json"),
                     "--markdown", str(tmp_path / "table.md"), "--device", "cpu", "--overwrite", *extra])


def test_cli_refuses_a_32px_c_set_beside_a_64px_clean_set(tmp_path, zero_checkpoint, capsys):
    from adaaug.corruptions.dataset import make_c

    clean = _png_tree(tmp_path / "clean", 32)
    make_c(str(clean), tmp_path / "c", corruptions=["fog", "contrast"], verbose=False)
    assert _eval(zero_checkpoint, tmp_path, "--data", str(clean), "--image-size", "64",
                 "--cifar-c", str(tmp_path / "c")) == 2
    err = capsys.readouterr().err
    assert "holds 32×32 images, but the clean set (--data) is scored at 64×64" in err and "--image-size" in err
    assert not (tmp_path / "res.json").exists()
    assert _eval(zero_checkpoint, tmp_path, "--data", str(clean), "--cifar-c", str(tmp_path / "c")) == 0
    res = json.loads((tmp_path / "res.json").read_text())
    assert res["clean"]["image_size"] == [32, 32] and res["cifar10_c"]["image_size"] == [32, 32]
    assert res["cifar10_c"]["preprocessing"] == "read as stored, not resized (32×32)"
    assert "CIFAR-10-C severities, stored lossless" in res["cifar10_c"]["storage"]
    table = (tmp_path / "table.md").read_text()
    assert "Images: read as stored, not resized (32×32); CIFAR-10-C severities, stored lossless" in table


def test_limit_keeps_the_same_images_at_every_severity(tmp_path, zero_checkpoint):
    """One file missing at severity 3: before, positions were taken in each folder separately, so severity 3
    scored other images. By hand: 6 images (c0/0..2, c1/0..2), c0/2.png missing at severity 3 → 5 common;
    --limit 3 takes positions 0, 2, 4 of the sorted common names."""
    c = _folder_c(tmp_path / "c", 8, skip={3: "c0/2.png"})
    cdir = CorruptionDir(c, 8)
    expected = ["c0/0.png", "c1/0.png", "c1/2.png"]
    rows, keys, left_out = cdir.subset(3)
    assert keys == expected and left_out == 1
    for s in range(1, 6):
        assert cdir.source("fog", s, 3).keys() == expected
    clean = _png_tree(tmp_path / "clean", 8)
    assert _eval(zero_checkpoint, tmp_path, "--data", str(clean), "--cifar-c", str(c), "--limit", "3") == 0
    res = json.loads((tmp_path / "res.json").read_text())["cifar10_c"]
    assert res["subset"] == expected and res["left_out"] == 1
    assert res["errors"]["fog"] == [pytest.approx(100 * 2 / 3)] * 5  # two of the three are c1, scored as c0
    assert "the same 3 images at every corruption and severity" in markdown_report({"cifar10_c": res})


def test_limit_on_npy_c_sets_lists_the_rows(tmp_path):
    from adaaug.corruptions.dataset import make_c

    make_c(str(_png_tree(tmp_path / "src", 8, per_class=4)), tmp_path / "c", corruptions=["contrast"],
           verbose=False)
    res = evaluate_corruptions(Zero(), tmp_path / "c", classes=CLASSES, limit=3)
    assert res["subset"] == [0, 4, 7]  # by hand: round(linspace(0, 7, 3)) = 0, 3.5 → 4 (half to even), 7
    labels = np.load(tmp_path / "c" / "labels.npy")[:8]
    assert res["errors"]["contrast"] == [pytest.approx(100 * np.mean(labels[[0, 4, 7]] != 0))] * 5


def test_a_shift_set_of_another_size_is_refused(tmp_path, zero_checkpoint, capsys):
    """Another instance: a CIFAR-10.1-style array set at 16 px beside a clean set at 32 px."""
    shift = tmp_path / "shift"
    shift.mkdir()
    np.save(shift / "x_data.npy", np.zeros((4, 16, 16, 3), np.uint8))
    np.save(shift / "x_labels.npy", np.zeros(4, np.int64))
    assert _eval(zero_checkpoint, tmp_path, "--data", str(_png_tree(tmp_path / "clean", 32)),
                 "--cifar101", str(shift)) == 2
    assert "holds 16×16 images, but the clean set (--data) is scored at 32×32" in capsys.readouterr().err
