"""Weight loading: sha256 checks, strict key/shape checks, the Hub path (offline), clear errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import adaaug.weights as W
from adaaug.backbones import build_backbone

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def exported(tmp_path):
    """A UNet exported with export_weights into a temporary weights directory."""
    torch.manual_seed(0)
    net = build_backbone("unet")
    path = W.export_weights(net, "unet", "test", tmp_path / "weights", {"note": "made by the test"})
    return net, path


def test_export_writes_file_card_and_manifest(exported):
    net, path = exported
    card = json.loads(path.with_suffix(".json").read_text())
    manifest = W.read_manifest(path.parent)
    assert card["sha256"] == W.sha256_of(path) == manifest["files"]["unet"]["test"]["sha256"]
    assert card["parameters"] == 58_627 and card["note"] == "made by the test"
    assert path.read_bytes()[:8] != b"\x80\x02\x8a\x0a"  # not a pickle


def test_packaged_resolution_loads_frozen_eval_module(exported, monkeypatch):
    net, path = exported
    monkeypatch.setattr(W, "packaged_dir", lambda: path.parent)
    loaded = W.load_backbone("unet", "test")
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    for k, v in net.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])


def test_sha256_mismatch_names_the_file(exported, monkeypatch):
    _, path = exported
    monkeypatch.setattr(W, "packaged_dir", lambda: path.parent)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"sha256 mismatch for .*{path.name}"):
        W.load_backbone("unet", "test")


def test_truncated_file_is_a_clear_error(exported, tmp_path):
    _, path = exported
    bad = tmp_path / "truncated.safetensors"
    bad.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="truncated.safetensors.*safetensors"):
        W.load_backbone("unet", bad)


def test_wrong_architecture_names_the_keys(exported):
    _, path = exported
    with pytest.raises(ValueError, match="missing keys"):
        W.load_backbone("edsr", path)


def test_wrong_shape_names_the_key(tmp_path):
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in build_backbone("unet").state_dict().items()}
    state["out.weight"] = torch.zeros(3, 16, 1, 1)
    save_file(state, str(tmp_path / "s.safetensors"))
    with pytest.raises(ValueError, match="'out.weight' has shape"):
        W.load_backbone("unet", tmp_path / "s.safetensors")


def test_unknown_tag_and_unknown_name(exported, monkeypatch):
    _, path = exported
    monkeypatch.setattr(W, "packaged_dir", lambda: path.parent)
    with pytest.raises(ValueError, match="no 'imagenet' weights for backbone 'unet' \\(known tags: test\\)"):
        W.load_backbone("unet", "imagenet")
    with pytest.raises(ValueError, match="no 'test' weights for backbone 'edsr' \\(known tags: deepaugment, "
                       "edsr-pytorch-x2, edsr-pytorch-x4\\)"):
        W.load_backbone("edsr", "test")


def test_missing_file_path():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        W.load_backbone("unet", "/nonexistent/x.safetensors")


_HUB_SCRIPT = """
import sys, adaaug.weights as W
from pathlib import Path
W.packaged_dir = lambda: Path(sys.argv[1])
def load():
    try:
        m = W.load_backbone("unet", "test")
        print("LOADED", float(sum(p.sum() for p in m.parameters())), flush=True)
    except Exception as e:
        print("ERROR", type(e).__name__, e, flush=True)
load()
if len(sys.argv) > 2:  # then corrupt that cached file (its last byte) and load again
    f = Path(sys.argv[2])
    f.write_bytes(f.read_bytes()[:-1] + b"\\x00")
    print("=== corrupted")
    load()
"""


def _run_offline(manifest_dir: Path, hf_home: Path, *, corrupt: Path | None = None) -> str:
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    env.pop("HF_HUB_CACHE", None)
    args = [str(manifest_dir)] + ([str(corrupt)] if corrupt else [])
    out = subprocess.run([sys.executable, "-c", _HUB_SCRIPT, *args], env=env, capture_output=True,
                         text=True, timeout=120)
    return out.stdout + out.stderr


def test_hub_download_path_offline_from_a_populated_cache(exported, tmp_path):
    net, path = exported
    manifest = W.read_manifest(path.parent)
    manifest["hub"] = {"repo_id": "someone/adaaug-test", "revision": "v1"}
    only_manifest = tmp_path / "packaged"  # the wheel without the file: forces the Hub path
    only_manifest.mkdir()
    (only_manifest / "manifest.json").write_text(json.dumps(manifest))
    # lay out the HF cache as huggingface_hub writes it: refs/<revision> → snapshots/<commit>/<file>
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = tmp_path / "hf" / "hub" / "models--someone--adaaug-test"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "v1").write_text(commit)
    snap = repo_dir / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / path.name).write_bytes(path.read_bytes())
    # one interpreter loads the cached file, then (after it corrupted the file) loads again
    out, corrupted = _run_offline(only_manifest, tmp_path / "hf", corrupt=snap / path.name).split("=== corrupted")
    assert "LOADED" in out, out
    assert abs(float(out.split("LOADED")[1]) - float(sum(p.detach().sum() for p in net.parameters()))) < 1e-3
    # a corrupted cached file is caught by the sha256
    assert (snap / path.name).read_bytes() == path.read_bytes()[:-1] + b"\x00"
    assert "sha256 mismatch" in corrupted and "LOADED" not in corrupted, corrupted


def test_offline_with_nothing_cached_says_where_it_looked(exported, tmp_path):
    _, path = exported
    only_manifest = tmp_path / "packaged"
    only_manifest.mkdir()
    (only_manifest / "manifest.json").write_text((path.parent / "manifest.json").read_text())
    out = _run_offline(only_manifest, tmp_path / "empty-hf")
    assert "FileNotFoundError" in out and "Looked at" in out and "Hugging Face Hub" in out, out


def test_a_weights_directory_is_accepted(tmp_path):
    """``weights=`` may name the directory ``adaaug train-backbone --export DIR`` wrote, as str or Path."""
    from torch import nn

    from adaaug import AdversarialAugment

    torch.manual_seed(3)
    trained = build_backbone("unet")
    W.export_weights(trained, "unet", "mine", tmp_path, {"note": "test"})
    for spec in (str(tmp_path), tmp_path, tmp_path / "unet-mine.safetensors"):
        ada = AdversarialAugment(nn.Linear(2, 2), backbone="unet", weights=spec)
        loaded = ada.corruptors[0].module.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in trained.state_dict().items())
        assert "unet-mine.safetensors" in repr(ada)
    W.export_weights(trained, "unet", "other", tmp_path, {"note": "test"})
    with pytest.raises(ValueError, match=r"holds several unet-<tag>.safetensors files \(unet-mine.safetensors, "
                                         r"unet-other.safetensors\); pass the file itself"):
        AdversarialAugment(nn.Linear(2, 2), backbone="unet", weights=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="holds no edsr-<tag>.safetensors file"):
        W.load_backbone("edsr", tmp_path)


def test_repr_shows_which_weights_each_backbone_carries():
    from torch import nn

    from adaaug import AdversarialAugment

    assert "untrained" in repr(AdversarialAugment(nn.Linear(2, 2), backbone="unet", weights=None))
    assert "weights='cifar10'" in repr(AdversarialAugment(nn.Linear(2, 2), backbone="unet"))
    assert "your module" in repr(AdversarialAugment(nn.Linear(2, 2), backbone=nn.Conv2d(3, 3, 1)))
