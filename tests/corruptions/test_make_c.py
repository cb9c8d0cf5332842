"""``adaaug make-c`` and the corruption functions: file format, label order, severities, seeding, errors."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from adaaug.cli import main as cli_main
from adaaug.corruptions import ALL, BENCHMARK, EXTRA, corrupt
from adaaug.data.images import load_images
from adaaug.corruptions.dataset import make_c


def _smooth_images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """uint8 ``n×size×size×3`` smooth random images (pure noise would hide the blurs)."""
    from scipy.ndimage import gaussian_filter

    img = gaussian_filter(np.random.default_rng(seed).random((n, size, size, 3)), (0, 2, 2, 0))
    lo, hi = img.min(axis=(1, 2, 3), keepdims=True), img.max(axis=(1, 2, 3), keepdims=True)
    return (255 * (img - lo) / (hi - lo + 1e-9)).astype(np.uint8)


def _write_folder(root: Path, per_class: int = 3, size: int = 32, classes: int = 2, seed: int = 0) -> Path:
    """A small ImageFolder ``root/class<k>/<i>.png``."""
    from PIL import Image

    images = _smooth_images(per_class * classes, size, seed)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(images[c * per_class + i]).save(root / f"class{c}" / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def dev_c(cifar_dev_subset, tmp_path_factory) -> tuple[Path, Path]:
    """All 19 corruptions of the 200 dev images (about 3 s)."""
    out = tmp_path_factory.mktemp("dev_c")
    make_c(str(cifar_dev_subset), out, seed=0, verbose=False)
    return cifar_dev_subset, out


def test_files_shapes_dtypes_and_label_order(dev_c):
    src, out = dev_c
    names = {p.name for p in out.iterdir()}
    assert names == {f"{c}.npy" for c in ALL} | {"labels.npy", "make_c.json"}
    assert len(ALL) == 19 and len(BENCHMARK) == 15 and set(EXTRA) == {"speckle_noise", "gaussian_blur", "spatter",
                                                                       "saturate"}
    clean = load_images(str(src))
    n = len(clean)
    assert n == 200
    labels = np.load(out / "labels.npy")
    assert labels.dtype == np.int64 and labels.shape == (5 * n,)
    np.testing.assert_array_equal(labels, np.tile(clean.labels.numpy(), 5))  # severities stacked, source order
    for name in ALL:
        arr = np.load(out / f"{name}.npy", mmap_mode="r")
        assert arr.dtype == np.uint8 and arr.shape == (5 * n, 32, 32, 3), name
    meta = json.loads((out / "make_c.json").read_text())
    assert meta["params"] == "cifar" and meta["images"] == n and meta["seed"] == 0


def test_severity_grows(dev_c):
    """Mean |corrupted − clean| grows with severity: from 1 to 5 for all but at most two corruptions,
    and step by step for those whose CIFAR-10-C parameters are monotone."""
    src, out = dev_c
    clean = load_images(str(src)).images.permute(0, 2, 3, 1).numpy().astype(np.float64)
    n = len(clean)
    dev = {}
    for name in ALL:
        arr = np.load(out / f"{name}.npy").astype(np.float64)
        dev[name] = [np.abs(arr[s * n:(s + 1) * n] - clean).mean() for s in range(5)]
    grows = [c for c in ALL if dev[c][4] > dev[c][0]]
    assert len(grows) >= 17, {c: np.round(d, 2) for c, d in dev.items()}
    monotone = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "defocus_blur", "zoom_blur",
                "gaussian_blur", "fog", "brightness", "contrast", "pixelate", "jpeg_compression")
    for name in monotone:
        assert all(b > a for a, b in zip(dev[name], dev[name][1:])), (name, dev[name])
    for name in ALL:  # every severity changes the images
        assert min(dev[name]) > 0.1, (name, dev[name])


def test_same_seed_same_files_other_seed_differs(dev_c, tmp_path):
    src, out = dev_c
    again = tmp_path / "again"
    make_c(str(src), again, seed=0, verbose=False)
    for name in ALL:
        assert (again / f"{name}.npy").read_bytes() == (out / f"{name}.npy").read_bytes(), name
    other = tmp_path / "other"
    make_c(str(src), other, seed=1, corruptions=["gaussian_noise", "frost"], verbose=False)
    for name in ("gaussian_noise", "frost"):
        assert not np.array_equal(np.load(other / f"{name}.npy"), np.load(out / f"{name}.npy"))


def test_corruption_file_does_not_depend_on_the_others(tmp_path):
    src = _write_folder(tmp_path / "src")
    make_c(str(src), tmp_path / "a", corruptions=["snow", "fog"], verbose=False)
    make_c(str(src), tmp_path / "b", corruptions=["fog"], verbose=False)
    assert (tmp_path / "a" / "fog.npy").read_bytes() == (tmp_path / "b" / "fog.npy").read_bytes()


def test_cli_limit_and_subset(tmp_path):
    src = _write_folder(tmp_path / "src", per_class=5)
    out = tmp_path / "c"
    rc = cli_main(["make-c", str(src), str(out), "--limit", "4", "--seed", "3",
                   "--corruptions", "contrast", "spatter"])
    assert rc == 0
    assert {p.name for p in out.glob("*.npy")} == {"contrast.npy", "spatter.npy", "labels.npy"}
    assert np.load(out / "contrast.npy").shape == (20, 32, 32, 3)
    assert np.load(out / "labels.npy").shape == (20,)


@pytest.mark.parametrize("names", [("fog", "glass_blur", "gaussian_blur"),
                                   ("gaussian_noise", "motion_blur", "frost", "elastic_transform")])
def test_imagenet_params_seeded_and_global_rng_untouched(names, monkeypatch):
    """ImageNet-C values need no optional package (imagecorruptions made unimportable here), are seeded by
    the generator alone, and leave numpy's global RNG as it was."""
    monkeypatch.setitem(sys.modules, "imagecorruptions", None)
    images = _smooth_images(2, 64)
    np.random.seed(123)
    state = np.random.get_state()
    for name in names:
        a = corrupt(images, name, 3, params="imagenet", rng=np.random.default_rng(0))
        b = corrupt(images, name, 3, params="imagenet", rng=np.random.default_rng(0))
        assert a.dtype == np.uint8 and a.shape == images.shape, name
        np.testing.assert_array_equal(a, b, err_msg=name)
        assert np.abs(a.astype(int) - images).mean() > 0.5, name
    after = np.random.get_state()
    assert after[0] == state[0] and np.array_equal(after[1], state[1]) and after[2] == state[2]


def test_imagenet_severities_are_stronger_than_cifar_ones():
    """The two tables drive one implementation: on the same 64×64 images, ImageNet-C's severity 5 moves
    pixels further than CIFAR-10-C's for the corruptions whose ImageNet-C values are larger."""
    images = _smooth_images(2, 64, seed=1)
    for name in ("gaussian_noise", "motion_blur", "gaussian_blur", "contrast", "pixelate", "jpeg_compression"):
        dev = {p: np.abs(corrupt(images, name, 5, params=p, rng=np.random.default_rng(0)).astype(int)
                         - images).mean() for p in ("cifar", "imagenet")}
        assert dev["imagenet"] > dev["cifar"] > 0, (name, dev)


def test_frost_textures_are_packaged_as_recorded():
    """The six textures ship inside adaaug (no imagecorruptions needed) with the sha256 their README records."""
    import hashlib
    import re
    from importlib import resources

    from adaaug.corruptions.weather import frost_textures

    folder = resources.files("adaaug.corruptions") / "frost"
    recorded = dict(re.findall(r"\| (frost\d\.(?:png|jpg)) \| ([0-9a-f]{64}) \|", (folder / "README.md").read_text()))
    assert len(recorded) == 6
    for name, digest in recorded.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name
    full, cifar = frost_textures(1.0), frost_textures(0.2)
    assert [t.shape for t in full][:2] == [(600, 900, 3), (315, 560, 3)]
    assert all(t.dtype == np.uint8 for t in full)
    assert [t.shape[:2] for t in cifar][0] == (120, 180)  # CIFAR-10-C shrinks them to a fifth
    image = np.full((1, 32, 32, 3), 100, np.uint8)
    out = corrupt(image, "frost", 5, params="cifar", rng=np.random.default_rng(0))
    assert out.shape == image.shape and not np.array_equal(out, image)


def test_auto_size_picks_imagenet_for_large_images(tmp_path):
    src = _write_folder(tmp_path / "src", per_class=1, size=40, classes=1)
    meta = make_c(str(src), tmp_path / "c", corruptions=["fog"], verbose=False)
    assert meta["params"] == "imagenet"
    assert np.load(tmp_path / "c" / "fog.npy").shape == (5, 40, 40, 3)


def test_bad_inputs(tmp_path):
    img = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(img, "rain", 1)
    with pytest.raises(ValueError, match="severity"):
        corrupt(img, "fog", 6)
    with pytest.raises(TypeError, match="uint8"):
        corrupt(img.astype(np.float32), "fog", 1)
    with pytest.raises(ValueError, match="frost textures"):
        corrupt(np.zeros((1, 100, 100, 3), np.uint8), "frost", 1, params="cifar")
    assert corrupt(img[:0], "fog", 1).shape == (0, 32, 32, 3)
    src = _write_folder(tmp_path / "src", per_class=1)
    with pytest.raises(ValueError, match="unknown corruption"):
        make_c(str(src), tmp_path / "o", corruptions=["rain"])
    with pytest.raises(ValueError, match="seed"):
        make_c(str(src), tmp_path / "o", seed=-1)
    with pytest.raises(FileNotFoundError):
        make_c(str(tmp_path / "missing"), tmp_path / "o")


def test_workers_give_byte_identical_files(tmp_path, monkeypatch):
    """Two processes write exactly the files one process writes (chunks seeded by position, not by worker);
    the chunk size is shrunk so that each corruption is split over several chunks and both workers."""
    from adaaug.corruptions import dataset as M

    monkeypatch.setattr(M, "CHUNK", 3)  # the spawned workers read the module's value: keep both paths alike
    src = _write_folder(tmp_path / "src", per_class=4)  # 8 images: chunks of 3, 3, 2
    names = ["gaussian_noise", "glass_blur", "contrast"]
    one = M.make_c(str(src), tmp_path / "one", corruptions=names, workers=1, verbose=False)
    two = M.make_c(str(src), tmp_path / "two", corruptions=names, workers=2, verbose=False)
    for name in names + ["labels"]:
        assert (tmp_path / "one" / f"{name}.npy").read_bytes() == (tmp_path / "two" / f"{name}.npy").read_bytes(), name
    assert set(one["seconds"]) == set(two["seconds"]) == set(names)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        [f"{n}.npy" for n in names] + ["labels.npy", "make_c.json"])  # no temporary files left
    with pytest.raises(ValueError, match="workers"):
        M.make_c(str(src), tmp_path / "bad", corruptions=names, workers=0)


def test_chunk_size_bounds_pixels_per_task(tmp_path, monkeypatch):
    """Chunks hold CHUNK images up to 64×64 and proportionally fewer above; with ImageNet-C severities on
    larger images, two processes still write exactly what one writes."""
    from adaaug.corruptions import dataset as M

    assert M.chunk_size(32, 32) == M.chunk_size(64, 64) == 500
    assert M.chunk_size(224, 224) == 40 and M.chunk_size(5000, 5000) == 1
    monkeypatch.setattr(M, "CHUNK", 2)  # 96×96: 2·64·64 // 96² = 0 → 1 image per chunk, 4 chunks
    assert M.chunk_size(96, 96) == 1
    src = _write_folder(tmp_path / "src", per_class=2, size=96)
    names = ["frost", "elastic_transform"]
    one = M.make_c(str(src), tmp_path / "one", corruptions=names, workers=1, verbose=False)
    M.make_c(str(src), tmp_path / "two", corruptions=names, workers=2, verbose=False)
    assert one["params"] == "imagenet"
    for name in names:
        assert (tmp_path / "one" / f"{name}.npy").read_bytes() == (tmp_path / "two" / f"{name}.npy").read_bytes()


def test_workers_start_single_threaded_and_settings_restored(tmp_path, monkeypatch):
    """BLAS reads its thread count when numpy loads, before the pool initialiser runs: the workers must be
    spawned with the variables already set; this process's environment is left as it was."""
    import os

    from adaaug.corruptions import dataset as M

    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    seen = {}
    import concurrent.futures

    class Spy(concurrent.futures.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs):
            seen.update({v: os.environ.get(v) for v in M._THREAD_VARS})
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", Spy)
    src = _write_folder(tmp_path / "src", per_class=2)
    monkeypatch.setattr(M, "CHUNK", 2)
    M.make_c(str(src), tmp_path / "o", corruptions=["contrast"], workers=2, verbose=False)
    assert seen == dict.fromkeys(M._THREAD_VARS, "1")
    assert os.environ["OMP_NUM_THREADS"] == "7" and "OPENBLAS_NUM_THREADS" not in os.environ


def test_a_missing_optional_package_names_the_extra(monkeypatch):
    # a corruption needing SciPy (glass blur's Gaussian filter), as seen without the protocol extra
    import builtins

    real_import = builtins.__import__

    def no_scipy(name, *args, **kwargs):
        if name == "scipy" or name.startswith("scipy."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    images = np.zeros((1, 32, 32, 3), np.uint8)
    with pytest.raises(ModuleNotFoundError, match=r"glass_blur corruption needs scipy.*adaaug\[protocol\]"):
        corrupt(images, "glass_blur", 1, rng=np.random.default_rng(0))
