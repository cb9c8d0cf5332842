"""Decoded-folder cache outside the data, keyed to the files; unreadable images named, or skipped on request."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from adaaug.data import cache
from adaaug.data import images as data
from adaaug.data.images import BadImageError, load_image_folder


def _listing(root: Path) -> list[tuple[str, int, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*"))


def _read_only(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _writable(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)


def _count_decodes(monkeypatch) -> list[int]:
    calls = [0]
    real = data.decode_image

    def counting(path):
        calls[0] += 1
        return real(path)

    monkeypatch.setattr(data, "decode_image", counting)
    return calls


def _reference(root: Path) -> torch.Tensor:
    """The images decoded directly with PIL, in sorted class/file order."""
    files = sorted(f for d in sorted(root.iterdir()) for f in d.iterdir())
    return torch.stack([torch.from_numpy(np.array(Image.open(f).convert("RGB"))).permute(2, 0, 1) for f in files])


def test_cache_lives_outside_a_read_only_data_tree_and_is_reused(make_image_folder, tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "data", per_class=3, classes=3)
    monkeypatch.setenv("ADAAUG_CACHE", str(tmp_path / "cache"))
    before = _listing(root)
    _read_only(root)
    try:
        calls = _count_decodes(monkeypatch)
        first = load_image_folder(root)
        assert calls[0] == 9
        second = load_image_folder(root)
        assert calls[0] == 9  # the second load came from the cache
    finally:
        _writable(root)
    assert _listing(root) == before  # nothing written, renamed or touched under the data directory
    assert torch.equal(first.images, _reference(root)) and torch.equal(second.images, first.images)
    assert torch.equal(second.labels, torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2])) and second.classes == first.classes
    entries = list((tmp_path / "cache").iterdir())
    assert len(entries) == 1 and entries[0].suffix == ".npz" and not entries[0].name.startswith(".")


def test_changed_added_or_touched_images_give_a_new_key(make_image_folder, tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "data", per_class=2, classes=2)
    monkeypatch.setenv("ADAAUG_CACHE", str(tmp_path / "cache"))
    old = load_image_folder(root)
    # rewrite one image (new content, size and modification time): a new key, so fresh pixels
    victim = sorted((root / "automobile").iterdir())[0]
    stamp = victim.stat().st_mtime_ns
    Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(victim)
    os.utime(victim, ns=(stamp + 10**9, stamp + 10**9))
    new = load_image_folder(root)
    assert torch.equal(new.images[2], torch.full((3, 32, 32), 7, dtype=torch.uint8))
    assert not torch.equal(new.images[2], old.images[2])
    Image.fromarray(np.full((32, 32, 3), 9, np.uint8)).save(root / "airplane" / "zz_new.png")
    assert len(load_image_folder(root)) == 5
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 3


def test_cache_location_follows_the_environment(make_image_folder, tmp_path, monkeypatch):
    monkeypatch.delenv("ADAAUG_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir() == tmp_path / "xdg" / "adaaug"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "adaaug"
    monkeypatch.setenv("ADAAUG_CACHE", "off")
    assert cache.cache_dir() is None
    root = make_image_folder(tmp_path / "data", per_class=1, classes=2)
    calls = _count_decodes(monkeypatch)
    load_image_folder(root), load_image_folder(root)
    assert calls[0] == 4 and not (tmp_path / "home").exists()  # caching off: decoded twice, nothing written
    # a cache directory inside the data tree is refused
    monkeypatch.setenv("ADAAUG_CACHE", str(root / "cache"))
    load_image_folder(root)
    assert not (root / "cache").exists()


def test_damaged_entry_is_rebuilt_and_writes_are_atomic(make_image_folder, tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "data", per_class=2, classes=2)
    monkeypatch.setenv("ADAAUG_CACHE", str(tmp_path / "cache"))
    good = load_image_folder(root)
    (entry,) = (tmp_path / "cache").iterdir()
    entry.write_bytes(entry.read_bytes()[:100])  # a truncated entry (a crash mid-write never leaves one)
    again = load_image_folder(root)
    assert torch.equal(again.images, good.images)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [entry.name]  # no temporary files left


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def test_unreadable_image_is_named_or_skipped(make_image_folder, tmp_path, monkeypatch, capsys):
    root = make_image_folder(tmp_path / "data", per_class=3, classes=2, suffix=".jpg")
    monkeypatch.setenv("ADAAUG_CACHE", str(tmp_path / "cache"))
    bad = sorted((root / "automobile").iterdir())[1]
    _truncate(bad)
    (root / "airplane" / "notes.png").write_text("not an image")
    with pytest.raises(BadImageError, match="--skip-bad-images") as info:
        load_image_folder(root)
    assert info.value.path == str(root / "airplane" / "notes.png")
    data_ = load_image_folder(root, skip_bad=True)
    assert len(data_) == 5 and data_.labels.tolist() == [0, 0, 0, 1, 1]
    assert "skipped 2 unreadable image(s)" in capsys.readouterr().err
    with pytest.raises(BadImageError):  # the cached decode remembers what it skipped
        load_image_folder(root)
    assert len(load_image_folder(root, skip_bad=True)) == 5


def test_eval_sets_use_the_same_cache(make_image_folder, tmp_path, monkeypatch):
    from adaaug.evaluate.sets import open_image_set

    root = make_image_folder(tmp_path / "data", per_class=2, classes=2)
    monkeypatch.setenv("ADAAUG_CACHE", str(tmp_path / "cache"))
    before = _listing(root)
    assert len(open_image_set(str(root))) == 4
    assert _listing(root) == before and len(list((tmp_path / "cache").iterdir())) == 1
