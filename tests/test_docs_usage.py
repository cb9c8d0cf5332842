"""Execute every ```python block of docs/usage.md, in order, in one namespace.

Stand-in: AdversarialAugment runs the small U-Net with one ascent step instead of the page's EDSR with
M = 10, so that the page runs in seconds; everything else (data, pipeline, loop) is the page's code.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import adaaug
from adaaug import AdversarialAugment

USAGE = Path(__file__).resolve().parents[1] / "docs" / "usage.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


class QuickAdA(AdversarialAugment):
    def __init__(self, model, **kwargs):
        super().__init__(model, **{**kwargs, "backbone": "unet", "steps": 1})


def test_usage_page_runs(monkeypatch, capsys):
    blocks = python_blocks(USAGE.read_text())
    assert len(blocks) >= 4
    monkeypatch.setattr(adaaug, "AdversarialAugment", QuickAdA)
    namespace: dict = {}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"{USAGE.name}[python block {i}]", "exec"), namespace)
        except Exception as err:  # name the block in the failure
            pytest.fail(f"docs/usage.md python block {i} failed: {type(err).__name__}: {err}")
    assert isinstance(namespace["ada"], QuickAdA)  # the stand-in was used, not a silently different class
    assert namespace["x_adv"].shape == (8, 3, 32, 32) and namespace["x_adv"].dtype == torch.float32
    assert "last batch: loss" in capsys.readouterr().out
