"""AugMix: per-example draws, [0, 1] outputs, seeding, each operation, samplers, bad input."""
from __future__ import annotations

import itertools

import pytest
import torch

from adaaug import paper
from adaaug.augment.augmix import EXTRA_OPS, OPS, AugMix, _affine_matrices, _warp, sample_beta, sample_dirichlet


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(1, 3, 32, 32, generator=_gen(1))


def test_per_example_draws_differ_and_stay_in_range(image):
    x = image.expand(6, -1, -1, -1).contiguous()
    y = AugMix(generator=_gen())(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    for i, j in itertools.combinations(range(6), 2):
        assert not torch.equal(y[i], y[j]), f"examples {i} and {j} got the same AugMix draw"


def test_seed_reproduces_and_call_generator_overrides(image):
    x = image.repeat(3, 1, 1, 1)
    a = AugMix(generator=_gen(3))(x)
    assert torch.equal(a, AugMix(generator=_gen(3))(x))
    assert torch.equal(a, AugMix(generator=_gen(99))(x, generator=_gen(3)))
    assert not torch.equal(a, AugMix(generator=_gen(4))(x))


def test_uint8_in_uint8_out(image):
    u8 = (image.repeat(2, 1, 1, 1) * 255).round().to(torch.uint8)
    y = AugMix(generator=_gen())(u8)
    assert y.dtype == torch.uint8 and y.shape == u8.shape


def test_default_ops_exclude_the_corruption_overlaps():
    assert set(AugMix().ops) == set(OPS)
    assert not {"contrast", "color", "brightness", "sharpness"} & set(AugMix().ops)
    assert set(AugMix(all_ops=True).ops) == set(OPS) | set(EXTRA_OPS)


@pytest.mark.parametrize("name", OPS + EXTRA_OPS)
def test_each_operation_changes_the_image_and_stays_in_range(image, name):
    am = AugMix(all_ops=True)
    x = 0.1 + 0.8 * image.repeat(4, 1, 1, 1)  # away from 0 and 1, so autocontrast has work to do
    k = am.ops.index(name)
    level = torch.full((4,), float(paper.AUGMIX_SEVERITY), dtype=torch.float64)
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    y = am._step(x, torch.full((4,), k), level, sign)
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    assert ((y - x).abs().flatten(1).amax(1) > 1e-2).all(), f"{name} left an image unchanged"
    # op == -1 (chain already finished) is the identity
    assert torch.equal(am._step(x, torch.full((4,), -1), level, sign), x)


def test_translate_follows_pil_convention():
    """PIL's affine maps output pixel (x, y) to input (x + c, y): content moves left by c pixels."""
    x = torch.rand(2, 3, 12, 12, generator=_gen(2))
    level = torch.full((2,), 2.9, dtype=torch.float64)  # floor(2.9 · 4 / 10) = 1 pixel on a 12-pixel image
    mat = _affine_matrices("translate_x", level, torch.tensor([1.0, -1.0], dtype=torch.float64), 12, 12)
    y = _warp(x, mat)
    torch.testing.assert_close(y[0, :, :, :-1], x[0, :, :, 1:])
    torch.testing.assert_close(y[1, :, :, 1:], x[1, :, :, :-1])
    assert y[0, :, :, -1].abs().max() == 0  # black fill


def test_mixing_weights_are_dirichlet_and_beta():
    w = sample_dirichlet(1.0, (20000, 3), _gen())
    torch.testing.assert_close(w.sum(1), torch.ones(20000, dtype=torch.float64))
    assert (w.mean(0) - 1 / 3).abs().max() < 0.01
    assert abs(w[:, 0].var().item() - 1 / 18) < 0.004  # Dirichlet(1,1,1) marginal: Beta(1, 2)
    small = sample_dirichlet(0.1, (5000, 4), _gen(1))
    assert small.max(1).values.mean() > 0.8  # α = 0.1 concentrates on one entry
    m = sample_beta(2.0, 5.0, (20000,), _gen(2))
    assert abs(m.mean().item() - 2 / 7) < 0.01 and m.min() >= 0 and m.max() <= 1


@pytest.mark.parametrize("bad,err,match", [
    (torch.rand(3, 32, 32), ValueError, "4 dimensions"),
    (torch.full((1, 3, 8, 8), float("nan")), ValueError, "NaN"),
    (torch.rand(1, 2, 8, 8), ValueError, "1- or 3-channel"),
    (torch.rand(1, 3, 8, 8) - 1, ValueError, r"\[0, 1\]"),
    ("image", TypeError, "torch.Tensor"),
])
def test_bad_input_raises(bad, err, match):
    with pytest.raises(err, match=match):
        AugMix()(bad)


def test_bad_configuration_raises():
    with pytest.raises(ValueError, match="depth"):
        AugMix(depth=(3, 1))
    with pytest.raises(ValueError, match="severity"):
        AugMix(severity=11)
    with pytest.raises(ValueError, match="width"):
        AugMix(width=0)
    with pytest.raises(TypeError, match="generator"):
        AugMix(generator=1)
