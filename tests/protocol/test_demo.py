"""``adaaug demo``: runs on the packaged weights alone and writes its figure."""
from __future__ import annotations

import pytest

from adaaug.protocol.demo import load_samples, main, run_demo
from adaaug.weights import read_manifest

PACKAGED = read_manifest().get("files", {})


def test_bundled_samples():
    x, y, classes = load_samples()
    assert x.shape == (10, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert y.tolist() == list(range(10)) and len(classes) == 10


@pytest.mark.skipif("resnet20" not in PACKAGED, reason="the packaged classifier is not in weights/ yet")
def test_demo_writes_figure_and_table(tmp_path, capsys):
    import argparse

    args = argparse.Namespace(out=str(tmp_path / "demo.png"), backbones=["edsr"], nu=0.015, steps=2,
                              images=2, gain=4.0, seed=0)
    assert main(args) == 0
    assert (tmp_path / "demo.png").stat().st_size > 5_000
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("edsr"))
    clean, ada, flips, ssim_mean, ssim_min, gamma = row.split()[1:]
    assert float(ada) > float(clean)         # two ascent steps raise the classifier's loss on these images
    assert float(ssim_min) >= 0.7 - 0.03      # the line search keeps 1 − SSIM ≤ 0.3 (within its tolerance)
    assert 0 < float(gamma) <= 1


def test_run_demo_skips_backbones_without_weights(capsys):
    rows, x, outputs = run_demo(["no-such-backbone"], 0.015, 0, 0) if "resnet20" in PACKAGED else ({}, None, {})
    assert rows == {} and outputs == {}
