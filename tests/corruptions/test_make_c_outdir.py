"""``make-c`` into a folder that holds something: refused, or with ``--overwrite`` only its own recorded files
replaced; the evaluation reads only the files ``make_c.json`` lists; ImageNet-C severities stored as the
release (JPEG quality 85) unless ``--lossless``."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from adaaug.cli import main as cli_main
from adaaug.corruptions.dataset import make_c
from adaaug.evaluate.metrics import evaluate_corruptions
from adaaug.evaluate.report import markdown_report
from adaaug.runtime.outdir import claim_output_dir


def _folder(root: Path, seed: int, n: int = 8, size: int = 32) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        (root / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / f"c{i % 2}" / f"{i}.png")
    return root


def _always_zero(source, columns=None) -> np.ndarray:
    return np.zeros(len(source), dtype=np.int64)


def test_non_empty_out_is_refused_and_overwrite_replaces_only_the_earlier_runs_files(tmp_path, capsys):
    src, other, out = _folder(tmp_path / "src", 0), _folder(tmp_path / "other", 1), tmp_path / "OUT"
    assert cli_main(["make-c", str(src), str(out), "--corruptions", "fog", "snow", "--no-progress"]) == 0
    first = (out / "fog.npy").read_bytes()
    capsys.readouterr()
    assert cli_main(["make-c", str(other), str(out), "--corruptions", "fog", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "is not empty" in err and "--overwrite" in err and err.count("\n") == 1
    assert (out / "fog.npy").read_bytes() == first  # nothing touched
    (out / "notes.txt").write_text("mine")
    assert cli_main(["make-c", str(other), str(out), "--corruptions", "fog", "--overwrite", "--no-progress"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["fog.npy", "labels.npy", "make_c.json", "notes.txt"]
    assert (out / "notes.txt").read_text() == "mine"  # a file make-c did not write stays
    assert (out / "fog.npy").read_bytes() != first
    meta = json.loads((out / "make_c.json").read_text())
    assert meta["corruptions"] == ["fog"] and sorted(meta["files"]) == ["fog.npy", "labels.npy"]
    assert meta["source"] == str(other)


def test_a_file_of_the_same_name_that_no_manifest_lists_is_not_replaced(tmp_path):
    src, out = _folder(tmp_path / "src", 0), tmp_path / "OUT"
    out.mkdir()
    np.save(out / "fog.npy", np.zeros(3))
    with pytest.raises(FileExistsError, match="fog.npy, which no make_c.json there lists"):
        make_c(str(src), out, corruptions=["fog"], overwrite=True, verbose=False)
    np.testing.assert_array_equal(np.load(out / "fog.npy"), np.zeros(3))


def test_claim_output_dir_removes_only_listed_paths_inside_the_folder(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside.txt"
    out.mkdir()
    outside.write_text("keep")
    for name in ("a.npy", "b.txt"):
        (out / name).write_text(name)
    assert claim_output_dir(tmp_path / "new", overwrite=False) == []
    with pytest.raises(FileExistsError, match="--overwrite"):
        claim_output_dir(out, overwrite=False)
    removed = claim_output_dir(out, overwrite=True, earlier=["a.npy", "../outside.txt", "gone.npy"])
    assert [p.name for p in removed] == ["a.npy"]
    assert outside.read_text() == "keep" and sorted(p.name for p in out.iterdir()) == ["b.txt"]


def test_evaluation_reads_only_listed_files_and_refuses_another_runs_file(tmp_path):
    src, other = _folder(tmp_path / "src", 0), _folder(tmp_path / "other", 1)
    make_c(str(src), tmp_path / "a", corruptions=["fog", "snow"], verbose=False)
    make_c(str(other), tmp_path / "b", corruptions=["fog"], verbose=False)
    out = tmp_path / "b"
    shutil.copy(tmp_path / "a" / "snow.npy", out / "snow.npy")  # a stale file of the first run, same shape
    res = evaluate_corruptions(_always_zero, out, classes=["c0", "c1"])
    assert list(res["errors"]) == ["fog"] and res["ignored"] == ["snow.npy"]
    labels = np.load(out / "labels.npy")[:8]
    assert res["errors"]["fog"] == [pytest.approx(100.0 * np.mean(labels != 0))] * 5  # by hand: every image → 0
    assert "**Not read:** snow.npy" in markdown_report({"cifar10_c": res})
    assert res["run_id"] == json.loads((out / "make_c.json").read_text())["run_id"]
    shutil.copy(tmp_path / "a" / "fog.npy", out / "fog.npy")  # another run's fog.npy under a listed name
    with pytest.raises(ValueError, match=r"fog.npy is not the file .*make_c.json .*records \(same size, other content\).*another run.*--overwrite"):
        evaluate_corruptions(_always_zero, out, classes=["c0", "c1"])
    (out / "fog.npy").unlink()
    with pytest.raises(ValueError, match="fog.npy is missing, but .*make_c.json .*lists it"):
        evaluate_corruptions(_always_zero, out, classes=["c0", "c1"])


def test_an_older_manifest_limits_the_corruptions_read(tmp_path):
    src = _folder(tmp_path / "src", 0)
    out = tmp_path / "c"
    make_c(str(src), out, corruptions=["fog", "snow"], verbose=False)
    meta = json.loads((out / "make_c.json").read_text())
    del meta["files"]
    meta["corruptions"] = ["snow"]
    (out / "make_c.json").write_text(json.dumps(meta))
    res = evaluate_corruptions(_always_zero, out, classes=["c0", "c1"])
    assert list(res["errors"]) == ["snow"] and res["ignored"] == ["fog.npy"]


def _jpeg85(images: np.ndarray) -> np.ndarray:
    """Independent reference: each image written as a quality-85 JPEG by Pillow and read back."""
    from PIL import Image

    out = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=85)
        out.append(np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")))
    return np.stack(out)


def test_imagenet_severities_are_stored_as_the_release_jpeg_unless_lossless(tmp_path, capsys):
    src = _folder(tmp_path / "src", 0)
    names = ["gaussian_noise", "contrast"]
    jpeg = make_c(str(src), tmp_path / "jpeg", size="imagenet", corruptions=names, verbose=False)
    exact = make_c(str(src), tmp_path / "exact", size="imagenet", corruptions=names, lossless=True, verbose=False)
    assert (jpeg["storage"], exact["storage"]) == ("jpeg-q85", "lossless")
    for name in names:
        lossless = np.load(tmp_path / "exact" / f"{name}.npy")
        stored = np.load(tmp_path / "jpeg" / f"{name}.npy")
        np.testing.assert_array_equal(stored, _jpeg85(lossless))
        assert np.abs(stored.astype(int) - lossless).mean() > 1.0
    cifar = make_c(str(src), tmp_path / "cifar", size="cifar", corruptions=["contrast"], verbose=False)
    assert cifar["storage"] == "lossless"  # CIFAR-10-C is released as exact .npy arrays
    assert json.loads((tmp_path / "jpeg" / "make_c.json").read_text())["storage"] == "jpeg-q85"
    res = evaluate_corruptions(_always_zero, tmp_path / "jpeg", classes=["c0", "c1"])
    assert "stored JPEG quality 85" in res["storage"] and "ImageNet-C severities" in res["storage"]
    assert "JPEG quality 85" in markdown_report({"cifar10_c": res})
    assert cli_main(["make-c", str(src), str(tmp_path / "cli"), "--size", "imagenet", "--corruptions", "contrast",
                     "--lossless", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["storage"] == "lossless"
