"""The weights shipped in the package: every manifest entry loads offline, matches its card and limits."""
from __future__ import annotations

import json

import pytest
import torch

from adaaug.weights import load_backbone, load_classifier, packaged_dir, read_manifest, sha256_of

MANIFEST = read_manifest()
ENTRIES = [(name, tag, e) for name, tags in MANIFEST.get("files", {}).items() for tag, e in tags.items()]
MAX_BYTES = 10 * 2 ** 20


@pytest.mark.skipif(not ENTRIES, reason="no weights are packaged yet (weights/manifest.json lists none)")
@pytest.mark.parametrize("name, tag, entry", ENTRIES, ids=[f"{n}-{t}" for n, t, _ in ENTRIES])
def test_packaged_weights_load_and_match_their_card(name, tag, entry, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = packaged_dir() / entry["file"]
    assert path.exists(), f"{path} is listed in the manifest but not installed with the package"
    assert path.stat().st_size <= MAX_BYTES
    card = json.loads((packaged_dir() / entry["file"].replace(".safetensors", ".json")).read_text())  # shared files share a card
    assert card["sha256"] == entry["sha256"] == sha256_of(path)
    model = load_classifier(name, tag) if name == "resnet20" else load_backbone(name, tag)
    assert sum(p.numel() for p in model.parameters()) == card["parameters"]
    assert not model.training
    with torch.no_grad():
        out = model(torch.rand(2, 3, 32, 32))
    assert torch.isfinite(out).all()


def test_the_paper_backbones_and_classifier_are_packaged():
    missing = [n for n in ("edsr", "cae", "vqvae", "unet", "resnet20") if "cifar10" not in MANIFEST.get("files", {}).get(n, {})]
    if missing:
        pytest.skip(f"not packaged yet: {', '.join(missing)}")
    assert not missing


def test_installed_package_carries_the_weights(tmp_path):
    """Import adaaug as installed (not from this checkout) and load every packaged entry offline."""
    import os
    import subprocess
    import sys

    code = ("import adaaug, adaaug.weights as W; m = W.read_manifest(); "
            "[W.load_classifier(n, t) if n == 'resnet20' else W.load_backbone(n, t) "
            "for n, tags in m['files'].items() for t in tags]; "
            "print('OK', adaaug.__file__, sorted(m['files']))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.stdout.startswith("OK"), out.stdout + out.stderr
    assert sorted(MANIFEST.get("files", {})) == eval(out.stdout.split(" ", 2)[2])


def _delta0_ssim(name: str) -> float:
    """Mean SSIM(x, c_φ(x)) of the packaged backbone with δ = 0 on the 10 bundled sample images."""
    from adaaug.line_search import ssim
    from adaaug.experiments.demo import load_samples

    x, _, _ = load_samples()
    with torch.no_grad():
        return float(ssim(x, load_backbone(name, "cifar10")(x).clamp(0, 1)).mean())


@pytest.mark.parametrize("name, floor", [("edsr", 0.98), ("unet", 0.95)])
def test_unperturbed_backbones_reproduce_their_input(name, floor, monkeypatch):
    """EDSR (an upsampler resized back) and the plain U-Net return images close to their input at δ = 0,
    so every change AdA makes comes from δ (the paper's Figure 2: EDSR at small ν concentrates near 0.99)."""
    if "cifar10" not in MANIFEST.get("files", {}).get(name, {}):
        pytest.skip(f"no packaged cifar10 weights for {name}")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _delta0_ssim(name) >= floor


def test_edsr_down_loses_detail_at_delta0(monkeypatch):
    """The downsample-first construction (adaaug 0.1's 'edsr') shares EDSR's weights and is clearly lossier."""
    if "cifar10" not in MANIFEST.get("files", {}).get("edsr-down", {}):
        pytest.skip("no packaged cifar10 weights for edsr-down")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert MANIFEST["files"]["edsr-down"]["cifar10"]["file"] == MANIFEST["files"]["edsr"]["cifar10"]["file"]
    assert _delta0_ssim("edsr-down") < _delta0_ssim("edsr") - 0.03
