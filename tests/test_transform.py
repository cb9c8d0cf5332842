"""AdversarialAugment: Algorithm 1 against an independent per-example reference, plus its contract."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import adaaug.transform as transform_module
from adaaug import AdversarialAugment
from adaaug.backbones import build_backbone
from adaaug.perturb import block_radii, example_seeds, random_init


def _batch(n=6, seed=0, size=32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)


def _reference(model, backbone, x, y, nu, steps, seed):
    """Algorithm 1 one example at a time with ordinary autograd: no vmap, no functional_call."""
    model = copy.deepcopy(model).eval()
    phi = {k: p.detach().clone() for k, p in backbone.named_parameters()}
    radii = block_radii(phi, nu)
    eta = 0.25 * torch.stack(list(radii.values())).median().item()
    g = torch.Generator().manual_seed(seed)  # one backbone: no assignment draw, the seeds come first
    delta0 = random_init(phi, radii, example_seeds(len(x), g))
    outs = []
    for n in range(len(x)):
        net = copy.deepcopy(backbone).eval()
        d = {k: delta0[k][n].clone() for k in phi}
        for _ in range(steps):
            params = dict(net.named_parameters())
            with torch.no_grad():
                for k in phi:
                    params[k].copy_(phi[k] + d[k])
                    params[k].requires_grad_(True)
                    params[k].grad = None
            loss = nn.functional.cross_entropy(model(net(x[n:n + 1]).clamp(0, 1)), y[n:n + 1])
            loss.backward()
            for k in phi:
                d[k] = d[k] + eta * params[k].grad.sign()
                norm = d[k].norm()
                if norm > radii[k]:
                    d[k] = d[k] * (radii[k] / norm)
        with torch.no_grad():
            for k, p in net.named_parameters():
                p.copy_(phi[k] + d[k])
            outs.append(net(x[n:n + 1]).clamp(0, 1))
    return torch.cat(outs)


@pytest.mark.parametrize("name", ["unet", "edsr"])
def test_vmap_path_matches_a_per_example_loop(tiny_net, name):
    # float64 on both sides, so that no gradient component changes sign by rounding alone; 16 px keeps EDSR quick
    x, y = _batch(3, size=16)
    x, net = x.double(), copy.deepcopy(tiny_net).double()
    ada = AdversarialAugment(net, backbone=name, weights=None, nu=0.02, steps=2, ssim_threshold=None,
                             chunk_size=2)
    out = ada(x, y, generator=torch.Generator().manual_seed(5))
    ref = _reference(net, copy.deepcopy(ada.corruptors[0].module).double(), x, y, 0.02, 2, 5)
    assert (out - ref).abs().max().item() < 1e-5


def test_projection_holds_after_every_step(tiny_net, monkeypatch):
    recorded = []
    original = transform_module.project_

    def spy(delta, radii):
        out = original(delta, radii)
        recorded.append({k: (out[k].flatten(1).norm(dim=1), radii[k]) for k in out})
        return out

    monkeypatch.setattr(transform_module, "project_", spy)
    x, y = _batch(5)
    ada = AdversarialAugment(tiny_net, backbone="unet", weights=None, nu=0.03, steps=4, ssim_threshold=None,
                             chunk_size=2)
    _, info = ada(x, y, return_info=True)
    assert len(recorded) == 4 * 3  # steps × nano-batches
    for step in recorded:
        for norms, radius in step.values():  # includes the biases
            assert torch.all(norms <= radius * (1 + 1e-5))
    rel = info.relative_norms["unet"]
    assert rel.shape == (5, len(info.block_names["unet"]))
    assert torch.all(rel <= 0.03 * (1 + 1e-5))


def test_steps_raise_the_loss_over_the_random_init(tiny_net):
    x, y = _batch(16)
    kw = dict(backbone=build_backbone("unet"), nu=0.05, ssim_threshold=None, chunk_size=8)
    _, info0 = AdversarialAugment(tiny_net, steps=0, **kw)(x, y, generator=torch.Generator().manual_seed(0),
                                                            return_info=True)
    _, info3 = AdversarialAugment(tiny_net, steps=3, **kw)(x, y, generator=torch.Generator().manual_seed(0),
                                                            return_info=True)
    assert info3.loss.mean() > info0.loss.mean()
    assert (info3.loss > info0.loss).float().mean() >= 0.75


def test_classifier_is_left_exactly_as_found(tiny_net):
    x, y = _batch(6)
    tiny_net.train()
    tiny_net.fc.eval()  # a mixed-mode model
    nn.functional.cross_entropy(tiny_net(x), y).backward()  # populated .grad
    before = copy.deepcopy(tiny_net.state_dict())
    grads = {k: p.grad.clone() for k, p in tiny_net.named_parameters()}
    modes = [m.training for m in tiny_net.modules()]
    flags = [p.requires_grad for p in tiny_net.parameters()]
    ada = AdversarialAugment(tiny_net, backbone="unet", weights=None, steps=2)
    ada(x, y, return_info=True)
    after = tiny_net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # params and BN buffers, bitwise
    assert all(torch.equal(grads[k], p.grad) for k, p in tiny_net.named_parameters())
    assert modes == [m.training for m in tiny_net.modules()]
    assert flags == [p.requires_grad for p in tiny_net.parameters()]


def test_user_backbone_module_mode_is_restored(tiny_net):
    bb = build_backbone("unet").train()
    AdversarialAugment(tiny_net, backbone=bb, steps=1)(*_batch(2))
    assert bb.training


def test_seeded_runs_repeat_bitwise_and_seeds_differ(tiny_net):
    x, y = _batch(4)
    ada = AdversarialAugment(tiny_net, backbone="unet", weights=None, steps=2)
    a = ada(x, y, generator=torch.Generator().manual_seed(3))
    b = ada(x, y, generator=torch.Generator().manual_seed(3))
    c = ada(x, y, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(11)
    d = ada(x, y)
    torch.manual_seed(11)
    assert torch.equal(d, ada(x, y))  # the global RNG when no generator is given


def test_result_does_not_depend_on_chunk_size(tiny_net):
    x, y = _batch(5)
    x, net = x.double(), copy.deepcopy(tiny_net).double()  # float64: no sign flips from rounding
    kw = dict(backbone=build_backbone("unet"), steps=2, ssim_threshold=None)
    a = AdversarialAugment(net, chunk_size=1, **kw)(x, y, generator=torch.Generator().manual_seed(0))
    b = AdversarialAugment(net, chunk_size=5, **kw)(x, y, generator=torch.Generator().manual_seed(0))
    assert (a - b).abs().max() < 1e-10


def test_line_search_per_nano_batch_equals_one_search_over_the_batch(tiny_net):
    # the transform searches each nano-batch separately (memory bounded by chunk_size); the result
    # must equal one search over the whole batch of raw AdA images
    from adaaug.line_search import ssim_line_search

    x, y = _batch(6)
    x, net = x.double(), copy.deepcopy(tiny_net).double()
    kw = dict(backbone=build_backbone("unet"), nu=0.5, steps=2, chunk_size=4)
    raw = AdversarialAugment(net, ssim_threshold=None, **kw)(x, y, generator=torch.Generator().manual_seed(0))
    out, info = AdversarialAugment(net, ssim_threshold=0.1, **kw)(x, y, generator=torch.Generator().manual_seed(0),
                                                                  return_info=True)
    ref, gamma, s = ssim_line_search(x, raw, 0.1)
    assert torch.any(gamma < 1)
    assert (out - ref).abs().max() < 1e-10
    assert torch.allclose(info.gamma, gamma) and torch.allclose(info.ssim, s)


def test_line_search_is_applied(tiny_net):
    x, y = _batch(6)
    ada = AdversarialAugment(tiny_net, backbone="unet", weights=None, nu=0.5, steps=2, ssim_threshold=0.1)
    out, info = ada(x, y, return_info=True)
    assert torch.all(1 - info.ssim <= 0.1 + 0.03)
    assert torch.any(info.gamma < 1)


def test_several_backbones_share_each_batch_equally(tiny_net):
    x, y = _batch(8)
    ada = AdversarialAugment(tiny_net, backbone=["unet", "vqvae"], weights=None, steps=1)
    out, info = ada(x, y, return_info=True)
    assert sorted(info.backbone) == ["unet"] * 4 + ["vqvae"] * 4
    assert out.shape == x.shape
    for name, rel in info.relative_norms.items():
        served = torch.tensor([b == name for b in info.backbone])
        assert torch.isnan(rel[~served]).all() and not torch.isnan(rel[served]).any()


def test_all_means_the_papers_four(tiny_net):
    ada = AdversarialAugment(tiny_net, backbone="all", weights=None, steps=0)
    assert [c.name for c in ada.corruptors] == ["unet", "vqvae", "edsr", "cae"]


def test_uint8_in_uint8_out_and_dtypes_kept(tiny_net):
    x, y = _batch(2)
    ada = AdversarialAugment(tiny_net, backbone="unet", weights=None, steps=1)
    u8 = (x * 255).round().to(torch.uint8)
    assert ada(u8, y).dtype == torch.uint8
    assert ada(x.double(), y).dtype == torch.float64


def test_empty_batch_returns_empty(tiny_net):
    ada = AdversarialAugment(tiny_net, backbone="unet", weights=None, steps=1)
    out, info = ada(torch.rand(0, 3, 32, 32), torch.zeros(0, dtype=torch.long), return_info=True)
    assert out.shape == (0, 3, 32, 32) and info.loss.shape == (0,)


def test_custom_loss_functions(tiny_net):
    x, y = _batch(4)
    kw = dict(backbone=build_backbone("unet"), steps=2, ssim_threshold=None)
    g = lambda: torch.Generator().manual_seed(0)
    ce_sum = AdversarialAugment(tiny_net, loss_fn=lambda lo, la: nn.functional.cross_entropy(lo, la), **kw)
    ce_none = AdversarialAugment(tiny_net, **kw)
    # a mean over the batch has the same sign steps as per-example losses
    assert (ce_sum(x, y, generator=g()) - ce_none(x, y, generator=g())).abs().max() < 1e-5
    margin = AdversarialAugment(tiny_net, loss_fn=lambda lo, la: -lo.gather(1, la[:, None]).squeeze(1), **kw)
    _, info = margin(x, y, return_info=True)
    assert info.loss.shape == (4,)
    bad = AdversarialAugment(tiny_net, loss_fn=lambda lo, la: lo, **kw)
    with pytest.raises(ValueError, match="loss_fn must return"):
        bad(x, y)


def test_presets():
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    bb = build_backbone("edsr")
    c = AdversarialAugment.cifar10(net, backbone=bb)
    i = AdversarialAugment.imagenet(net, backbone=bb)
    assert (c.steps, c.ssim_threshold, c.chunk_size) == (10, 0.3, 8)
    assert (i.steps, i.ssim_threshold, i.chunk_size) == (3, 0.7, 1)
    assert abs(i.corruptors[0].step_size / c.corruptors[0].step_size - 10 / 3) < 1e-9


@pytest.mark.parametrize("images, labels, match, exc", [
    (torch.full((2, 3, 32, 32), float("nan")), torch.zeros(2, dtype=torch.long), "NaN", ValueError),
    (torch.rand(2, 3, 32, 32) * 2, torch.zeros(2, dtype=torch.long), r"\[0, 1\]", ValueError),
    (torch.rand(1, 2, 3, 32, 32), torch.zeros(1, dtype=torch.long), "4 dimensions", ValueError),
    (torch.rand(3, 32, 32), torch.tensor(3), "batch transform", ValueError),
    (torch.rand(2, 3, 32, 32), torch.tensor([0.0, 1.0]), "integer", TypeError),
    (torch.rand(2, 3, 32, 32), torch.tensor([True, False]), "integer", TypeError),
    (torch.rand(2, 3, 32, 32), torch.tensor([0, 10], dtype=torch.int32), "out of range", ValueError),
    (torch.rand(2, 1, 32, 32), torch.zeros(2, dtype=torch.long), "channels", ValueError),
    (torch.rand(2, 3, 30, 30), torch.zeros(2, dtype=torch.long), "divisible by 4", ValueError),
    (torch.rand(2, 3, 32, 32), torch.zeros(3, dtype=torch.long), "shape", ValueError),
    (torch.rand(2, 3, 32, 32), torch.zeros(2), "integer", TypeError),
    (torch.rand(2, 3, 32, 32), torch.tensor([0, 10]), "out of range", ValueError),
    (torch.rand(2, 3, 32, 32), torch.tensor([0, -1]), "≥ 0", ValueError),
    (torch.randint(0, 5, (2, 3, 32, 32)), torch.zeros(2, dtype=torch.long), "float", TypeError),
    ([[0.0]], torch.zeros(1, dtype=torch.long), "torch.Tensor", TypeError),
])
def test_bad_inputs_raise_clear_errors(tiny_net, images, labels, match, exc):
    ada = AdversarialAugment(tiny_net, backbone="unet", weights=None, steps=1)
    with pytest.raises(exc, match=match):
        ada(images, labels)


@pytest.mark.parametrize("kwargs, match, exc", [
    (dict(nu=0), "nu must be > 0", ValueError),
    (dict(nu=-0.1), "nu must be > 0", ValueError),
    (dict(steps=-1), "steps must be ≥ 0", ValueError),
    (dict(steps=1.5), "steps must be an int", TypeError),
    (dict(chunk_size=0), "chunk_size", ValueError),
    (dict(backbone="edsr3"), "known backbones: .*cae.*edsr", ValueError),
    (dict(backbone=[]), "non-empty list", TypeError),
    (dict(ssim_threshold=1.5), "ssim_threshold", ValueError),
    (dict(generator=3), "generator", TypeError),
])
def test_bad_arguments_raise_clear_errors(tiny_net, kwargs, match, exc):
    with pytest.raises(exc, match=match):
        AdversarialAugment(tiny_net, **{"weights": None, "backbone": "unet", **kwargs})


def test_model_must_be_a_module():
    with pytest.raises(TypeError, match="nn.Module"):
        AdversarialAugment(lambda x: x, weights=None)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(tiny_net):
    x, y = _batch(4)
    kw = dict(backbone="unet", weights=None, steps=2, ssim_threshold=0.3)
    cpu = AdversarialAugment(tiny_net, **kw)(x, y, generator=torch.Generator().manual_seed(0))
    net = copy.deepcopy(tiny_net).cuda()
    gpu = AdversarialAugment(net, **kw)(x.cuda(), y.cuda(), generator=torch.Generator().manual_seed(0))
    assert gpu.device.type == "cuda"
    assert (gpu.cpu() - cpu).abs().max() < 1e-3


def test_all_gives_every_backbone_the_same_expected_share_at_every_batch_size(tiny_net):
    ada = AdversarialAugment(tiny_net, backbone="all", weights=None, steps=0)
    b, seeds = len(ada.corruptors), 2000
    for n in range(1, 6):
        counts = torch.zeros(b)
        for s in range(seeds):
            shares = ada._assign(n, torch.Generator().manual_seed(s))
            sizes = torch.tensor([len(x) for x in shares])
            assert sorted(torch.cat(shares).tolist()) == list(range(n))  # each example served once
            assert sizes.max() - sizes.min() <= 1  # equal shares, up to the remainder
            counts += sizes
        # per draw a backbone serves n // b examples plus one more with probability (n mod b) / b
        p = (n % b) / b
        sd = (seeds * p * (1 - p)) ** 0.5
        assert torch.all((counts - seeds * n / b).abs() <= 5 * sd + 1e-9), (n, counts)


def test_all_serves_each_example_with_the_backbone_the_assignment_names(tiny_net):
    ada = AdversarialAugment(tiny_net, backbone="all", weights=None, steps=0, ssim_threshold=None)
    x, y = _batch(3)
    _, info = ada(x, y, generator=torch.Generator().manual_seed(9), return_info=True)
    shares = ada._assign(3, torch.Generator().manual_seed(9))
    expected = [""] * 3
    for c, idx in zip(ada.corruptors, shares):
        for i in idx.tolist():
            expected[i] = c.name
    assert info.backbone == expected


def test_imagenet_preset_asks_for_the_published_weights():
    from adaaug.weights import load_backbone, packaged_dir

    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    # the paper's EDSR is DeepAugment's (the tests never download: the message says how to get the file)
    with pytest.raises(FileNotFoundError, match=r"weights 'edsr'/'deepaugment'.*edsr_baseline_x4.pt yourself"):
        AdversarialAugment.imagenet(net)
    # the CIFAR-10 weights only when asked for, by tag or by path
    by_tag = AdversarialAugment.imagenet(net, weights="cifar10")
    by_path = AdversarialAugment.imagenet(net, weights=str(packaged_dir() / "edsr-cifar10.safetensors"))
    cifar = load_backbone("edsr", "cifar10")
    for ada in (by_tag, by_path):
        assert (ada.steps, ada.chunk_size) == (3, 1)
        assert all(torch.equal(p, q) for p, q in zip(ada.corruptors[0].module.parameters(), cifar.parameters()))
    c = AdversarialAugment.cifar10(net)
    assert all(torch.equal(p, q) for p, q in zip(c.corruptors[0].module.parameters(), cifar.parameters()))


def test_each_examples_start_is_bitwise_the_same_for_every_chunk_size(tiny_net, monkeypatch):
    # δ⁰ of example k depends on its own seed only: spy on the draws of two chunkings and compare
    drawn: list[dict] = []
    original = transform_module.random_init
    monkeypatch.setattr(transform_module, "random_init", lambda *a: drawn.append(original(*a)) or drawn[-1])
    x, y = _batch(5)
    bb = build_backbone("unet")
    starts = {}
    for size in (1, 2, 5):
        drawn.clear()
        AdversarialAugment(tiny_net, backbone=bb, steps=0, chunk_size=size)(x, y, generator=torch.Generator()
                                                                           .manual_seed(0))
        starts[size] = {k: torch.cat([d[k] for d in drawn]) for k in drawn[0]}
        assert len(drawn) == -(-5 // size)
    for k in starts[1]:
        assert torch.equal(starts[1][k], starts[2][k]) and torch.equal(starts[1][k], starts[5][k])
