"""Per-block perturbation helpers against hand calculations and distributional checks."""
from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from adaaug.counter_rng import words_reference

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


def _reference_normal(seed: int, j: int, total: int) -> float:
    """Normal j of a stream of ``total`` in pure Python float64 (adaaug.counter_rng's documented layout)."""
    w = words_reference(seed, j // 2)
    u1 = ((w >> 40) + 1) / 2 ** 24
    theta = 2 * math.pi * (w & 0xFFFFFF) / 2 ** 24
    return math.sqrt(-2 * math.log(u1)) * (math.cos(theta) if j % 2 == 0 else math.sin(theta))


def test_init_matches_a_pure_python_float64_reference():
    # independent reference: the splitmix64 words in Python integers, Box–Muller and the normalisation
    # in Python floats; example n's Gaussians are words 0..P-1, its radius fractions words P, P+1, ...
    p = _params()
    r = block_radii(p, 0.03)
    seeds = example_seeds(3, torch.Generator().manual_seed(7))
    d = random_init(p, r, seeds)
    sizes = [v.numel() for v in p.values()]
    total = sum(sizes)
    pairs = (total + 1) // 2
    for n, seed in enumerate(seeds.tolist()):
        gauss = [_reference_normal(seed, j, total) for j in range(total)]
        offset = 0
        for i, (k, v) in enumerate(p.items()):
            block = gauss[offset:offset + sizes[i]]
            offset += sizes[i]
            fraction = (words_reference(seed, pairs + i) >> 40) / 2 ** 24
            norm = math.sqrt(sum(g * g for g in block))
            expected = torch.tensor([g / norm * fraction * r[k].item() for g in block], dtype=torch.float64)
            # float32 Box–Muller: errors ~1e-7 of the block's scale (cos/sin of a float32 angle)
            assert torch.allclose(d[k][n].double().flatten(), expected, rtol=0, atol=1e-6 * expected.abs().max())


def test_init_is_the_same_on_every_chunking_and_repeats_bitwise():
    p = _params()
    r = block_radii(p, 0.05)
    seeds = example_seeds(7, torch.Generator().manual_seed(3))
    full = random_init(p, r, seeds)
    again = random_init(p, r, seeds)
    for size in (1, 2, 3, 7):
        parts = [random_init(p, r, seeds[s:s + size]) for s in range(0, 7, size)]
        for k in p:
            assert torch.equal(torch.cat([q[k] for q in parts]), full[k])
            assert torch.equal(again[k], full[k])


def test_init_in_float64_agrees_with_float32():
    p = _params()
    r = block_radii(p, 0.05)
    seeds = example_seeds(3, torch.Generator().manual_seed(2))
    d32 = random_init(p, r, seeds)
    d64 = random_init({k: v.double() for k, v in p.items()}, {k: v.double() for k, v in r.items()}, seeds)
    for k in p:
        assert d64[k].dtype == torch.float64
        assert torch.allclose(d64[k], d32[k].double(), rtol=0, atol=1e-6 * d64[k].abs().max())


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_init_on_cuda_matches_cpu():
    p = _params()
    r = block_radii(p, 0.05)
    seeds = example_seeds(5, torch.Generator().manual_seed(4))
    cpu = random_init(p, r, seeds)
    gpu = random_init({k: v.cuda() for k, v in p.items()}, {k: v.cuda() for k, v in r.items()}, seeds.cuda())
    for k in p:
        assert gpu[k].device.type == "cuda"
        assert torch.allclose(gpu[k].cpu(), cpu[k], rtol=0, atol=1e-6 * cpu[k].abs().max())


def test_zero_blocks_stay_unperturbed_without_nan():
    """A block of all-zero weights (a zero-initialised bias) has radius 0: δ stays 0, with no 0/0."""
    from adaaug.perturb import default_step_size, project_

    radii = {"w": torch.tensor(2.0), "b": torch.tensor(0.0)}
    delta = {"w": torch.zeros(3, 4), "b": torch.tensor([[0.0, 0.0], [0.5, -0.5], [0.0, 1e-30]])}
    project_(delta, radii)
    assert torch.equal(delta["b"], torch.zeros(3, 2)) and torch.equal(delta["w"], torch.zeros(3, 4))
    assert default_step_size({"a": torch.tensor(0.0), "b": torch.tensor(0.0), "c": torch.tensor(4.0)}) == 1.0
    with pytest.raises(ValueError, match="every weight of the backbone is zero"):
        default_step_size({"a": torch.tensor(0.0)})


def test_ada_with_a_zero_initialised_bias(tiny_net):
    from torch import nn

    from adaaug import AdversarialAugment

    class ZeroBias(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 3, 3, padding=1)
            nn.init.zeros_(self.a.bias)
            nn.init.zeros_(self.b.bias)

        def forward(self, x):
            return torch.sigmoid(self.b(torch.relu(self.a(x))))

    torch.manual_seed(0)
    ada = AdversarialAugment(tiny_net, backbone=ZeroBias(), steps=3, ssim_threshold=None)
    out, info = ada(torch.rand(4, 3, 32, 32), torch.arange(4), return_info=True)
    assert ada.corruptors[0].step_size > 0 and not out.isnan().any()
    norms = info.relative_norms["ZeroBias"]
    cols = {name: i for i, name in enumerate(info.block_names["ZeroBias"])}
    assert torch.equal(norms[:, cols["a.bias"]], torch.zeros(4)) and torch.equal(norms[:, cols["b.bias"]],
                                                                                  torch.zeros(4))
    assert (norms[:, cols["a.weight"]] > 0).all() and (norms[:, cols["a.weight"]] <= 0.015 + 1e-6).all()
