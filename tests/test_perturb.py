"""Per-block perturbation helpers against hand calculations and distributional checks."""
from __future__ import annotations

import math

import torch
from scipy import stats

from adaaug.perturb import (block_radii, default_step_size, example_seeds, project, random_init, relative_norms,
                            sign_step)


def _params():
    torch.manual_seed(0)
    return {"w": torch.randn(8, 4, 3, 3), "b": torch.randn(8) * 0.1, "v": torch.randn(5)}


def test_radii_and_step_size_by_hand():
    p = _params()
    r = block_radii(p, 0.02)
    for k in p:
        assert math.isclose(r[k].item(), 0.02 * math.sqrt(float((p[k].double() ** 2).sum())), rel_tol=1e-6)
    expected = 0.25 * sorted(v.item() for v in r.values())[1]  # median of three
    assert math.isclose(default_step_size(r), expected, rel_tol=1e-6)


def test_init_radius_is_uniform_and_direction_isotropic():
    p = _params()
    r = block_radii(p, 0.05)
    d = random_init(p, r, example_seeds(4000, torch.Generator().manual_seed(1)))
    for k in p:
        assert d[k].shape == (4000, *p[k].shape)
        u = (d[k].flatten(1).norm(dim=1) / r[k]).numpy()
        assert u.max() <= 1 + 1e-6
        assert stats.kstest(u, "uniform").pvalue > 1e-3
    direction = d["w"].flatten(1) / d["w"].flatten(1).norm(dim=1, keepdim=True)
    # an isotropic direction has mean ~0 and covariance ~I/dim
    assert direction.mean(0).abs().max() < 5 / math.sqrt(4000)
    assert abs(direction.pow(2).mean().item() - 1 / direction.shape[1]) < 1e-3


def test_projection_onto_each_blocks_ball():
    p = _params()
    r = block_radii(p, 0.01)
    big = {k: torch.randn(6, *v.shape) for k, v in p.items()}
    big["v"][0] = 0  # inside the ball: unchanged
    out = project(big, r)
    for k in p:
        norms = out[k].flatten(1).norm(dim=1)
        inside = big[k].flatten(1).norm(dim=1) <= r[k]
        assert torch.all(norms <= r[k] * (1 + 1e-6))
        assert torch.allclose(norms[~inside], r[k].expand(int((~inside).sum())), rtol=1e-5)
        assert torch.equal(out[k][inside], big[k][inside])
        # direction is kept
        cos = torch.nn.functional.cosine_similarity(out[k].flatten(1)[~inside], big[k].flatten(1)[~inside])
        assert torch.allclose(cos, torch.ones_like(cos), atol=1e-5)


def test_sign_step_and_relative_norms():
    p = _params()
    d = {k: torch.zeros(2, *v.shape) for k, v in p.items()}
    g = {k: torch.randn(2, *v.shape) for k, v in p.items()}
    s = sign_step(d, g, 0.5)
    assert torch.equal(s["w"], 0.5 * g["w"].sign())
    rel = relative_norms(s, p)
    assert rel.shape == (2, 3)
    assert math.isclose(rel[0, 0].item(), 0.5 * math.sqrt(p["w"].numel()) / p["w"].norm().item(), rel_tol=1e-5)


def test_init_depends_only_on_each_examples_seed():
    p = _params()
    r = block_radii(p, 0.05)
    seeds = example_seeds(5, torch.Generator().manual_seed(0))
    full = random_init(p, r, seeds)
    part = random_init(p, r, seeds[2:4])
    assert all(torch.equal(full[k][2:4], part[k]) for k in p)
    assert not torch.equal(full["w"][0], full["w"][1])


def test_init_follows_the_documented_draw_order():
    # independent reference: example n's generator draws all Gaussians (blocks in order), then one
    # uniform per block; direction normalised in float64, scaled by u · ν‖φ_i‖₂
    p = _params()
    r = block_radii(p, 0.03)
    seeds = example_seeds(3, torch.Generator().manual_seed(7))
    d = random_init(p, r, seeds)
    sizes = [v.numel() for v in p.values()]
    for n, seed in enumerate(seeds.tolist()):
        g = torch.Generator().manual_seed(seed)
        gauss = torch.randn(sum(sizes), generator=g).double().split(sizes)
        u = torch.rand(len(sizes), generator=g).double()
        for i, (k, v) in enumerate(p.items()):
            expected = (gauss[i] / gauss[i].norm() * u[i] * r[k].double()).view(v.shape)
            assert torch.allclose(d[k][n].double(), expected, rtol=1e-5, atol=1e-9)
