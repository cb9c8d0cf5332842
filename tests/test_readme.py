"""The ```python blocks of README.md and docs/*.md run as written, each in a fresh interpreter.

A fresh process per block, so that a name the README uses after ``import adaaug`` alone (say
``adaaug.models``) is not found only because another test imported the submodule first. Blocks may
use the stand-ins of ``PRELUDE`` (``model``, ``net``, ``loader``, ``opt``, ``x``, ``y``), tiny objects
built from torch alone; a block that defines these names itself overrides them. A block preceded by
the line ``<!-- no-test -->`` (right above its fence) is not run (for fragments that cannot run on their own).
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# docs/usage.md is one program in several blocks (run in order by tests/test_docs_usage.py)
PAGES = [REPO / "README.md", *sorted(p for p in (REPO / "docs").glob("*.md") if p.name != "usage.md")]

PRELUDE = '''
import torch
torch.manual_seed(0)
torch.set_num_threads(1)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                          torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 10))
model = net
opt = torch.optim.SGD(model.parameters(), lr=0.1)
x, y = torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,))
loader = [(x, y)]
'''

_BLOCK = re.compile(r"(?P<before>[^\n]*)\n```python\n(?P<code>.*?)\n```", re.S)


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """``(line, code)`` of every ```python block of ``path`` not marked ``<!-- no-test -->``."""
    text = path.read_text()
    blocks = []
    for match in _BLOCK.finditer(text):
        if match.group("before").strip() == "<!-- no-test -->":  # the line right above the fence
            continue
        blocks.append((text[:match.start("code")].count("\n") + 1, match.group("code")))
    return blocks


CASES = [pytest.param(code, id=f"{path.relative_to(REPO)}:{line}")
         for path in PAGES for line, code in python_blocks(path)]


def test_readme_has_runnable_blocks():
    assert any("README.md" in case.id for case in CASES)


def test_every_readme_snippet_runs():
    """No ```python block of the README is exempt: each one is among the cases run below, as written."""
    text = (REPO / "README.md").read_text()
    assert "<!-- no-test -->" not in text
    assert len(python_blocks(REPO / "README.md")) == text.count("```python") >= 2


def test_no_test_marker_is_honoured(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n\n```python\nprint(1)\n```\n\n<!-- no-test -->\n```python\nraise SystemExit(1)\n```\n"
                    "\n```bash\nexit 1\n```\n")
    assert [code for _, code in python_blocks(page)] == ["print(1)"]


@pytest.mark.parametrize("code", CASES)
def test_block_runs(code, tmp_path):
    result = subprocess.run([sys.executable, "-c", PRELUDE + "\n" + code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
