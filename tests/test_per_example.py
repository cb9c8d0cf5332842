"""Per-example backbone passes (adaaug.per_example) against a Python loop over examples.

The reference runs ``functional_call`` once per example with that example's weights φ + δ⁽ⁿ⁾ and
differentiates each example's own loss: no vmap, no grouped convolutions, no shared storage.
Everything in float64, so the two sides may differ only by summation order.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from adaaug.backbones import build_backbone
from adaaug.per_example import PerExampleBackbone, per_example_call, supports, vmap_call

TOL = 1e-10


def _state(module: nn.Module, n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    params = {k: p.detach().double() for k, p in module.named_parameters()}
    buffers = {k: b.detach().double() if b.is_floating_point() else b for k, b in module.named_buffers()}
    delta = {k: 0.05 * p.abs().mean() * torch.randn(n, *p.shape, generator=g, dtype=torch.float64)
             for k, p in params.items()}
    return params, buffers, delta


def _loss_weights(n: int, out_shape) -> torch.Tensor:
    return torch.linspace(-1, 1, n * int(torch.tensor(out_shape).prod()), dtype=torch.float64).view(n, *out_shape)


def _loop(module, params, buffers, delta, x):
    """Outputs and δ-gradients of Σ_n ⟨c, out_n⟩, one example at a time."""
    outs, grads = [], {k: [] for k in params}
    for n in range(len(x)):
        d = {k: v[n].clone().requires_grad_(True) for k, v in delta.items()}
        out = functional_call(module, {**{k: params[k] + d[k] for k in params}, **buffers}, (x[n:n + 1],))[0]
        c = _loss_weights(len(x), out.shape)[n]
        for k, gk in zip(d, torch.autograd.grad((out * c).sum(), list(d.values()))):
            grads[k].append(gk)
        outs.append(out.detach())
    return torch.stack(outs), {k: torch.stack(v) for k, v in grads.items()}


def _batched(runner, params, buffers, delta, x):
    leaves = {k: v.clone().requires_grad_(True) for k, v in delta.items()}
    out = runner(x, leaves, params, buffers)
    c = _loss_weights(len(x), out.shape[1:])
    grads = torch.autograd.grad((out * c).sum(), list(leaves.values()))
    return out.detach(), dict(zip(leaves, grads))


def _assert_equal(a, b):
    out_a, g_a = a
    out_b, g_b = b
    assert out_a.shape == out_b.shape
    assert (out_a - out_b).abs().max().item() < TOL * max(1.0, out_b.abs().max().item())
    for k in g_b:
        scale = max(1.0, g_b[k].abs().max().item())
        assert (g_a[k] - g_b[k]).abs().max().item() < TOL * scale, k


@pytest.mark.parametrize("name,size", [("edsr", 8), ("cae", 12), ("vqvae", 16), ("unet", 8)])
def test_backbones_match_a_loop_over_examples(name, size):
    torch.manual_seed(0)
    module = build_backbone(name).double().eval()
    assert supports(module)
    runner = PerExampleBackbone(module)
    assert runner.direct
    params, buffers, delta = _state(module, 3)
    x = torch.rand(3, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    _assert_equal(_batched(runner, params, buffers, delta, x), _loop(module, params, buffers, delta, x))


class _Layers(nn.Module):
    """Every layer kind the direct path handles: strided, grouped, 1×1, transposed, linear."""

    per_example_layers = True

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=False)
        self.c = nn.Conv2d(8, 6, 1)
        self.d = nn.ConvTranspose2d(6, 4, 4, stride=2, padding=1, groups=2)
        self.e = nn.Conv2d(4, 4, 3, padding="same", padding_mode="reflect")
        self.f = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.b(torch.tanh(self.a(x))))
        h = self.e(self.d(torch.relu(self.c(h))))
        return self.f(h.permute(0, 2, 3, 1))


class _Untrusted(_Layers):
    per_example_layers = False


def test_every_layer_kind_matches_a_loop():
    module = _Layers().double()
    assert supports(module)
    params, buffers, delta = _state(module, 4)
    x = torch.rand(4, 3, 6, 6, dtype=torch.float64)
    _assert_equal(_batched(PerExampleBackbone(module), params, buffers, delta, x),
                  _loop(module, params, buffers, delta, x))


def test_other_modules_take_the_vmap_path_and_match_too():
    module = _Untrusted().double()
    assert not supports(module)
    runner = PerExampleBackbone(module)
    assert not runner.direct
    params, buffers, delta = _state(module, 3)
    x = torch.rand(3, 3, 6, 6, dtype=torch.float64)
    _assert_equal(_batched(runner, params, buffers, delta, x), _loop(module, params, buffers, delta, x))


class _Scaled(nn.Module):
    per_example_layers = True

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.gain = nn.Parameter(torch.ones(1))  # owned by a module that is no conv/linear

    def forward(self, x):
        return self.conv(x) * self.gain


def test_supports_refuses_parameters_outside_known_layers():
    assert not supports(_Scaled())


def test_storage_is_reused_across_nano_batch_sizes_and_stays_correct():
    module = _Layers().double()
    runner = PerExampleBackbone(module)
    for n, seed in [(4, 0), (2, 1), (3, 2), (5, 3)]:
        params, buffers, delta = _state(module, n, seed)
        x = torch.rand(n, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        _assert_equal(_batched(runner, params, buffers, delta, x), _loop(module, params, buffers, delta, x))
    assert len(runner._storage) == 1  # one device, dtype and thread


def test_a_stale_graph_raises_instead_of_using_overwritten_weights():
    module = _Layers().double()
    runner = PerExampleBackbone(module)
    params, buffers, delta = _state(module, 2)
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    leaves = {k: v.clone().requires_grad_(True) for k, v in delta.items()}
    first = runner(x, leaves, params, buffers)
    runner(x, {k: v + 1 for k, v in delta.items()}, params, buffers)  # overwrites the weight storage
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        torch.autograd.grad(first.sum(), list(leaves.values()))


def test_direct_and_vmap_paths_agree_and_handle_an_empty_batch():
    module = build_backbone("unet").double().eval()
    params, buffers, delta = _state(module, 3)
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64)
    weights = {k: params[k] + delta[k] for k in params}
    a, b = per_example_call(module, weights, buffers, x), vmap_call(module, weights, buffers, x)
    assert (a - b).abs().max().item() < TOL
    empty = {k: v[:0] for k, v in weights.items()}
    assert per_example_call(module, empty, buffers, x[:0]).shape == (0, 3, 8, 8)
    assert vmap_call(module, empty, buffers, x[:0]).shape == (0, 3, 8, 8)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["edsr", "cae", "vqvae", "unet"])
def test_cuda_direct_path_matches_the_cpu_loop(name):
    torch.manual_seed(0)
    module = build_backbone(name).double().eval()
    params, buffers, delta = _state(module, 3)
    x = torch.rand(3, 3, 16, 16, dtype=torch.float64)
    ref = _loop(module, params, buffers, delta, x)
    cuda = lambda d: {k: v.cuda() for k, v in d.items()}
    out, grads = _batched(PerExampleBackbone(module.cuda()), cuda(params), cuda(buffers), cuda(delta), x.cuda())
    _assert_equal((out.cpu(), {k: g.cpu() for k, g in grads.items()}), ref)


# ---- what a custom backbone returns, and randomness in it -----------------------------------------
class _Returns(nn.Module):
    """A convolutional backbone whose forward returns ``kind``: a tuple, a dict, a smaller image."""

    def __init__(self, kind: str, direct: bool) -> None:
        super().__init__()
        self.kind, self.per_example_layers = kind, direct
        self.conv = nn.Conv2d(3, 3, 3, padding=0 if kind == "smaller" else 1)

    def forward(self, x):
        out = torch.sigmoid(self.conv(x))
        return {"tuple": (out, out.mean()), "dict": {"image": out}}.get(self.kind, out)


def _classifier() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))


def _params_snapshot(module):
    return [(p, p.detach().clone()) for _, p in module.named_parameters(remove_duplicate=False)]


def _assert_params_as_found(module, snap):
    now = [p for _, p in module.named_parameters(remove_duplicate=False)]
    assert len(now) == len(snap)
    for p, (p0, v0) in zip(now, snap):
        assert p is p0 and type(p) is nn.Parameter and torch.equal(p.detach(), v0)


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("kind,error,match", [
    ("tuple", TypeError, r"backbone _Returns returned a tuple, but a corruption backbone must return an image tensor "
                         r"of the input's shape N×C×H×W .*wrap it"),
    ("dict", TypeError, r"backbone _Returns returned a dict"),
    ("smaller", ValueError, r"backbone _Returns returned images of shape 3×6×6 for inputs of shape 3×8×8"),
])
@pytest.mark.parametrize("steps", [0, 2])
def test_a_backbone_that_returns_no_image_of_the_inputs_shape_is_named_in_a_clear_error(direct, kind, error, match,
                                                                                          steps):
    from adaaug import AdversarialAugment

    backbone = _Returns(kind, direct)
    assert supports(backbone) == direct
    snap = _params_snapshot(backbone)
    ada = AdversarialAugment(_classifier(), backbone=backbone, steps=steps, ssim_threshold=None)
    with pytest.raises(error, match=match):
        ada(torch.rand(2, 3, 8, 8), torch.tensor([1, 2]))
    _assert_params_as_found(backbone, snap)  # restored although the forward failed half-way


class _Noisy(nn.Module):
    """A backbone with random operations in its forward (noise injection, dropout in training mode)."""

    def __init__(self, direct: bool) -> None:
        super().__init__()
        self.per_example_layers = direct
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        scale = torch.rand(()) * 0 + 1  # a random op of its own shape, not the input's (still per example)
        return torch.sigmoid(self.conv(x) + 0.1 * torch.randn_like(x)) * scale


@pytest.mark.parametrize("direct", [True, False])
def test_random_ops_in_a_backbone_draw_per_example_on_both_paths(direct):
    module = _Noisy(direct).double().eval()
    assert supports(module) == direct
    params, buffers, delta = _state(module, 2)
    delta = {k: v[:1].expand_as(v).clone() for k, v in delta.items()}  # the same weights for both examples
    x = torch.rand(1, 3, 6, 6, dtype=torch.float64).expand(2, -1, -1, -1)  # the same image twice
    runner = PerExampleBackbone(module)
    torch.manual_seed(5)
    a = runner(x, delta, params, buffers)
    torch.manual_seed(5)
    b = runner(x, delta, params, buffers)
    assert torch.equal(a, b)  # reproducible through torch's global seed
    assert (a[0] - a[1]).abs().max().item() > 1e-3  # but example 0 and 1 draw their own noise
    clean = torch.sigmoid(nn.functional.conv2d(x[:1], params["conv.weight"] + delta["conv.weight"][0],
                                               params["conv.bias"] + delta["conv.bias"][0], padding=1))
    assert (a - clean).abs().max().item() < 0.1  # noise of the stated size around the right image


@pytest.mark.parametrize("direct", [True, False])
def test_ada_runs_a_random_backbone_and_leaves_dropout_in_training_mode_as_found(direct):
    from adaaug import AdversarialAugment

    class WithDropout(_Noisy):
        def __init__(self, direct):
            super().__init__(direct)
            self.drop = nn.Dropout(0.9)

        def forward(self, x):
            return self.drop(super().forward(x))

    backbone = WithDropout(direct).train()
    snap = _params_snapshot(backbone)
    ada = AdversarialAugment(_classifier(), backbone=backbone, steps=2, ssim_threshold=None)
    x, y = torch.rand(3, 3, 8, 8), torch.tensor([0, 1, 2])
    torch.manual_seed(1)
    out = ada(x, y, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    again = ada(x, y, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again) and out.shape == x.shape
    assert (out > 0).float().mean() > 0.9  # the backbone ran in eval mode: no dropout zeros
    assert backbone.training and backbone.drop.training
    _assert_params_as_found(backbone, snap)
