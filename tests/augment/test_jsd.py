"""The AugMix Jensen–Shannon loss against an independent float64 reference."""
from __future__ import annotations

import math

import pytest
import torch

from adaaug import paper
from adaaug.augment.jsd import jsd_loss


def _reference(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, weight: float) -> float:
    """Plain Python, float64, straight from the definition (no torch softmax)."""
    total = 0.0
    rows = a.shape[0]
    for i in range(rows):
        dists = []
        for t in (a, b, c):
            z = [float(v) for v in t[i].double()]
            mx = max(z)
            e = [math.exp(v - mx) for v in z]
            s = sum(e)
            dists.append([v / s for v in e])
        mix = [min(max(sum(d[k] for d in dists) / 3, paper.AUGMIX_JSD_CLAMP), 1.0) for k in range(len(dists[0]))]
        for d in dists:
            total += sum(p * (math.log(p) - math.log(q)) for p, q in zip(d, mix) if p > 0) / rows / 3
    return weight * total


def test_zero_for_identical_distributions():
    logits = torch.randn(5, 10, generator=torch.Generator().manual_seed(0))
    assert jsd_loss(logits, logits, logits).abs().item() < 1e-6
    # identical distributions from shifted logits too
    assert jsd_loss(logits, logits + 3, logits - 7).abs().item() < 1e-5


@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_matches_float64_reference(scale):
    g = torch.Generator().manual_seed(1)
    a, b, c = (scale * torch.randn(6, 7, generator=g) for _ in range(3))
    got = jsd_loss(a, b, c)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(_reference(a, b, c, paper.AUGMIX_JSD_LAMBDA), rel=1e-5, abs=1e-6)
    assert jsd_loss(a, b, c, weight=1.0).item() == pytest.approx(_reference(a, b, c, 1.0), rel=1e-5, abs=1e-7)
    assert jsd_loss(a.double(), b.double(), c.double()).item() == pytest.approx(
        _reference(a, b, c, paper.AUGMIX_JSD_LAMBDA), rel=1e-10)


def test_large_logits_stay_finite_and_gradients_flow():
    g = torch.Generator().manual_seed(2)
    a, b, c = (1e4 * torch.randn(4, 10, generator=g) for _ in range(3))
    for t in (a, b, c):
        t.requires_grad_(True)
    loss = jsd_loss(a, b, c)
    assert torch.isfinite(loss) and loss > 0
    # bounded: each KL(p ‖ M) ≤ log 3 because M ≥ p / 3
    assert loss.item() <= paper.AUGMIX_JSD_LAMBDA * math.log(3) + 1e-4
    loss.backward()
    assert all(torch.isfinite(t.grad).all() for t in (a, b, c))


def test_bad_input_raises():
    x = torch.randn(3, 4)
    with pytest.raises(ValueError, match="same shape"):
        jsd_loss(x, x, torch.randn(3, 5))
    with pytest.raises(ValueError, match="N×classes"):
        jsd_loss(x[0], x[0], x[0])
    with pytest.raises(TypeError, match="floating point"):
        jsd_loss(x.long(), x.long(), x.long())
    with pytest.raises(TypeError, match="torch.Tensor"):
        jsd_loss(x, x, [[0.0]])
