"""Pretrained weights: safetensors files checked against sha256 sums in a manifest, and the
publishers' own checkpoints of EDSR and the CAE (:mod:`adaaug.published_weights`).

Resolution order for ``load_backbone(name, weights=tag)``:

1. the file packaged with adaaug (built into the wheel from the repository's ``weights/``);
2. the Hugging Face Hub, ``huggingface_hub.hf_hub_download(repo_id, filename, revision)``
   with the repo id and pinned revision of the manifest (override with the
   ``ADAAUG_HUB_REPO`` / ``ADAAUG_HUB_REVISION`` environment variables or arguments);
   honours ``HF_HUB_OFFLINE`` and the usual HF cache variables (steps 1 and 2 for tags in
   the manifest);
3. for a published tag (``"deepaugment"``, ``"edsr-pytorch-x2"``, ``"edsr-pytorch-x4"``): the
   publisher's URL, downloaded once into adaaug's cache, verified, converted and cached;
4. otherwise a :class:`FileNotFoundError` that says where it looked and how to fix it.

Every file is checked (sha256, or a published file's git blob id / sha256 prefix) before it is
read; safetensors is read as it is, a published checkpoint only through ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._files import sha256_of  # noqa: F401  (part of this module's API)
from .published_weights import WeightsAdvice

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
    return load_state_into(module, state, path)


def load_state_into(module: nn.Module, state: dict[str, torch.Tensor], where: object) -> nn.Module:
    """Load ``state`` into ``module`` strictly; errors name ``where`` (a file) and the first differing keys."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{where} does not match {type(module).__name__}: missing keys {missing[:5]}, "
                         f"unexpected keys {unexpected[:5]}; was it saved from another architecture or config?")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise ValueError(f"{where}: key {key!r} has shape {tuple(value.shape)}, the architecture expects "
                             f"{tuple(expected[key].shape)}; was it saved with another config?")
    module.load_state_dict(state, strict=True)
    return module


def safetensors_config(path: str | os.PathLike) -> dict[str, Any]:
    """The network config a safetensors file carries (metadata ``"config"``, JSON); ``{}`` when it has none."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "pt") as f:
            text = (f.metadata() or {}).get("config")
    except (SafetensorError, OSError, ValueError, RuntimeError):
        return {}  # unreadable: load_safetensors_into names the problem
    if not text:
        return {}
    try:
        config = json.loads(text)
    except ValueError:
        config = None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: its metadata 'config' is not a JSON object ({text[:80]!r}); was the file edited?")
    return config


def freeze(module: nn.Module) -> nn.Module:
    """Eval mode and ``requires_grad=False`` on every parameter; returns ``module``."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


class UnknownWeightsError(WeightsAdvice, FileNotFoundError, ValueError):
    """A weights tag that is neither in the manifest nor a published checkpoint's; both a
    ``FileNotFoundError`` (no such file) and a ``ValueError`` (the argument names nothing known)."""


_PAPER_TRAINED = {"vqvae": "VQ-VAE", "unet": "U-Net"}


def missing_tag_error(name: str, tag: str) -> UnknownWeightsError | None:
    """The error for ``weights=tag`` when backbone ``name`` has no such tag, saying where adaaug looked
    (its manifest, the published checkpoints) and how to fix it; ``None`` when the tag exists."""
    from .published_weights import PUBLISHED_FILES, converts, published_tags

    manifest = read_manifest()
    installed = sorted(manifest.get("files", {}).get(name, {}))
    published = published_tags(name)
    if tag in installed or tag in published:
        return None
    known, asked = ", ".join(installed + published) or "none", tag
    looked = (f"Looked in adaaug's weights manifest (tags: {', '.join(installed) or 'none'}) and its table of "
              f"published checkpoints (tags: {', '.join(published) or 'none'}).")
    if any(p.tag == tag for p in PUBLISHED_FILES):
        tag = "imagenet"  # a publisher's tag is not one to train under: suggest the dataset's
    train = (f"`adaaug train-backbone {name} --data TRAIN_DIR --dev DEV_DIR --tag {tag} --export WEIGHTS_DIR` and pass "
             f"weights='WEIGHTS_DIR/{name}-{tag}.safetensors'")
    if converts(name):
        fix = (f"The AdA paper uses DeepAugment's pre-trained {'CAE' if name == 'cae' else 'EDSR'} for CIFAR-10 and "
               f"ImageNet alike (App. E.6): pass weights='deepaugment' (downloaded once into adaaug's cache), the "
               f"published file itself (weights='path/to/file.pt'), a .safetensors file, or train your own with {train}")
    elif name in _PAPER_TRAINED:
        other = "unet" if name == "vqvae" else "vqvae"
        fix = (f"The AdA paper trained its VQ-VAE and U-Net on ImageNet (App. E.6); adaaug ships CIFAR-10 ones. Train "
               f"them on your data with {train} (likewise `adaaug train-backbone {other} ...`); with several backbones "
               f"give each its own: weights={{'edsr': 'deepaugment', 'cae': 'deepaugment', 'vqvae': "
               f"'WEIGHTS_DIR/vqvae-{tag}.safetensors', 'unet': 'WEIGHTS_DIR/unet-{tag}.safetensors'}} (adaaug train: "
               f"--backbone-weights edsr=deepaugment,cae=deepaugment,vqvae=FILE,unet=FILE); or pass weights='cifar10' "
               f"to use the CIFAR-10 weights knowingly")
    else:
        fix = f"Pass one of the known tags or a .safetensors file, or train weights with {train}"
    return UnknownWeightsError(f"no {asked!r} weights for backbone {name!r} (known tags: {known}). {looked} {fix}")


_CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".state", ".ckpt", ".tar", ".bin")


def weights_path(name: str, weights: str | os.PathLike) -> Path | None:
    """The weights file that ``weights`` names for backbone ``name``, or ``None`` when it is a tag.

    A path is an ``os.PathLike``, a string ending in ``.safetensors``, ``.pt``, ``.pth``, ``.state``,
    ``.ckpt``, ``.tar`` or ``.bin``, a string holding a path separator, or an existing directory: a
    directory (e.g. one written by ``adaaug train-backbone --export DIR``) must hold exactly one
    ``<name>-<tag>.safetensors``. Raises ``FileNotFoundError``/``ValueError`` naming what was found otherwise.
    """
    text = os.fspath(weights)
    is_path = (isinstance(weights, os.PathLike) or text.lower().endswith(_CHECKPOINT_SUFFIXES) or os.sep in text
               or "/" in text or Path(text).is_dir())
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


def weights_for(name: str, weights: Any) -> Any:
    """Backbone ``name``'s entry of ``weights=``: the value itself, or its entry when ``weights`` is a dict
    ``{backbone name: tag or path}`` or a string ``"edsr=deepaugment,vqvae=DIR/vqvae-imagenet.safetensors"``
    (the command line's form; ``none`` for an untrained backbone). ``ValueError`` when the entry is missing."""
    if isinstance(weights, str) and "=" in weights and not Path(weights).exists():
        table: dict[str, Any] = {}
        for item in weights.split(","):
            key, sep, value = item.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise ValueError(f"weights {weights!r}: {item!r} is not NAME=TAG_OR_FILE")
            table[key.strip()] = None if value.strip().lower() == "none" else value.strip()
        weights = table
    if not isinstance(weights, dict):
        return weights
    if name not in weights:
        raise ValueError(f"weights has no entry for backbone {name!r} (entries: {', '.join(map(str, weights))}); "
                         f"add {name}=TAG_OR_FILE")
    return weights[name]


def resolve_backbone_file(name: str, tag: str, *, hub_repo: str | None = None, revision: str | None = None) -> Path:
    """The verified safetensors file of tag ``tag`` for backbone ``name`` (steps 1 to 4 of this module's doc)."""
    from .published_weights import fetch_published, published_file

    manifest = read_manifest()
    pub = published_file(name, tag)
    looked: list[str] = []
    if tag in manifest.get("files", {}).get(name, {}):
        try:
            return resolve_weights_file(name, tag, hub_repo=hub_repo, revision=revision, manifest=manifest)[0]
        except FileNotFoundError:
            if pub is None:
                raise
            looked.append("adaaug's packaged weights and the Hugging Face Hub")
    if pub is not None:
        return fetch_published(name, pub, looked)
    error = missing_tag_error(name, tag)
    assert error is not None
    raise error


def _build(name: str, config: dict[str, Any], where: object) -> nn.Module:
    from .backbones import build_backbone

    if not config:
        return build_backbone(name)
    try:
        return build_backbone(name, **config)
    except TypeError as err:
        raise ValueError(f"{where} carries the config {config}, which backbone {name!r} does not take ({err}); "
                         f"was it made for another backbone?") from err


def load_weights_file(name: str, path: str | os.PathLike) -> nn.Module:
    """Backbone ``name`` built and loaded from ``path`` (see :func:`load_backbone`); not frozen."""
    from . import published_weights as published

    if not published.is_safetensors(path):
        converted = published.cached_conversion(name, path) if published.converts(name) else None
        if converted is None:  # caching off, or a backbone without a published format (raises naming it)
            state, config, _ = published.convert_checkpoint(name, path)
            return load_state_into(_build(name, config, path), state, path)
        path = converted
    return load_safetensors_into(_build(name, safetensors_config(path), path), path)


def load_backbone(name: str, weights: str | os.PathLike | None = "cifar10", *, hub_repo: str | None = None,
                  revision: str | None = None) -> nn.Module:
    """A registered corruption network with pretrained weights, in eval mode, parameters frozen.

    Args:
        name: registered backbone name (``edsr``, ``edsr-down``, ``cae``, ``vqvae``, ``unet`` or your own).
        weights: a tag: adaaug's (``"cifar10"``, in the manifest) or a publisher's for ``edsr``,
            ``edsr-down`` and ``cae`` (``"deepaugment"``: DeepAugment's files, the AdA paper's; and for
            EDSR ``"edsr-pytorch-x2"``/``"edsr-pytorch-x4"``), downloaded once into adaaug's cache
            (:mod:`adaaug.published_weights`); a path to a weights file or to a directory holding one
            ``<name>-<tag>.safetensors`` (:func:`weights_path`); or ``None`` for a freshly
            initialised network.
        hub_repo, revision: override the manifest's Hub repo id and pinned revision.

    A file is read by its content, not its name: a safetensors file as it is (its metadata
    ``"config"``, when present, builds the network, e.g. ``{"scale": 4}`` for EDSR ×4); anything
    else as a published checkpoint of ``edsr``/``edsr-down``/``cae`` (EDSR-PyTorch's ``.pt``,
    DeepAugment's ``edsr_baseline_x4.pt`` and ``model_final.state``), read with
    ``torch.load(weights_only=True)`` (no code runs), converted, and cached as safetensors keyed by
    its sha256, so that later loads read safetensors only (in memory every time when ``$ADAAUG_CACHE``
    turns caching off).

    Raises:
        FileNotFoundError: a missing file, or a tag that cannot be found (saying where adaaug looked and
            how to fix it; an unknown tag is an :class:`UnknownWeightsError`, also a ``ValueError``).
        ValueError: a file that fails its check (sha256, git blob id), is truncated, or differs from
            the architecture (naming the key, shape or config).
    """
    from .backbones import build_backbone

    if weights is None:
        return freeze(build_backbone(name))
    path = weights_path(name, weights)
    if path is None:
        path = resolve_backbone_file(name, str(weights), hub_repo=hub_repo, revision=revision)
    return freeze(load_weights_file(name, path))


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
