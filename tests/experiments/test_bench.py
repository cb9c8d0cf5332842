"""``adaaug bench`` on a tiny configuration: every figure present, shares consistent, patches undone."""
from __future__ import annotations

import math

import pytest
import torch

from adaaug import transform
from adaaug.experiments import bench_measure as measure


def test_step_benchmark_reports_a_consistent_breakdown():
    corrupt, init = transform._Corruptor.corrupt, transform.random_init
    r = measure.run("unet", batch_size=4, steps=2, chunk_size=2, device="cpu", repeats=1)
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
    t = measure.median_time(lambda: calls.append(1), torch.device("cpu"), repeats=3, warmup=2)
    assert len(calls) == 5 and t >= 0


def test_device_suite_runs_on_cpu_in_ci_size(tmp_path):
    """``adaaug bench --suite --device cpu`` (benchmarks/gpu.sh's CPU form): every part reports, files written."""
    import json

    from adaaug.experiments import bench_suite

    report = bench_suite.run_suite("cpu", "ci", out_dir=tmp_path)
    parts = report["parts"]
    assert list(parts) == list(bench_suite.PARTS)
    assert parts["cuda-tests"]["status"] == "skipped"
    assert all(parts[p]["status"] == "ok" for p in bench_suite.PARTS[1:]), {p: r.get("error") for p, r in parts.items()}
    for name, r in parts["per-example"]["backbones"].items():
        assert r["direct_path"], name
        for key in ("batched_s", "vmap_s", "loop_s", "shared_s"):
            assert r[key] > 0 and math.isfinite(r[key]), (name, key)
        assert math.isclose(r["loop_over_batched"], r["loop_s"] / r["batched_s"])
        assert math.isclose(r["batched_over_shared"], r["batched_s"] / r["shared_s"])
    step = parts["step"]["backbones"]["unet"]
    assert math.isclose(step["ada_over_floor"], step["ada_step_s"] / step["floor_s"])
    im = parts["imagenet"]
    assert im["config"]["steps"] == 3 and im["config"]["chunk_size"] == 1
    assert math.isclose(im["ada_images_per_s"], im["config"]["batch"] / im["ada_step_s"])
    assert set(parts["memory"]["peak_mb"]) == {"1", "2"}
    sync = parts["sync"]["backbones"]["unet"]
    assert sync["loops"] == 2 and sync["host_syncs"] == 0 and sync["ops"] == []  # batch 2 in nano-batches of 1
    saved = json.loads((tmp_path / "suite-cpu.json").read_text())
    assert saved["environment"]["torch"] == torch.__version__ and saved["sizes"] == "ci"
    md = (tmp_path / "suite-cpu.md").read_text()
    for heading in ("Per-example", "AdA step vs its floor", "Host synchronisations", "ImageNet preset", "Peak memory"):
        assert heading in md


def test_suite_goes_on_after_a_failing_or_overrunning_part(tmp_path, monkeypatch):
    import time as time_module

    from adaaug.experiments import bench_suite

    def fails(device, s, out):
        out["partial"] = 1
        raise RuntimeError("boom")

    def overruns(device, s, out):
        out["before_limit"] = True
        time_module.sleep(5)

    done = []
    monkeypatch.setitem(bench_suite._RUNNERS, "per-example", fails)
    monkeypatch.setitem(bench_suite._RUNNERS, "step", overruns)
    monkeypatch.setitem(bench_suite._RUNNERS, "memory", lambda device, s, out: done.append(out.update(x=1)))
    report = bench_suite.run_suite("cpu", "ci", parts=["per-example", "step", "memory"], out_dir=tmp_path,
                                   limit_scale=0.5 / 60)
    parts = report["parts"]
    assert parts["per-example"]["status"] == "failed" and "RuntimeError: boom" in parts["per-example"]["error"]
    assert parts["per-example"]["partial"] == 1
    assert parts["step"]["status"] == "timeout" and parts["step"]["before_limit"] and parts["step"]["seconds"] < 4
    assert parts["memory"]["status"] == "ok" and done
    assert "| per-example | failed |" in (tmp_path / "suite-cpu.md").read_text()


def test_suite_rejects_unknown_parts_and_sizes(tmp_path):
    from adaaug.experiments import bench_suite

    with pytest.raises(ValueError, match="unknown suite parts"):
        bench_suite.run_suite("cpu", "ci", parts=["nope"], out_dir=tmp_path)
    with pytest.raises(ValueError, match="sizes must be one of"):
        bench_suite.run_suite("cpu", "huge", out_dir=tmp_path)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--device cpu"):
            bench_suite.run_suite("cuda", out_dir=tmp_path)


def test_sync_part_narrows_to_the_backbones_asked_and_catches_a_planted_sync(tmp_path, monkeypatch):
    """(The clean case, no sync found, is test_device_suite_runs_on_cpu_in_ci_size's.)"""
    from adaaug import transform as transform_module
    from adaaug.experiments import bench_suite

    original = transform_module.project_

    def syncing_project(delta, radii):
        float(next(iter(delta.values())).norm())  # a host transfer, as a sloppy loop would do
        return original(delta, radii)
    monkeypatch.setattr(transform_module, "project_", syncing_project)
    sync = bench_suite.run_suite("cpu", "ci", parts=["sync"], out_dir=tmp_path, backbones=["vqvae"])["parts"]["sync"]
    assert sync["status"] == "failed" and "host synchronisation" in sync["error"]
    assert list(sync["backbones"]) == ["vqvae"]  # the ci sizes' own is unet
    # M = 1 step in each of the 2 nano-batches: one projection each
    assert sync["backbones"]["vqvae"]["host_syncs"] == 2
    assert sync["backbones"]["vqvae"]["ops"] == ["aten._local_scalar_dense.default"]
    with pytest.raises(ValueError, match="unknown backbones"):
        bench_suite.run_suite("cpu", "ci", parts=["sync"], out_dir=tmp_path, backbones=["nope"])


def test_suite_budget_cuts_each_limit_to_the_time_left(tmp_path, monkeypatch):
    import time as time_module

    from adaaug.experiments import bench_suite

    limits = {}

    def quick(device, s, out):
        limits["per-example"] = s["limits"]["per-example"]
        time_module.sleep(0.2)

    def overruns(device, s, out):
        limits["step"] = s["limits"]["step"]
        time_module.sleep(10)

    monkeypatch.setitem(bench_suite._RUNNERS, "per-example", quick)
    monkeypatch.setitem(bench_suite._RUNNERS, "step", overruns)
    monkeypatch.setitem(bench_suite._RUNNERS, "memory", lambda device, s, out: limits.setdefault("memory", 0))
    t = time_module.perf_counter()
    parts = bench_suite.run_suite("cpu", "ci", parts=["per-example", "step", "memory"], out_dir=tmp_path,
                                  budget_s=2.0)["parts"]
    assert time_module.perf_counter() - t < 3.5
    assert parts["per-example"]["status"] == "ok" and 1.5 < limits["per-example"] <= 2.0  # 60 s cut to ≤ 2
    assert parts["step"]["status"] == "timeout" and 1.0 < limits["step"] <= 1.8  # what the first part left
    assert parts["memory"]["status"] == "timeout" and "memory" not in limits  # nothing left: not started
    assert "not started: the suite's budget of 2 s was spent" in parts["memory"]["error"]
    with pytest.raises(ValueError, match="--budget-s must be > 0"):
        bench_suite.run_suite("cpu", "ci", parts=["memory"], out_dir=tmp_path, budget_s=0)
