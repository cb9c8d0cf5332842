"""``adaaug demo``: runs on the packaged weights alone and writes its figure."""
from __future__ import annotations

import pytest

from adaaug.experiments.demo import load_samples, main, run_demo
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


def test_figure_layout_and_panels():
    """One row per backbone; each triple shows x, x' and 0.5 + gain·(x' − x), magnified without interpolation."""
    import numpy as np
    import torch

    from adaaug.experiments.demo import figure

    torch.manual_seed(0)
    x = torch.rand(3, 3, 8, 8)
    outputs = {"a": (x + 0.05).clamp(0, 1), "b": x.flip(-1)}
    image = figure(x, outputs, n_images=2, gain=4.0, scale=3)
    array = np.asarray(image.convert("RGB"))
    assert image.mode == "RGB" and image.size[0] > 2 * 3 * 24 and image.size[1] > 2 * 24

    def find(panel: torch.Tensor) -> tuple[int, int]:
        """Top-left corner of ``panel`` (3×8×8, magnified ×3) inside the figure."""
        target = np.kron((panel.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), np.ones((3, 3, 1),
                                                                                             dtype=np.uint8))
        hits = [(r, c) for r in range(array.shape[0] - 23) for c in range(array.shape[1] - 23)
                if array[r, c, 0] == target[0, 0, 0] and np.array_equal(array[r:r + 24, c:c + 24], target)]
        assert len(hits) >= 1
        return hits[0]

    r_x, c_x = find(x[1])                                    # the second original of row "a"
    r_adv, c_adv = find(outputs["a"][1])
    r_diff, c_diff = find((0.5 + 4.0 * (outputs["a"][1] - x[1])).clamp(0, 1))
    assert r_x == r_adv == r_diff and c_x < c_adv < c_diff   # original | AdA | difference, left to right
    r_b, _ = find(outputs["b"][0])
    assert r_b > r_x                                         # backbone "b" is the next row


def test_demo_runs_on_the_core_install_alone(tmp_path):
    """``pip install . && adaaug demo``: no plotting library, no protocol extra (they are blocked here)."""
    import subprocess
    import sys

    code = ("import sys\n"
            "for m in ('matplotlib', 'scipy', 'skimage', 'cv2', 'pyautoattack'): sys.modules[m] = None\n"
            "from adaaug.cli import main\n"
            f"sys.exit(main(['demo', '--backbones', 'unet', '--steps', '1', '--images', '2', "
            f"'--out', {str(tmp_path / 'fig.png')!r}]))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    from PIL import Image

    with Image.open(tmp_path / "fig.png") as im:
        im.verify()
    assert "unet" in result.stdout
