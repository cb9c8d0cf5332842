"""Backbone training (App. E.6): objectives, checkpoints, resume, export with a card."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from adaaug.backbones import build_backbone
from adaaug.train.backbone import (UNET_MASK_RANGE, backbone_loss, export_trained, mask_pixels,
                                            train_backbone)
from adaaug.weights import load_backbone, sha256_of


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(24):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "data" / c / f"{i}.png")
    return tmp_path / "data"


def test_mask_fraction_is_within_the_papers_range():
    x = torch.ones(200, 3, 32, 32)
    zeroed = (mask_pixels(x, torch.Generator().manual_seed(0))[:, 0] == 0).float().mean((1, 2))
    lo, hi = UNET_MASK_RANGE
    assert zeroed.min() > lo - 0.03 and zeroed.max() < hi + 0.03
    assert zeroed.std() > 0.05  # the fraction is drawn per image


@pytest.mark.parametrize("name", ["unet", "vqvae", "edsr", "cae"])
def test_each_objective_is_finite_and_differentiable(name):
    torch.manual_seed(0)
    m = build_backbone(name).train()
    loss = backbone_loss(name, m, torch.rand(4, 3, 32, 32), torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


def test_resume_matches_an_uninterrupted_run_and_export(folder, tmp_path):
    kw = dict(dev=str(folder), batch_size=16, lr=1e-3, progress=False, threads=1)
    full = train_backbone("unet", str(folder), tmp_path / "full", epochs=2, **kw)
    train_backbone("unet", str(folder), tmp_path / "part", epochs=2, stop_after=1, **kw)
    resumed = train_backbone("unet", str(folder), tmp_path / "part", epochs=2, resume=True, **kw)
    a = torch.load(tmp_path / "full" / "final_state.pt", weights_only=True)
    b = torch.load(tmp_path / "part" / "final_state.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    lines = [json.loads(s) for s in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2] and "psnr_db" in lines[-1]
    assert full["dev"]["psnr_db"] == resumed["dev"]["psnr_db"] and "dev_completion" in full
    path = export_trained("unet", tmp_path / "full", tmp_path / "weights", "t", full, "adaaug train-backbone unet")
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["sha256"] == sha256_of(path) and card["parameters"] == 58_627 and card["epochs"] == 2
    loaded = load_backbone("unet", path)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in a.items())


@pytest.mark.parametrize("name", ["edsr", "edsr-down"])
def test_edsr_trains_on_super_resolution_of_the_downsampled_image(name):
    """Whichever way EDSR runs as a corruption network, its training task is ×2 SR: L1(SR(down(x)), x)."""
    torch.manual_seed(0)
    m = build_backbone(name).train()
    x = torch.rand(2, 3, 16, 16)
    low = torch.nn.functional.interpolate(x, size=(8, 8), mode="bilinear", align_corners=False, antialias=True)
    expected = (m.super_resolve(low) - x).abs().mean()
    torch.testing.assert_close(backbone_loss(name, m, x), expected, rtol=1e-6, atol=1e-7)
    if name == "edsr":  # model(x) (upsample, then resize back) is not the training task
        assert not torch.allclose(backbone_loss(name, m, x), (m(x) - x).abs().mean())


def test_init_starts_from_given_weights_and_cards_carry_no_local_paths(folder, tmp_path):
    from adaaug.train.backbone import user_command
    from adaaug.weights import export_weights

    torch.manual_seed(5)
    start = export_weights(build_backbone("unet"), "unet", "start", tmp_path / "w", {})
    train_backbone("unet", str(folder), tmp_path / "run", epochs=1, batch_size=16, lr=0.0, init=str(start),
                   progress=False, threads=1)  # lr = 0: the weights stay the initial ones
    final = torch.load(tmp_path / "run" / "final_state.pt", weights_only=True)
    assert all(torch.equal(v, load_backbone("unet", start).state_dict()[k]) for k, v in final.items())
    cmd = user_command(f"adaaug train-backbone unet --data {folder} --dev /x/dev --init {start}")
    assert cmd == "adaaug train-backbone unet --data <CIFAR-10 train dir> --dev <CIFAR-10 test dir> " \
                  "--init unet-start.safetensors"
