"""Which entries of a folder are classes and images, the same on every path that reads a folder.

Users' trees hold more than images: Jupyter's ``.ipynb_checkpoints`` folder (counted as a class by
torchvision's ImageFolder, which shifts every label: pytorch/vision#2831, open-mmlab/mmpretrain#507),
macOS's ``._<name>`` AppleDouble companions with the image's own suffix (about 4 kB of metadata, not an
image), notes, and images in any of torchvision's formats (``.ppm`` as in GTSRB, ``.tif``, ``.pgm``). The
reference is torchvision's ImageFolder on a copy of the tree without the hidden entries.
"""
from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adaaug.data.images import IMAGE_SUFFIXES, list_image_folder, load_images

FORMATS = (".png", ".JPG", ".ppm", ".tif", ".pgm", ".bmp", ".webp", ".jpeg", ".tiff")
N_IMAGES = 3 * (len(FORMATS) + 3 * 2) + 3  # per class: one per format, 2 in each of 3 sub-folders; eagle: 3


def _messy_tree(root: Path, size: int = 16) -> Path:
    """Three classes with one image per format, plus what real folders also hold."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(("bird", "cat", "dog")):
        (root / name).mkdir(parents=True)
        for k, suffix in enumerate(FORMATS[c:] + FORMATS[:c]):
            image = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
            (image.convert("L") if suffix == ".pgm" else image).save(root / name / f"img{k}{suffix}")
            (root / name / f"._img{k}{suffix}").write_bytes(b"\x00\x05\x16\x07" + rng.bytes(4092))  # AppleDouble
        (root / name / "notes.txt").write_text("not an image")
        (root / name / ".DS_Store").write_bytes(rng.bytes(64))
        for sub in ("sub", "sub/deeper", "sub b", ".cache"):  # ImageFolder reads sub-folders, not hidden ones here
            (root / name / sub).mkdir()
            for k in range(2):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / name / sub / f"s{k}.png")
    hidden = root / ".ipynb_checkpoints"
    hidden.mkdir()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(hidden / "stray.png")
    # a class folder that is a symbolic link to one outside the tree (images kept on another disk)
    elsewhere = root.parent / f"{root.name}-elsewhere" / "eagle"
    elsewhere.mkdir(parents=True)
    for k in range(3):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(elsewhere / f"e{k}.jpg")
    (root / "eagle").symlink_to(elsewhere, target_is_directory=True)
    return root


def _reference(root: Path, tmp_path: Path) -> tuple[list[str], list[int], list[str]]:
    """torchvision's ImageFolder on a copy without hidden entries: relative paths, labels, classes."""
    from torchvision.datasets import ImageFolder

    clean = tmp_path / "reference"
    shutil.copytree(root, clean, ignore=shutil.ignore_patterns(".*"))
    folder = ImageFolder(str(clean))
    return ([str(Path(p).relative_to(clean)) for p, _ in folder.samples], [t for _, t in folder.samples],
            folder.classes)


def test_suffixes_are_torchvisions():
    from torchvision.datasets.folder import IMG_EXTENSIONS

    assert IMAGE_SUFFIXES == set(IMG_EXTENSIONS)


def test_list_image_folder_matches_imagefolder_without_hidden_entries(tmp_path):
    # train (memory and streamed), train-backbone and deepaugment-data list folders through this function
    root = _messy_tree(tmp_path / "data")
    files, labels, classes = list_image_folder(root)
    ref_files, ref_labels, ref_classes = _reference(root, tmp_path)
    assert classes == ref_classes == ["bird", "cat", "dog", "eagle"]
    assert [str(f.relative_to(root)) for f in files] == ref_files and labels == ref_labels
    assert len(files) == N_IMAGES


def test_a_messy_tree_decodes_into_memory(tmp_path):
    root = _messy_tree(tmp_path / "data")
    data = load_images(str(root))  # before: the AppleDouble files stopped it as unreadable images
    ref_files, ref_labels, ref_classes = _reference(root, tmp_path)
    assert data.classes == ref_classes and data.labels.tolist() == ref_labels
    first = np.asarray(Image.open(tmp_path / "reference" / ref_files[0]).convert("RGB"))
    assert np.array_equal(data.images[0].permute(1, 2, 0).numpy(), first)


def test_an_evaluation_folder_lists_the_same_images(tmp_path):
    from adaaug.evaluate.sources import FolderSource

    root = _messy_tree(tmp_path / "data")
    source = FolderSource(root)
    files, labels, classes = list_image_folder(root)
    assert source.files == files and source.labels.tolist() == labels and source.classes == classes
    assert sum(len(b) for b in source.batches(8)) == len(files)


def test_a_c_folder_with_hidden_entries_matches_the_model_classes(tmp_path):
    from adaaug.evaluate.metrics import _check_c_classes
    from adaaug.evaluate.sets import CorruptionDir

    for severity in range(1, 6):
        _messy_tree(tmp_path / "c" / "fog" / str(severity))
    cdir = CorruptionDir(tmp_path / "c", None)
    # before: ".ipynb_checkpoints" was a class the model does not have (ValueError)
    _check_c_classes(cdir, [("fog", s) for s in range(1, 6)], ["bird", "cat", "dog", "eagle"], 4)
    assert len(cdir.source("fog", 3)) == N_IMAGES
    with pytest.raises(ValueError, match="eagle"):  # the check still refuses a class the model lacks
        _check_c_classes(cdir, [("fog", 1)], ["bird", "cat", "dog"], 3)


def test_deepaugment_data_writes_one_file_per_image(tmp_path):
    from adaaug.cli import main as cli_main

    root = _messy_tree(tmp_path / "data")
    out = tmp_path / "out"
    assert cli_main(["deepaugment-data", str(root), str(out), "--backbone", "edsr", "--weights", "none",
                     "--batch-size", "8"]) == 0
    written = sorted(str(p.relative_to(out).with_suffix("")) for p in out.rglob("*.png"))
    assert written == sorted(str(Path(f).with_suffix("")) for f in _reference(root, tmp_path)[0])


def test_an_archive_with_a_hidden_folder_beside_its_split(tmp_path):
    from adaaug.experiments.archives import resolve_spec

    _messy_tree(tmp_path / "src" / "train")
    (tmp_path / "src" / ".ipynb_checkpoints").mkdir()
    archive = tmp_path / "data.tar.gz"
    with tarfile.open(archive, "w:gz", dereference=True) as tar:  # the linked class folder as files
        for name in ("train", ".ipynb_checkpoints"):
            tar.add(tmp_path / "src" / name, arcname=name)
    spec = resolve_spec(str(archive), tmp_path / "extracted")
    assert Path(spec).name == "train" and list_image_folder(spec)[2] == ["bird", "cat", "dog", "eagle"]


def test_a_class_folder_without_images_is_refused_naming_it(tmp_path):
    # torchvision's ImageFolder refuses it too; before, it became a class (an output that never trains)
    root = _messy_tree(tmp_path / "data")
    (root / "emu").mkdir()
    (root / "emu" / "._img0.png").write_bytes(b"\x00\x05\x16\x07")  # only a companion file: still no image
    with pytest.raises(ValueError, match=r"class folders with no image files in them \(emu\)"):
        list_image_folder(root)
    with pytest.raises(ValueError, match="emu"):
        load_images(str(root))
