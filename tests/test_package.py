"""Package-level contract: a light import, lazy public names, the CLI entry point."""
from __future__ import annotations

import subprocess
import sys

import pytest

import adaaug


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout


def test_import_is_light():
    out = _run("import sys, adaaug; print(sorted(m for m in ('torch', 'torchvision', 'piq', 'huggingface_hub', "
               "'scipy', 'matplotlib') if m in sys.modules))")
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", adaaug.__all__)
def test_public_names_resolve(name):
    assert getattr(adaaug, name) is not None


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        adaaug.nope


def test_cli_lists_commands():
    out = subprocess.run([sys.executable, "-m", "adaaug", "--help"], capture_output=True, text=True, timeout=120)
    for cmd in ("demo", "train", "eval", "make-c", "train-backbone", "bench", "publish-weights"):
        assert cmd in out.stdout
