"""The floor of an AdA step (``adaaug bench``'s cost model), as ``adaaug train`` estimates it before starting."""
from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from adaaug.runtime import cost
from adaaug.runtime.cost import estimate_ada_step, floor_seconds


def test_floor_is_m_plus_one_classifier_and_m_backbone_passes():
    assert floor_seconds(0.5, 2.0, 10) == pytest.approx(11 * 0.5 + 10 * 2.0)
    assert floor_seconds(0.5, 2.0, 0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="steps"):
        floor_seconds(1.0, 1.0, -1)


def test_estimate_scales_the_timed_passes_to_the_batch_and_leaves_the_modules_alone(tiny_net, monkeypatch):
    """A fake clock: each timed pass "takes" 0.1 s (classifier) and 0.3 s (backbone) on 4 images."""
    ticks = iter([0.0, 0.1, 10.0, 10.3])
    monkeypatch.setattr(time, "perf_counter", lambda: next(ticks))
    backbone = nn.Conv2d(3, 3, 3, padding=1)
    before = ({k: v.clone() for k, v in tiny_net.state_dict().items()}, backbone.weight.clone())
    rng = torch.get_rng_state()
    tiny_net.eval()
    r = estimate_ada_step(tiny_net, backbone, batch=64, image_shape=(3, 32, 32), steps=10, probe=4)
    assert r["probe"] == 4
    assert r["classifier_fwd_bwd_s"] == pytest.approx(0.1 * 64 / 4)
    assert r["backbone_fwd_bwd_s"] == pytest.approx(0.3 * 64 / 4)
    assert r["floor_s"] == pytest.approx(11 * 1.6 + 10 * 4.8)  # (M + 1) · 1.6 s + M · 4.8 s, by hand
    assert all(torch.equal(v, before[0][k]) for k, v in tiny_net.state_dict().items())  # BatchNorm stats too
    assert torch.equal(backbone.weight, before[1]) and backbone.weight.grad is None
    assert all(p.grad is None for p in tiny_net.parameters()) and not tiny_net.training
    assert torch.equal(torch.get_rng_state(), rng)


def test_bench_and_train_share_the_cost_model():
    from adaaug.experiments import bench_measure

    assert bench_measure.floor_seconds is cost.floor_seconds
