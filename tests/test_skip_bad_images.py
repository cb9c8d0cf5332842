"""Advice that works: ``make-c`` and ``eval`` take the ``--skip-bad-images`` their messages recommend (a skipped
file is named and counted in the report), other commands do not recommend it, and a class mismatch on a ``.npy``
-C set names a fix for arrays, not for folders."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from adaaug import cli

CLASSES = ("airplane", "automobile")  # two of CIFAR-10's, the packaged classifier's classes


def _png(path: Path, seed: int, size: int = 32) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)


def _folder(root: Path, per_class: int = 2, bad: str | None = "automobile/1.png") -> Path:
    for c, name in enumerate(CLASSES):
        for i in range(per_class):
            _png(root / name / f"{i}.png", 10 * c + i)
    if bad:
        data = (root / bad).read_bytes()
        (root / bad).write_bytes(data[: len(data) // 3])  # truncated
    return root


def _error(capsys, argv) -> str:
    rc = cli.main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("warning:")]
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_make_c_skips_and_records_unreadable_files(tmp_path, capsys):
    src = _folder(tmp_path / "src")
    line = _error(capsys, ["make-c", str(src), str(tmp_path / "c"), "--corruptions", "contrast", "--no-progress"])
    assert "automobile/1.png" in line and "--skip-bad-images" in line
    assert "--skip-bad-images" in cli.command_parser("make-c").format_help()
    assert not (tmp_path / "c").exists()
    for extra in ([], ["--resize", "32"]):  # both ways of reading the folder
        out = tmp_path / f"c{len(extra)}"
        assert cli.main(["make-c", str(src), str(out), "--corruptions", "contrast", "--no-progress",
                         "--skip-bad-images", *extra]) == 0
        captured = capsys.readouterr()
        assert "automobile/1.png" in captured.err  # named on stderr
        meta = json.loads((out / "make_c.json").read_text())
        assert meta["skipped"] == {"count": 1, "files": ["automobile/1.png"]} and meta["images"] == 3
        assert json.loads(captured.out.splitlines()[-1])["skipped"]["count"] == 1
        assert np.load(out / "labels.npy").tolist() == [0, 0, 1] * 5  # the readable images, in order


def test_make_c_of_only_unreadable_files_says_so(tmp_path, capsys):
    src = tmp_path / "src"
    for name in CLASSES:
        (src / name).mkdir(parents=True)
        (src / name / "0.png").write_bytes(b"not an image")
    line = _error(capsys, ["make-c", str(src), str(tmp_path / "c"), "--resize", "32", "--skip-bad-images",
                           "--no-progress"])
    assert "no readable images" in line


@pytest.mark.parametrize("image_size", [None, 32])  # decoded into memory, or read at --image-size
def test_eval_skips_and_reports_unreadable_files(tmp_path, capsys, image_size):
    data = _folder(tmp_path / "data")
    c_dir = tmp_path / "c"  # an ImageNet-C-layout set with a bad file at severity 3
    for s in range(1, 6):
        for c, name in enumerate(CLASSES):
            _png(c_dir / "fog" / str(s) / name / "0.png", 100 + s + c)
    (c_dir / "fog" / "3" / "airplane" / "0.png").write_bytes(b"truncated")
    size = [] if image_size is None else ["--image-size", str(image_size)]
    argv = ["eval", "--weights", "resnet20", "--data", str(data), "--out", str(tmp_path / "r.json"), "--no-progress",
            *size]
    line = _error(capsys, argv)
    assert "automobile/1.png" in line and "--skip-bad-images" in line
    assert cli.main(argv + ["--skip-bad-images", "--cifar-c", str(c_dir)]) == 0
    captured = capsys.readouterr()
    report = json.loads((tmp_path / "r.json").read_text())
    expected = [str(data / "automobile" / "1.png"), str(c_dir / "fog" / "3" / "airplane" / "0.png")]
    assert report["skipped"] == {"count": 2, "files": expected}
    assert report["clean"]["n"] == 3 and report["cifar10_c"]["n_per_set"]["fog"] == [2, 2, 1, 2, 2]
    assert "Skipped 2 unreadable image file(s)" in captured.out and "automobile/1.png" in captured.out
    # without the option the -C set's unreadable file is named, with the advice (its header is read first)
    (data / "automobile" / "1.png").unlink()
    line = _error(capsys, argv + ["--cifar-c", str(c_dir), "--overwrite"])
    assert "fog/3/airplane/0.png" in line and "--skip-bad-images" in line


@pytest.mark.parametrize("command", ["deepaugment-data", "train-backbone", "make-c"])
def test_only_commands_with_the_option_recommend_it(tmp_path, capsys, monkeypatch, command):
    import importlib

    from adaaug.data.images import BadImageError

    err = BadImageError("x/1.png", "truncated")
    assert "--skip-bad-images" not in err.for_command(lambda flag: False)
    assert "cannot read image x/1.png (truncated)" in err.for_command(lambda flag: False)

    def fails(args):  # the command's work, as far as it gets: an unreadable file
        raise BadImageError(tmp_path / "src" / "automobile" / "1.png", "truncated")

    monkeypatch.setattr(importlib.import_module(cli._COMMANDS[command][0]), "main", fails)
    argv = {"deepaugment-data": [str(tmp_path), str(tmp_path / "out")], "make-c": [str(tmp_path), str(tmp_path / "o")],
            "train-backbone": ["edsr", "--data", str(tmp_path)]}[command]
    line = _error(capsys, [command, *argv])
    assert "automobile/1.png" in line and "replace or delete it" in line
    assert ("--skip-bad-images" in line) == (command == "make-c")


@pytest.mark.parametrize("command, module, runner", [("mini-protocol", "adaaug.experiments.mini", "run"),
                                                     ("finetune", "adaaug.experiments.finetune", "run_grid")])
def test_experiments_with_their_own_error_line_leave_the_advice_out(tmp_path, capsys, monkeypatch, command, module,
                                                                    runner):
    import importlib

    from adaaug.data.images import BadImageError

    def fails(*args, **kwargs):
        raise BadImageError(tmp_path / "automobile" / "1.png", "truncated")

    monkeypatch.setattr(importlib.import_module(module), runner, fails)
    line = _error(capsys, [command, "--data", str(tmp_path), "--dev", str(tmp_path), "--out", str(tmp_path / "o")])
    assert "automobile/1.png" in line and "--skip-bad-images" not in line


def _npy_c_set(root: Path, classes: list[str]) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.save(root / "fog.npy", rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8))
    np.save(root / "labels.npy", np.tile(np.arange(2), 5))
    (root / "classes.json").write_text(json.dumps(classes))
    return root


def test_class_mismatch_on_an_npy_set_names_a_fix_for_arrays(tmp_path, capsys):
    data = _folder(tmp_path / "data", bad=None)
    c_dir = _npy_c_set(tmp_path / "c", ["airplane", "zebra"])
    line = _error(capsys, ["eval", "--weights", "resnet20", "--data", str(data), "--cifar-c", str(c_dir),
                           "--out", str(tmp_path / "r.json"), "--no-progress"])
    assert "zebra" in line and "class folders" not in line
    assert f"rename them in {c_dir / 'classes.json'}" in line and "adaaug make-c" in line
    # the same for a clean set of arrays, and folders still get the folder advice
    clean = _npy_c_set(tmp_path / "clean", ["airplane", "zebra"])
    (clean / "fog.npy").rename(clean / "images.npy")
    line = _error(capsys, ["eval", "--weights", "resnet20", "--data", str(clean), "--out", str(tmp_path / "r.json"),
                           "--no-progress"])
    assert "zebra" in line and "class folders" not in line and "classes.json" in line
    (data / "zebra").mkdir()
    _png(data / "zebra" / "0.png", 7)
    line = _error(capsys, ["eval", "--weights", "resnet20", "--data", str(data), "--out", str(tmp_path / "r.json"),
                           "--no-progress"])
    assert "zebra" in line and "remove or rename those class folders" in line
