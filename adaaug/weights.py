"""Pretrained weights: safetensors files checked against sha256 sums in a manifest.

Resolution order for ``load_backbone(name, weights=tag)``:

1. the file packaged with adaaug (built into the wheel from the repository's ``weights/``);
2. the Hugging Face Hub, ``huggingface_hub.hf_hub_download(repo_id, filename, revision)``
   with the repo id and pinned revision of the manifest (override with the
   ``ADAAUG_HUB_REPO`` / ``ADAAUG_HUB_REVISION`` environment variables or arguments);
   honours ``HF_HUB_OFFLINE`` and the usual HF cache variables;
3. otherwise a :class:`FileNotFoundError` that says where it looked and how to fix it.

Every file is checked against its sha256 before it is read; only safetensors is read
(never pickle).
"""
from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

MANIFEST_NAME = "manifest.json"
DEFAULT_HUB_REPO = "adaaug/corruption-networks"
_PACKAGE = "adaaug._weights"


def packaged_dir() -> Path:
    """Directory holding the packaged weights (``weights/`` in a source checkout)."""
    try:
        path = Path(str(resources.files(_PACKAGE)))
    except ModuleNotFoundError:  # running from a checkout without installing
        path = Path(__file__).resolve().parent.parent / "weights"
    if not path.is_dir():
        raise RuntimeError(f"adaaug's packaged weights directory resolved to {path}, which does not exist; "
                           f"reinstall adaaug")
    return path


def read_manifest(directory: Path | None = None) -> dict:
    """The manifest: ``{"hub": {...}, "files": {name: {tag: {"file", "sha256", ...}}}}``."""
    path = (directory or packaged_dir()) / MANIFEST_NAME
    if not path.exists():
        return {"hub": {"repo_id": DEFAULT_HUB_REPO, "revision": "main"}, "files": {}}
    return json.loads(path.read_text())


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _entry(name: str, tag: str, manifest: dict) -> dict:
    files = manifest.get("files", {})
    if name not in files:
        raise ValueError(f"no pretrained weights are published for {name!r}; pretrained: "
                         f"{', '.join(sorted(files)) or 'none'}. Pass weights=None for a freshly "
                         f"initialised network, or weights='path/to/file.safetensors' for your own")
    if tag not in files[name]:
        raise ValueError(f"unknown weights tag {tag!r} for {name!r}; known tags: {', '.join(sorted(files[name]))}")
    return files[name][tag]


def resolve_weights_file(name: str, tag: str, *, hub_repo: str | None = None, revision: str | None = None,
                         manifest: dict | None = None) -> tuple[Path, dict]:
    """Find (and verify) the file for ``name``/``tag``; returns ``(path, manifest entry)``."""
    manifest = manifest if manifest is not None else read_manifest()
    entry = _entry(name, tag, manifest)
    filename = entry["file"]
    local = packaged_dir() / filename
    looked = [f"packaged file {local}"]
    if local.exists():
        verify_sha256(local, entry["sha256"])
        return local, entry
    hub = manifest.get("hub", {})
    repo = hub_repo or os.environ.get("ADAAUG_HUB_REPO") or hub.get("repo_id", DEFAULT_HUB_REPO)
    rev = revision or os.environ.get("ADAAUG_HUB_REVISION") or hub.get("revision", "main")
    looked.append(f"Hugging Face Hub {repo}@{rev}:{filename}")
    try:
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(repo_id=repo, filename=filename, revision=rev))
    except Exception as err:  # offline with nothing cached, no network, missing repo, ...
        raise FileNotFoundError(
            f"could not find weights {name!r}/{tag!r}. Looked at: {'; '.join(looked)} ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}). Fix: reinstall adaaug from a wheel that includes "
            f"weights/, or connect to the internet once (unset HF_HUB_OFFLINE) so the file is cached, or set "
            f"ADAAUG_HUB_REPO to a mirror") from err
    verify_sha256(path, entry["sha256"])
    return path, entry


def verify_sha256(path: Path, expected: str) -> None:
    """Raise ``ValueError`` naming the file when its sha256 differs from ``expected``."""
    actual = sha256_of(path)
    if actual != expected:
        raise ValueError(f"sha256 mismatch for {path}: expected {expected}, got {actual}. The file is corrupted "
                         f"or was replaced; delete it (and its HF cache entry) and download or reinstall again")


def load_safetensors_into(module: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load a safetensors file into ``module`` strictly (every key and shape must match)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise ValueError(f"cannot read {path} as safetensors ({err}); the file is truncated or not a "
                         f"safetensors file: delete it and download or reinstall again") from err
    check = getattr(module, "check_weights_metadata", None)
    if check is not None:  # a layout mark the architecture requires (the CAE since adaaug 0.4)
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            check(f.metadata(), str(path))
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{path} does not match {type(module).__name__}: missing keys {missing[:5]}, "
                         f"unexpected keys {unexpected[:5]}; was it saved from another architecture or config?")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise ValueError(f"{path}: key {key!r} has shape {tuple(value.shape)}, the architecture expects "
                             f"{tuple(expected[key].shape)}; was it saved with another config?")
    module.load_state_dict(state, strict=True)
    return module


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode and ``requires_grad=False`` on every parameter; returns ``module``."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def missing_tag_error(name: str, tag: str) -> FileNotFoundError | None:
    """The error for a weights tag that is not installed for a backbone that has other tags."""
    tags = read_manifest().get("files", {}).get(name)
    if not tags or tag in tags:
        return None  # installed, or a backbone without published weights (weights.py explains that case)
    return FileNotFoundError(
        f"no {tag!r} weights are installed for backbone {name!r} (installed tags: {', '.join(sorted(tags))}); "
        f"AdA's backbone should be trained on the classifier's own data. Train it with `adaaug train-backbone "
        f"{name} --data TRAIN_DIR --dev DEV_DIR --tag {tag} --export WEIGHTS_DIR` and pass "
        f"weights='WEIGHTS_DIR/{name}-{tag}.safetensors' (or any .safetensors path), or pass weights='cifar10' "
        f"to use the CIFAR-10 weights knowingly")


def weights_path(name: str, weights: str | os.PathLike) -> Path | None:
    """The ``.safetensors`` file that ``weights`` names for backbone ``name``, or ``None`` when it is a tag.

    A path is an ``os.PathLike``, a string ending in ``.safetensors``, a string holding a path separator,
    or an existing directory: a directory (e.g. one written by ``adaaug train-backbone --export DIR``)
    must hold exactly one ``<name>-<tag>.safetensors``. Raises ``FileNotFoundError``/``ValueError``
    naming what was found otherwise.
    """
    text = os.fspath(weights)
    is_path = (isinstance(weights, os.PathLike) or text.endswith(".safetensors") or os.sep in text or "/" in text
               or Path(text).is_dir())
    if not is_path:
        return None
    path = Path(text).expanduser()
    if path.is_dir():
        found = sorted(path.glob(f"{name}-*.safetensors"))
        if len(found) != 1:
            there = ", ".join(f.name for f in sorted(path.glob("*.safetensors"))) or "no .safetensors files"
            what = "no" if not found else "several"
            error = FileNotFoundError if not found else ValueError
            raise error(f"weights directory {path} holds {what} {name}-<tag>.safetensors file{'s' * bool(found)} "
                        f"({there}); pass the file itself, weights='{path / (name + '-TAG.safetensors')}'")
        return found[0]
    if not path.exists():
        raise FileNotFoundError(f"weights file {path} does not exist")
    return path


def load_backbone(name: str, weights: str | os.PathLike | None = "cifar10", *, hub_repo: str | None = None,
                  revision: str | None = None) -> nn.Module:
    """A registered corruption network with pretrained weights, in eval mode, parameters frozen.

    Args:
        name: registered backbone name (``edsr``, ``cae``, ``vqvae``, ``unet`` or your own).
        weights: a tag from the manifest (``"cifar10"``), a path to a ``.safetensors``
            file or to a directory holding one ``<name>-<tag>.safetensors`` (:func:`weights_path`),
            or ``None`` for a freshly initialised network.
        hub_repo, revision: override the manifest's Hub repo id and pinned revision.
    """
    from .backbones import build_backbone

    module = build_backbone(name)
    if weights is not None:
        path = weights_path(name, weights)
        if path is None:
            path, _ = resolve_weights_file(name, str(weights), hub_repo=hub_repo, revision=revision)
        load_safetensors_into(module, path)
    return freeze(module)


def load_classifier(name: str = "resnet20", weights: str | None = "cifar10") -> nn.Module:
    """The packaged classifier (``resnet20`` trained nominally on CIFAR-10), eval mode, frozen."""
    from .models import build_classifier

    model = build_classifier(name)
    if weights is not None:
        path, _ = resolve_weights_file(name, weights)
        load_safetensors_into(model, path)
    return freeze(model)


def export_weights(module: nn.Module, name: str, tag: str, directory: str | os.PathLike,
                   card: dict[str, Any]) -> Path:
    """Write ``<name>-<tag>.safetensors`` plus a JSON card into ``directory`` and update its manifest."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    filename = f"{name}-{tag}.safetensors"
    path = directory / filename
    state = {k: v.detach().to(torch.float32).contiguous().cpu() for k, v in module.state_dict().items()}
    metadata = {"name": name, "tag": tag, **getattr(module, "weights_metadata", dict)()}
    save_file(state, str(path), metadata=metadata)
    path.chmod(0o644)
    digest = sha256_of(path)
    card = {"name": name, "tag": tag, "file": filename, "sha256": digest,
            "parameters": sum(p.numel() for p in module.parameters()),
            "size_bytes": path.stat().st_size, **card}
    (directory / f"{name}-{tag}.json").write_text(json.dumps(card, indent=2) + "\n")
    manifest = read_manifest(directory)
    manifest.setdefault("files", {}).setdefault(name, {})[tag] = {"file": filename, "sha256": digest}
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path
