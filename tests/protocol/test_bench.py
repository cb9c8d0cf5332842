"""``adaaug bench`` on a tiny configuration: every figure present, shares consistent, patches undone."""
from __future__ import annotations

import math

import torch

from adaaug import transform
from adaaug.protocol import bench


def test_step_benchmark_reports_a_consistent_breakdown():
    corrupt, init = transform._Corruptor.corrupt, transform.random_init
    r = bench.run("unet", batch_size=4, steps=2, chunk_size=2, device="cpu", repeats=1)
    for key in ("nominal_step_s", "ada_step_s", "floor_s", "classifier_fwd_bwd_s", "backbone_fwd_bwd_s",
                "per_example_backbone_fwd_bwd_s", "per_example_floor_s"):
        assert r[key] > 0 and math.isfinite(r[key]), key
    assert math.isclose(r["floor_s"], 3 * r["classifier_fwd_bwd_s"] + 2 * r["backbone_fwd_bwd_s"])
    assert math.isclose(r["ada_over_floor"], r["ada_step_s"] / r["floor_s"])
    shares = [r[k] for k in ("share_projection_step", "share_line_search", "share_random_init", "share_final_forward")]
    assert all(0 < s < 1 for s in shares) and sum(shares) < 1
    # the timing wrappers are removed again
    assert transform._Corruptor.corrupt is corrupt and transform.random_init is init


def test_median_time_counts_each_repeat():
    calls = []
    t = bench.median_time(lambda: calls.append(1), torch.device("cpu"), repeats=3, warmup=2)
    assert len(calls) == 5 and t >= 0
