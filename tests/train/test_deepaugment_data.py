"""``adaaug deepaugment-data``: same layout, PNG files, seeded, and clear errors."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adaaug.cli import main as cli_main


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for k in range(3):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / cls / f"img{k}.jpg")
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


def _read(root: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(root)): np.asarray(Image.open(p)) for p in sorted(root.rglob("*.png"))}


@pytest.mark.parametrize("backbone", ["edsr", "cae"])
def test_writes_same_layout_seeded(tmp_path, backbone):
    src = _folder(tmp_path / "src")
    args = ["deepaugment-data", str(src), "", "--backbone", backbone, "--weights", "none", "--batch-size", "4"]
    args[2] = str(tmp_path / "a")
    assert cli_main(args) == 0
    args[2] = str(tmp_path / "b")
    assert cli_main(args) == 0
    a, b = _read(tmp_path / "a"), _read(tmp_path / "b")
    assert sorted(a) == [f"{c}/img{k}.png" for c in ("cat", "dog") for k in range(3)]
    assert all(v.shape == (32, 32, 3) and v.dtype == np.uint8 for v in a.values())
    assert all(np.array_equal(a[k], b[k]) for k in a), "same seed must give the same files"
    original = np.asarray(Image.open(src / "cat" / "img0.jpg"))
    assert not np.array_equal(a["cat/img0.png"], original)
    assert not (src / ".adaaug-cache.npz").exists(), "the source tree must not be written to"


def test_refuses_non_empty_destination_and_same_directory(tmp_path, capsys):
    src = _folder(tmp_path / "src")
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "keep.txt").write_text("x")
    # the command line turns each mistake into one line on stderr and exit status 2
    for argv, message in ((["deepaugment-data", str(src), str(dst)], "--overwrite"),
                          (["deepaugment-data", str(src), str(src)], "differ from SRC"),
                          (["deepaugment-data", str(tmp_path / "missing"), str(tmp_path / "out")], "missing")):
        assert cli_main(argv + ["--weights", "none"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("adaaug deepaugment-data: error: ") and message in err[0]


def test_overwrite_replaces_only_the_earlier_runs_files(tmp_path, capsys):
    """Kind: a folder that already holds something. The earlier run's images (and its class folders left empty)
    go, a user's file stays, a stray image no run recorded is refused by name."""
    src = _folder(tmp_path / "src")
    dst = tmp_path / "dst"
    assert cli_main(["deepaugment-data", str(src), str(dst), "--weights", "none"]) == 0
    (dst / "bird").mkdir()  # as if an earlier run had a third class
    (dst / "bird" / "img9.png").write_bytes((dst / "cat" / "img0.png").read_bytes())
    manifest = json.loads((dst / "deepaugment_data.json").read_text())
    manifest["files"].append("bird/img9.png")
    (dst / "deepaugment_data.json").write_text(json.dumps(manifest))
    (dst / "notes.txt").write_text("mine")
    capsys.readouterr()
    assert cli_main(["deepaugment-data", str(src), str(dst), "--weights", "none"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli_main(["deepaugment-data", str(src), str(dst), "--weights", "none", "--overwrite"]) == 0
    assert sorted(p.name for p in dst.iterdir()) == ["cat", "deepaugment_data.json", "dog", "notes.txt"]
    assert sorted(_read(dst)) == [f"{c}/img{k}.png" for c in ("cat", "dog") for k in range(3)]
    (dst / "cat" / "stray.png").write_bytes((dst / "cat" / "img0.png").read_bytes())
    capsys.readouterr()
    assert cli_main(["deepaugment-data", str(src), str(dst), "--weights", "none", "--overwrite"]) == 2
    assert "cat/stray.png" in capsys.readouterr().err and (dst / "notes.txt").exists()


@pytest.mark.parametrize("names", [("img0.jpg", "img0.png"), ("a.jpg", "a.k.png")])
def test_images_whose_copies_would_collide_or_reorder_are_named_before_any_work(tmp_path, capsys, names):
    # a copy is <class>/<stem>.png, paired with its image by position: img0.jpg and img0.png would write one file;
    # a.jpg < a.k.png but a.k.png < a.png, so the copies would pair with the wrong images
    src = _folder(tmp_path / "src")
    for name in names:
        Image.new("RGB", (32, 32)).save(src / "dog" / name)
    assert cli_main(["deepaugment-data", str(src), str(tmp_path / "out"), "--weights", "none"]) == 2
    err = capsys.readouterr().err
    assert f"dog/{names[0]} and dog/{names[1]}" in err and "rename one of them" in err
    assert not (tmp_path / "out").exists()
