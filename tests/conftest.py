"""Shared fixtures: a tiny classifier, and CIFAR-10 subsets extracted from ../shared/data."""
from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
TRAIN_TAR = SHARED_DATA / "cifar10-jpeg-train.tar.gz"
DEV_TAR = SHARED_DATA / "cifar10-jpeg-test-dev.tar.gz"


class TinyNet(nn.Module):
    """A small conv classifier with BatchNorm (so train/eval mode matters), taking [0, 1] images."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn(self.conv(x)))
        h = torch.relu(self.conv2(h))
        return self.fc(h.mean((2, 3)))


@pytest.fixture(autouse=True)
def _single_thread():
    """One torch thread per test: the 2-core CI machine runs faster without oversubscription."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_net() -> TinyNet:
    torch.manual_seed(0)
    net = TinyNet()
    # give BatchNorm non-trivial running statistics
    with torch.no_grad():
        net.train()(torch.rand(16, 3, 32, 32))
    return net


def _extract(tar_path: Path, dest: Path, per_class: int) -> Path:
    """Extract the first ``per_class`` images of every class from an ImageFolder tarball."""
    counts: dict[str, int] = {}
    with tarfile.open(tar_path) as tar:
        members = []
        for m in tar:
            parts = Path(m.name).parts
            if not m.isfile() or len(parts) < 3:
                continue
            cls = parts[-2]
            if counts.get(cls, 0) < per_class:
                counts[cls] = counts.get(cls, 0) + 1
                members.append(m)
        tar.extractall(dest, members=members, filter="data")
    split = next(p for p in dest.iterdir() if p.is_dir())
    return split


def _need(tar_path: Path) -> None:
    if not tar_path.exists():
        pytest.skip(f"needs the CIFAR-10 JPEG data at {tar_path} (../shared/data); absent on this machine")


@pytest.fixture(scope="session")
def cifar_train_subset(tmp_path_factory) -> Path:
    """ImageFolder dir with 52 training images per class (520 images) from ../shared/data."""
    _need(TRAIN_TAR)
    return _extract(TRAIN_TAR, tmp_path_factory.mktemp("cifar_train"), 52)


@pytest.fixture(scope="session")
def cifar_dev_subset(tmp_path_factory) -> Path:
    """ImageFolder dir with 20 dev images per class (200 images) from ../shared/data."""
    _need(DEV_TAR)
    return _extract(DEV_TAR, tmp_path_factory.mktemp("cifar_dev"), 20)
