"""``make-c`` at sizes its severities cannot take: refused before any file is written, with a message that
says what ``--size auto`` chose and why, in both the Python and the command-line spelling, and what to pass."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adaaug.cli import main
from adaaug.protocol.corruptions import _frost_textures, corrupt, frost_max_size
from adaaug.protocol.make_c import make_c


def folder(root: Path, height: int, width: int, n: int = 2) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_auto_on_small_images_says_what_it_chose(tmp_path, capsys):
    src = folder(tmp_path / "src", 30, 30)
    out = tmp_path / "out"
    code = main(["make-c", str(src), str(out), "--corruptions", "motion_blur", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "size='auto' (--size auto) chose ImageNet-C severities because the images are 30×30, not 32×32" in err
    assert "pass size='cifar' (--size cifar)" in err
    assert not out.exists() or not list(out.iterdir())  # refused before anything was written


def test_small_images_work_with_cifar_severities(tmp_path):
    src = folder(tmp_path / "src", 30, 30)
    meta = make_c(str(src), tmp_path / "out", size="cifar", corruptions=["motion_blur", "frost"], verbose=False)
    assert meta["params"] == "cifar"
    assert np.load(tmp_path / "out" / "frost.npy").shape == (5 * 4, 30, 30, 3)


def test_frost_limit_is_what_the_textures_allow():
    textures = _frost_textures(0.2)[:5]
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
    assert "--size imagenet" in err and "--corruptions" in err
    assert not (tmp_path / "out" / "fog.npy").exists()  # refused before the first corruption was written
