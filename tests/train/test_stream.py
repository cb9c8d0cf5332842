"""The streaming data path: sharded epoch order, per-example seeded augmentation in workers, bounded memory,
the choice between paths, and training on it (resume, two processes)."""
from __future__ import annotations

import pickle
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from adaaug import paper
from adaaug.augment.compose import standard_augment
from adaaug.train import sources as S
from adaaug.train import distributed as D
from adaaug.data.images import BadImageError, decode_image, list_image_folder, load_image_folder


@pytest.fixture(scope="module")
def folder64(tmp_path_factory) -> Path:
    """48 PNG images of 64×64 in 4 classes."""
    from conftest import write_image_folder

    return write_image_folder(tmp_path_factory.mktemp("f64") / "data", per_class=12, size=64, classes=4)


def _stream(root: Path, batch_size: int = 8, env: D.DistEnv | None = None, **kw) -> S.StreamSource:
    files, labels, classes = list_image_folder(root)
    return S.StreamSource(root, files, labels, classes, batch_size, env or D.DistEnv(), seed=3,
                          preset="imagenet", **kw)


def test_sampler_shards_the_in_memory_order():
    n, batch = 40, 8
    ranks = [S.EpochBatchSampler(n, batch, D.DistEnv(rank=r, world_size=2), seed=5) for r in range(2)]
    for epoch in (0, 1):
        for s in ranks:
            s.set_epoch(epoch)
        order = D.epoch_order(n, 5, epoch)
        steps = list(zip(*ranks))
        assert len(steps) == n // batch == len(ranks[0])
        for step, (a, b) in enumerate(steps):
            assert all(e == epoch for e, _ in a + b)
            assert [i for _, i in a + b] == order[step * batch:(step + 1) * batch].tolist()
    ranks[0].set_epoch(0)
    first = list(ranks[0])
    ranks[0].set_epoch(1)
    assert list(ranks[0]) != first


def test_streamed_batches_are_the_papers_crop_seeded_per_example(folder64):
    """Each example: decoded file → standard_augment (RandomResizedCrop 8–100 % → 128, flip) with a
    generator seeded from (seed, epoch, index); the same with 0 or 2 workers and on a second pass."""
    src = _stream(folder64)
    files, labels, _ = list_image_folder(folder64)
    epoch = 1
    batches = list(src.batches(epoch))
    assert len(batches) == src.steps_per_epoch() == 6
    order = D.epoch_order(len(files), 3, epoch)
    x, y, da = batches[2]
    assert x.dtype == torch.uint8 and x.shape == (8, 3, paper.IMAGENET_TRAIN_SIZE, paper.IMAGENET_TRAIN_SIZE)
    assert da is None
    for k, i in enumerate(order[16:24].tolist()):
        image = torch.from_numpy(decode_image(files[i])).permute(2, 0, 1)[None]
        g = torch.Generator().manual_seed(D.derive_seed(3, "standard", epoch, i))
        assert torch.equal(x[k], standard_augment(image, "imagenet", g)[0])
        assert y[k] == labels[i]
    again = list(_stream(folder64, workers=2).batches(epoch))
    assert all(torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) for a, b in zip(batches, again))
    other = next(iter(src.batches(0)))
    assert not torch.equal(other.images, batches[0].images)


def _peak_while_streaming(root: Path) -> int:
    tracemalloc.start()
    src = _stream(root, batch_size=10)
    for _ in src.batches(0):
        pass
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def _peak_loading(root: Path) -> int:
    tracemalloc.start()
    data = load_image_folder(root, cache=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del data
    return peak


def test_stream_memory_does_not_grow_with_the_dataset(make_image_folder, tmp_path):
    """Streaming 20 vs 100 images of 64×64: the same peak (one batch in flight); in memory, +80 images."""
    small = make_image_folder(tmp_path / "small", per_class=2, size=64)
    large = make_image_folder(tmp_path / "large", per_class=10, size=64, seed=1)
    image_bytes = 64 * 64 * 3
    # measured in a fresh interpreter: in a long test session, state left by earlier tests (first-use set-up,
    # worker start methods, the collector's generations) moved the streaming peak by megabytes
    code = ("import sys\nfrom pathlib import Path\nsys.path.insert(0, sys.argv[1])\nimport test_stream as T\n"
            "small, large = Path(sys.argv[2]), Path(sys.argv[3])\n"
            "T._peak_while_streaming(small)\n"  # first use (lazy imports, first-call set-up) is not measured
            "print(T._peak_while_streaming(large) - T._peak_while_streaming(small),"
            " T._peak_loading(large) - T._peak_loading(small))")
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(small), str(large)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    grow_stream, grow_memory = map(int, out.stdout.split()[-2:])
    assert grow_memory > 80 * image_bytes  # the reference: the in-memory path holds every image
    assert grow_stream < 10 * image_bytes, grow_stream
    # what a source (and every worker's copy of it) holds: the file names and labels, tens of bytes per image
    held = [len(pickle.dumps(_stream(root).dataset)) for root in (small, large)]
    assert (held[1] - held[0]) / 80 < 100


def test_auto_path_choice(make_image_folder, tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "d", per_class=2, classes=2)
    files = list_image_folder(root)[0]
    assert S.choose_data_path("auto", files) == "memory"
    assert S.choose_data_path("auto", files, threshold=4 * 32 * 32 * 3 - 1) == "stream"
    assert S.choose_data_path("auto", None) == "memory"  # cifar10:<root>
    assert S.choose_data_path("stream", files) == "stream" and S.choose_data_path("memory", files) == "memory"
    from PIL import Image
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(root / "airplane" / "big.png")
    assert S.choose_data_path("auto", list_image_folder(root)[0]) == "stream"  # mixed sizes
    with pytest.raises(ValueError, match="unknown data path"):
        S.choose_data_path("disk", files)


def test_stream_names_or_skips_unreadable_files(make_image_folder, tmp_path):
    root = make_image_folder(tmp_path / "d", per_class=4, size=64, classes=2, suffix=".jpg")
    bad = sorted((root / "automobile").iterdir())[0]
    bad.write_bytes(bad.read_bytes()[:300])
    with pytest.raises(BadImageError, match="automobile_0000.jpg.*--skip-bad-images"):
        list(_stream(root, batch_size=4).batches(0))
    src = _stream(root, batch_size=4, skip_bad=True)
    sizes = [len(b.labels) for b in src.batches(0)]
    assert sorted(sizes) == [3, 4] and src.skipped == 1


def _tiny(root: Path, out: Path, **kw):
    from adaaug.train.config import TrainConfig

    settings = dict(preset="imagenet", data=str(root), out=str(out), arch="resnet20", epochs=2, batch_size=4,
                    subset=8, warmup_epochs=1, progress=False, device="cpu", data_path="stream", workers=0,
                    eval_crop=None, eval_data=str(root), eval_batch_size=24)
    settings.update(kw)
    return TrainConfig(**settings)


def _ddp_worker(rank: int, world: int, port: int, root: str, out: str) -> None:
    import os

    import torch.distributed as dist

    from adaaug.train.loop import train

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        train(_tiny(Path(root), Path(out) / "straight"))

        def kill(epoch, record):
            if epoch == 1:
                raise KeyboardInterrupt

        try:
            train(_tiny(Path(root), Path(out) / "killed", workers=1), on_epoch_end=kill)
        except KeyboardInterrupt:
            pass
        train(_tiny(Path(root), Path(out) / "killed", resume=True))  # the worker count may change on resume
    finally:
        dist.destroy_process_group()


def test_two_process_stream_run_with_resume(folder64, tmp_path):
    """Two gloo processes stream 64×64 images with the ImageNet preset (random-resized crops to 128 px): both
    end with the same weights, and a run killed after epoch 1 (decoding in one DataLoader worker per process)
    and resumed (decoding in the main process) ends bitwise equal to the uninterrupted run."""
    import json
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # forked, as DataLoader workers are by default (so are this run's workers): a spawned process starts a fresh
    # interpreter (and its DataLoader workers too), which cost most of this test's time
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    mp.start_processes(_ddp_worker, args=(2, port, str(folder64), str(tmp_path)), nprocs=2, join=True,
                       start_method=method)
    a, b = (json.loads((tmp_path / d / "result.json").read_text()) for d in ("straight", "killed"))
    assert a["world_size"] == 2 and a["data_path"] == "stream" and a["local_batch"] == 2
    assert a["train_images"] == 8 and a["steps_per_epoch"] == 2
    assert a["ranks_agree"] and b["ranks_agree"]
    assert a["rank_checksums"] == b["rank_checksums"]
    metrics = [json.loads(x) for x in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2] and all(0 <= m["eval_acc"] <= 1 for m in metrics)
