"""SSIM line search (App. F) and the SSIM it relies on (App. F.1)."""
from __future__ import annotations

import math

import torch

from adaaug.line_search import _quadratic_root_near_one, ssim, ssim_line_search

TOL = 0.03  # the fitted quadratic can underfit; measured SSIM may miss 1 − t by this much


def _images(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 32, 32, generator=g)
    x = torch.nn.functional.avg_pool2d(x, 3, 1, 1)  # some structure
    return x, g


def test_ssim_matches_a_float64_reference():
    x, g = _images(2)
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    # reference: Wang et al. 2004 with an 11×11 Gaussian window, σ 1.5, valid convolution
    coords = torch.arange(11, dtype=torch.float64) - 5
    w1 = torch.exp(-coords ** 2 / (2 * 1.5 ** 2))
    w1 = w1 / w1.sum()
    win = (w1[:, None] * w1[None, :]).expand(3, 1, 11, 11)
    xd, yd = x.double(), y.double()
    f = lambda t: torch.nn.functional.conv2d(t, win, groups=3)
    mx, my = f(xd), f(yd)
    sxx, syy, sxy = f(xd * xd) - mx ** 2, f(yd * yd) - my ** 2, f(xd * yd) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ref = ((2 * mx * my + c1) * (2 * sxy + c2) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))).mean((1, 2, 3))
    assert torch.allclose(ssim(x, y).double(), ref, atol=1e-4)


def test_images_within_the_threshold_are_returned_bitwise():
    x, g = _images()
    x_hat = (x + 0.01 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    out, gamma, s = ssim_line_search(x, x_hat, threshold=0.3)
    assert out is x_hat or torch.equal(out, x_hat)
    assert torch.all(gamma == 1)
    assert torch.allclose(s, ssim(x, x_hat))


def test_over_corrupted_images_are_pulled_back_to_the_threshold():
    x, g = _images(8)
    x_hat = (x + 0.5 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    t = 0.3
    assert torch.all(1 - ssim(x, x_hat) > t)
    out, gamma, s = ssim_line_search(x, x_hat, threshold=t)
    assert torch.all((gamma > 0) & (gamma < 1))
    assert torch.all(1 - s <= t + TOL)
    assert torch.all(1 - s >= t - 0.1)  # not pulled back much further than needed
    expected = (1 - gamma.view(-1, 1, 1, 1)) * x + gamma.view(-1, 1, 1, 1) * x_hat
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(s, ssim(x, out))


def test_mixed_batch_only_touches_violators():
    x, g = _images(4)
    x_hat = x.clone()
    x_hat[2:] = (x[2:] + 0.6 * torch.randn(x[2:].shape, generator=g)).clamp(0, 1)
    out, gamma, _ = ssim_line_search(x, x_hat, threshold=0.3)
    assert torch.equal(out[:2], x_hat[:2]) and torch.all(gamma[:2] == 1)
    assert torch.all(gamma[2:] < 1)


def test_quadratic_root_choice_by_hand():
    # (γ − 0.25)(γ − 0.75) = γ² − γ + 0.1875: largest root in [0, 1] is 0.75
    root, found = _quadratic_root_near_one(torch.tensor([[1.0, -1.0, 0.1875]], dtype=torch.float64))
    assert found.item() and math.isclose(root.item(), 0.75, rel_tol=1e-9)
    # linear: −2γ + 1 → 0.5
    root, found = _quadratic_root_near_one(torch.tensor([[0.0, -2.0, 1.0]], dtype=torch.float64))
    assert found.item() and math.isclose(root.item(), 0.5)
    # no real root: γ² + 1
    _, found = _quadratic_root_near_one(torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64))
    assert not found.item()
