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
    for cmd in ("demo", "train", "eval", "make-c", "mini-protocol", "train-backbone", "bench", "deepaugment-data",
                "publish-weights", "convert-weights"):
        assert cmd in out.stdout


REPO = __import__("pathlib").Path(__file__).resolve().parents[1]


def _setup_commands() -> list[str]:
    """The commands of the README's set-up block (comments stripped)."""
    import re

    text = (REPO / "README.md").read_text()
    section = text[text.index("## Set-up"):]
    block = re.search(r"```bash\n(.*?)\n```", section, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


@pytest.mark.skipif(not (REPO / ".ci" / "run").exists(), reason="needs the source checkout (.ci/run)")
def test_ci_runs_the_readme_setup_commands_as_written():
    commands = _setup_commands()
    assert commands == ['pip install . && adaaug demo', 'pip install ".[test]" && python -m pytest']
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    for command in commands:
        assert command in ci, command
    assert ci.index(commands[0]) < ci.index(commands[1])
    assert any("adaaug-demo.png" in line and "verify" in line for line in ci)  # the figure is checked


@pytest.mark.skipif(not (REPO / "pyproject.toml").exists(), reason="needs the source checkout")
def test_wheel_carries_license_typing_marker_and_textures(tmp_path):
    """Build the wheel (no network: the installed setuptools) and look inside."""
    import importlib.metadata
    import zipfile

    try:
        setuptools_major = int(importlib.metadata.version("setuptools").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        setuptools_major = 0
    if setuptools_major < 77:
        pytest.skip("building the wheel offline needs setuptools >= 77 installed")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path), "-q"], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(tmp_path.glob("adaaug-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        license_text = z.read(next(n for n in names if n.endswith("/licenses/LICENSE"))).decode()
    assert "Apache License" in license_text and "Version 2.0" in license_text
    assert license_text == (REPO / "LICENSE").read_text()
    assert "adaaug/py.typed" in names
    # the wheel's modules are the source tree's, every one (a stale build/ folder would add 0.2's old ones)
    shipped = {n for n in names if n.startswith("adaaug/") and n.endswith(".py")}
    source = {p.relative_to(REPO).as_posix() for p in (REPO / "adaaug").rglob("*.py")}
    source |= {f"adaaug/_weights/{p.name}" for p in (REPO / "weights").glob("*.py")}  # package-dir weights/
    assert shipped == source, (f"the wheel differs from the source tree: extra {sorted(shipped - source)[:5]}, "
                               f"missing {sorted(source - shipped)[:5]} (remove a stale build/ folder and rebuild)")
    frost = {n.rsplit("/", 1)[1] for n in names if n.startswith("adaaug/corruptions/frost/")}
    assert frost == {"frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg", "frost6.jpg", "README.md"}
    assert "License-Expression: Apache-2.0" in meta and "Author: " in meta and "Project-URL: " in meta
    requirements = [line for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    assert not any("imagecorruptions" in r or r.startswith("Requires-Dist: opencv-python<") for r in requirements)
    assert not any("matplotlib" in r and "extra" not in r for r in requirements)  # the core needs no plotting
