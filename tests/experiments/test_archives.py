"""Data archives (``mini-protocol``, ``gpu-compare``): each extracted into its own folder, again when it changes,
never over files adaaug did not extract."""
from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from adaaug.experiments.archives import resolve_spec


def _archive(path: Path, tmp_path: Path, classes: tuple[str, ...]) -> Path:
    """A ``.tar.gz`` of ``<split>/<class>/<image>`` with one image per class (from the generated tree)."""
    from PIL import Image

    src = tmp_path / f"src-{path.name}" / "split"
    for c in classes:
        (src / c).mkdir(parents=True)
        Image.new("RGB", (8, 8), (len(c), 0, 0)).save(src / c / "0.png")
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src, arcname="split")
    return path


def test_archives_whose_names_share_a_prefix_get_their_own_folders(tmp_path):
    # before: both went to dest/cifar10 (the name up to its first dot) and the second reused the first's images
    train = _archive(tmp_path / "cifar10.train.tar.gz", tmp_path, ("a", "b"))
    test = _archive(tmp_path / "cifar10.test.tgz", tmp_path, ("c", "d", "e"))
    dest = tmp_path / "data"
    first, second = resolve_spec(str(train), dest), resolve_spec(str(test), dest)
    assert first != second
    assert sorted(p.name for p in Path(first).iterdir()) == ["a", "b"]
    assert sorted(p.name for p in Path(second).iterdir()) == ["c", "d", "e"]


def test_a_changed_archive_is_extracted_again_and_an_unchanged_one_is_not(tmp_path):
    archive = _archive(tmp_path / "set.tar.gz", tmp_path, ("a",))
    dest = tmp_path / "data"
    spec = Path(resolve_spec(str(archive), dest))
    extracted = (spec / "a" / "0.png").stat().st_mtime_ns
    assert Path(resolve_spec(str(archive), dest)) == spec and (spec / "a" / "0.png").stat().st_mtime_ns == extracted
    archive.unlink()
    _archive(archive, tmp_path / "v2", ("x", "y"))
    os.utime(archive, ns=(extracted + 10**9, extracted + 10**9))  # a later modification time whatever the clock
    spec = Path(resolve_spec(str(archive), dest))
    assert sorted(p.name for p in spec.iterdir()) == ["x", "y"]


def test_what_a_killed_extraction_left_is_replaced(tmp_path):
    archive = _archive(tmp_path / "set.tar.gz", tmp_path, ("a",))
    target = tmp_path / "data" / "set"
    (target / "split" / "half").mkdir(parents=True)
    (target / ".extracting").write_text("an earlier run, killed while extracting\n")
    spec = Path(resolve_spec(str(archive), tmp_path / "data"))
    assert sorted(p.name for p in spec.iterdir()) == ["a"]
    assert sorted(p.name for p in target.iterdir()) == [".extracted", "split"]


def test_files_adaaug_did_not_extract_are_never_removed(tmp_path):
    archive = _archive(tmp_path / "set.tar.gz", tmp_path, ("a",))
    mine = tmp_path / "work" / "data" / "set" / "results.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("a user's file")
    with pytest.raises(FileExistsError, match="did not extract from set.tar.gz: move them away or choose another"):
        resolve_spec(str(archive), tmp_path / "work" / "data")
    assert mine.read_text() == "a user's file" and sorted(p.name for p in mine.parent.iterdir()) == ["results.txt"]


def test_gpu_compare_names_its_work_option(tmp_path, capsys):
    from adaaug.cli import main as cli_main

    archive = _archive(tmp_path / "set.tar.gz", tmp_path, ("a",))
    mine = tmp_path / "work" / "data" / "set" / "results.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("a user's file")
    argv = ["gpu-compare", "--data", str(archive), "--dev", str(archive), "--work", str(tmp_path / "work"),
            "--out", str(tmp_path / "out"), "--size", "tiny", "--device", "cpu"]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "choose another --work folder" in err[0] and mine.read_text() == "a user's file"
    assert not (tmp_path / "out").exists()  # nothing written for a run that did not start


@pytest.mark.parametrize("damage", ["absolute link", "truncated", "not a tar file"])
def test_an_archive_that_cannot_be_extracted_is_named_and_leaves_nothing(tmp_path, damage):
    archive = tmp_path / "set.tar.gz"
    if damage == "absolute link":  # tarfile's "data" filter refuses it (it would point outside the folder)
        (tmp_path / "src" / "a").mkdir(parents=True)
        (tmp_path / "src" / "b").symlink_to(tmp_path / "src" / "a", target_is_directory=True)
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(tmp_path / "src", arcname="split")
    else:
        whole = _archive(tmp_path / "whole.tar.gz", tmp_path, ("a", "b")).read_bytes()
        archive.write_bytes(whole[: len(whole) // 2] if damage == "truncated" else b"PK\x03\x04 a zip file")
    with pytest.raises(ValueError, match="cannot extract .*set.tar.gz: .*the extracted folder itself"):
        resolve_spec(str(archive), tmp_path / "data")
    assert not (tmp_path / "data" / "set").exists()
