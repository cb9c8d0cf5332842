"""``adaaug publish-weights``: maintainers upload ``weights/`` to a Hugging Face Hub repo.

Uploads every file the manifest lists (checking each sha256 first) plus the JSON cards
and the manifest, as one commit, with ``huggingface_hub.HfApi.upload_folder``, tags
that commit ``v<adaaug version>`` (the revision the manifest pins), and prints the
commit hash (pin it instead of the tag for a fully immutable reference).
Needs a write token (``huggingface-cli login`` or ``HF_TOKEN``). Not run by the tests.

    adaaug publish-weights --repo adaaug/corruption-networks --weights weights/
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..weights import DEFAULT_HUB_REPO, read_manifest, verify_sha256


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo", default=DEFAULT_HUB_REPO, help="Hub model repo id")
    p.add_argument("--weights", default="weights", help="directory with manifest.json, .safetensors and cards")
    p.add_argument("--message", default="Upload adaaug weights", help="commit message on the Hub")
    p.add_argument("--private", action="store_true", help="create the Hub repo as private (default: public)")


def publish(weights_dir: str | Path, repo: str, message: str, private: bool = False) -> str:
    """Verify and upload ``weights_dir`` to ``repo``; returns the new commit hash."""
    from huggingface_hub import HfApi

    weights_dir = Path(weights_dir)
    if not (weights_dir / "manifest.json").is_file():
        raise FileNotFoundError(f"{weights_dir} has no manifest.json; pass --weights DIR, the weights/ directory "
                                f"of an adaaug checkout")
    manifest = read_manifest(weights_dir)
    files = [e["file"] for tags in manifest.get("files", {}).values() for e in tags.values()]
    if not files:
        raise ValueError(f"{weights_dir}/manifest.json lists no weights to publish")
    for tags in manifest["files"].values():
        for entry in tags.values():
            verify_sha256(weights_dir / entry["file"], entry["sha256"])
    api = HfApi()
    api.create_repo(repo, repo_type="model", exist_ok=True, private=private)
    info = api.upload_folder(folder_path=str(weights_dir), repo_id=repo, repo_type="model",
                             allow_patterns=["*.safetensors", "*.json"], commit_message=message)
    from .. import __version__

    api.create_tag(repo, tag=f"v{__version__}", revision=info.oid, repo_type="model", exist_ok=True)
    return info.oid


def main(args: argparse.Namespace) -> int:
    commit = publish(args.weights, args.repo, args.message, args.private)
    print(f"uploaded to {args.repo} at commit {commit} (tagged); the manifest's hub.revision pins that tag")
    return 0
