"""``make-c`` at any image size: ``--size auto`` says what it chose, ImageNet-C severities need no extra
package, sizes a table cannot take are refused before any file is written (messages in both the Python
and the command-line spelling), and ``--resize`` brings mixed sizes to one."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from adaaug.cli import main
from adaaug.corruptions import ALL, corrupt, frost_max_size
from adaaug.corruptions.weather import frost_textures
from adaaug.corruptions.dataset import make_c, resize_center_crop, resolve_params


def folder(root: Path, height: int, width: int, n: int = 2, sizes: list[tuple[int, int]] | None = None) -> Path:
    """ImageFolder with classes a, b of ``n`` random images each (``sizes``: one (H, W) per image instead)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    sizes = sizes or [(height, width)] * n
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_auto_rule():
    assert resolve_params("auto", 32, 32) == "cifar" and resolve_params("auto", 30, 20) == "cifar"
    assert resolve_params("auto", 33, 32) == "imagenet" and resolve_params("auto", 64, 64) == "imagenet"
    assert resolve_params("cifar", 224, 224) == "cifar" and resolve_params("imagenet", 8, 8) == "imagenet"
    with pytest.raises(ValueError, match="'cifar', 'imagenet' or 'auto'"):
        resolve_params("tiny", 64, 64)


def test_64px_all_corruptions_without_imagecorruptions(tmp_path, capsys, monkeypatch):
    """The reported case: 64×64 images, default --size auto, no imagecorruptions: ImageNet-C severities are
    written for all 19 corruptions and stderr says that auto chose them."""
    monkeypatch.setitem(sys.modules, "imagecorruptions", None)  # import fails as if not installed
    src = folder(tmp_path / "src", 64, 64, n=1)
    out = tmp_path / "out"
    assert main(["make-c", str(src), str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "size='auto' (--size auto) chose ImageNet-C severities because the images are 64×64" in err
    assert "--size cifar" in err
    for name in ALL:
        assert np.load(out / f"{name}.npy", mmap_mode="r").shape == (10, 64, 64, 3), name


def test_small_images_get_cifar_severities_and_frost(tmp_path, capsys):
    src = folder(tmp_path / "src", 30, 30)
    assert main(["make-c", str(src), str(tmp_path / "out"), "--corruptions", "motion_blur", "frost",
                 "--no-progress"]) == 0
    assert "chose CIFAR-10-C severities because the images are 30×30, at most 32×32" in capsys.readouterr().err
    assert np.load(tmp_path / "out" / "frost.npy").shape == (5 * 4, 30, 30, 3)


def test_imagenet_frost_at_any_size():
    """ImageNet-C severities: frost crops the photographs as the generator does while the image fits inside
    them (up to 314×526) and enlarges them beyond, so any size works."""
    rng = np.random.default_rng(0)
    for shape in ((5, 7), (224, 224), (314, 526), (315, 300), (700, 1000)):
        out = corrupt(np.full((1, *shape, 3), 90, np.uint8), "frost", 5, params="imagenet", rng=rng)
        assert out.shape == (1, *shape, 3) and out.std() > 1, shape


def test_frost_limit_is_what_the_textures_allow():
    textures = frost_textures(0.2)[:5]
    limit = (min(t.shape[0] for t in textures) - 1, min(t.shape[1] for t in textures) - 1)
    assert frost_max_size() == limit == (62, 104)
    assert f"{limit[0]}×{limit[1]}" in corrupt.__doc__  # the docstring states the limit the code applies
    rng = np.random.default_rng(0)
    assert corrupt(np.zeros((1, *limit, 3), np.uint8), "frost", 3, rng=rng).shape == (1, *limit, 3)
    with pytest.raises(ValueError, match=r"at most 62×104 .* got 63×104"):
        corrupt(np.zeros((1, 63, 104, 3), np.uint8), "frost", 3, rng=rng)


def test_frost_too_large_for_cifar_severities_names_the_flag(tmp_path, capsys):
    src = folder(tmp_path / "src", 40, 110)
    code = main(["make-c", str(src), str(tmp_path / "out"), "--size", "cifar", "--corruptions", "frost", "fog",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "takes images of at most 62×104" in err and "these are 40×110" in err
    assert "--size imagenet" in err and "--corruptions" in err and "params=" not in err
    assert not (tmp_path / "out" / "fog.npy").exists()  # refused before the first corruption was written
    # what the message suggests works
    assert main(["make-c", str(src), str(tmp_path / "out"), "--size", "imagenet", "--corruptions", "frost",
                 "--no-progress"]) == 0


def test_too_small_for_imagenet_severities(tmp_path, capsys):
    src = folder(tmp_path / "src", 3, 3)
    code = main(["make-c", str(src), str(tmp_path / "out"), "--size", "imagenet", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "at least 4×4" in err and "--resize N" in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_mixed_sizes_point_to_resize(tmp_path, capsys):
    src = folder(tmp_path / "src", 0, 0, sizes=[(40, 50), (60, 45)])
    code = main(["make-c", str(src), str(tmp_path / "out"), "--corruptions", "contrast", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "different sizes" in err and "--resize N" in err and "--data-path" not in err
    assert "(" + ", ".join(f"{w}×{h}" for h, w in sorted([(40, 50), (60, 45)])) + ")" in err  # W×H, no numpy tuples
    assert main(["make-c", str(src), str(tmp_path / "out"), "--corruptions", "contrast", "--resize", "48",
                 "--no-progress"]) == 0
    assert "chose ImageNet-C severities because the images are 48×48" in capsys.readouterr().err
    assert np.load(tmp_path / "out" / "contrast.npy").shape == (20, 48, 48, 3)
    assert main(["make-c", str(src), str(tmp_path / "o2"), "--corruptions", "contrast", "--resize", "32",
                 "--crop", "24", "--limit", "3", "--no-progress"]) == 0
    assert np.load(tmp_path / "o2" / "contrast.npy").shape == (15, 24, 24, 3)
    assert np.load(tmp_path / "o2" / "labels.npy").shape == (15,)


def test_resize_is_torchvision_resize_then_center_crop():
    """``resize_center_crop`` against torchvision's Resize(N) + CenterCrop(M) on PIL images (the ImageNet-C
    preprocessing), for portrait, landscape, square, odd margins, enlarging and shrinking."""
    from PIL import Image
    from torchvision import transforms

    rng = np.random.default_rng(1)
    for (h, w), n, m in (((300, 400), 256, 224), ((401, 299), 256, 224), ((50, 50), 64, 64), ((37, 91), 24, 21),
                         ((20, 30), 32, None)):
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ref = transforms.Compose([transforms.Resize(n), transforms.CenterCrop(m or n)])(Image.fromarray(image))
        np.testing.assert_array_equal(resize_center_crop(image, n, m), np.asarray(ref), err_msg=str((h, w, n, m)))


def test_resize_arguments_checked(tmp_path):
    src = folder(tmp_path / "src", 32, 32, n=1)
    with pytest.raises(ValueError, match="resize must be a positive integer"):
        make_c(str(src), tmp_path / "o", resize=0)
    with pytest.raises(ValueError, match=r"pass resize=N \(--resize N\) with N ≥ 40"):
        make_c(str(src), tmp_path / "o", resize=32, crop=40)
    with pytest.raises(ValueError, match="--resize N"):
        make_c(str(src), tmp_path / "o", crop=24)


def test_a_failed_make_c_leaves_no_folder_behind(tmp_path, monkeypatch):
    import adaaug.corruptions.dataset as M

    src = folder(tmp_path / "src", 32, 32)

    def broken(*args, **kwargs):
        raise MemoryError("simulated")

    monkeypatch.setattr(M, "_chunk_task", broken)
    with pytest.raises(MemoryError):
        make_c(str(src), tmp_path / "new" / "c", corruptions=["fog"], verbose=False)
    assert not (tmp_path / "new" / "c").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    with pytest.raises(MemoryError):
        make_c(str(src), mine, corruptions=["fog"], verbose=False)
    assert mine.is_dir() and not list(mine.iterdir())  # a folder that was there stays, with nothing added
