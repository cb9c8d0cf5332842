"""Tied weights: every path that swaps or perturbs a module's weights leaves it exactly as found,
and computes with ONE value per shared tensor, seen under every name.

Three kinds of tying, all in one network: a submodule reachable under two names
(``self.again = self.block``, recurrent / weight-tied nets), one Parameter owned by two different
modules (``dec.weight = enc.weight``), and a BatchNorm used twice (tied buffers). References are
computed by hand on deep copies (``deepcopy`` keeps the ties), one example at a time.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from adaaug._reparam import TensorSlots, swapped
from adaaug.per_example import PerExampleBackbone, per_example_call, supports, vmap_call


# ---- modules -----------------------------------------------------------------------------------
class TiedBackbone(nn.Module):
    """Image-to-image; ``direct``: marks itself for the grouped-convolution path."""

    def __init__(self, direct: bool = False) -> None:
        super().__init__()
        self.block = nn.Conv2d(3, 3, 3, padding=1)
        self.again = self.block  # one submodule, two names
        self.enc = nn.Conv2d(3, 4, 3, padding=1)
        self.dec = nn.ConvTranspose2d(4, 3, 3, padding=1)
        self.dec.weight = self.enc.weight  # one Parameter, two modules (both 4×3×3×3)
        self.norm = nn.BatchNorm2d(3, affine=False)
        self.norm_again = self.norm  # tied buffers
        self.per_example_layers = direct
        with torch.no_grad():
            self.norm.running_mean.uniform_(-0.1, 0.1)
            self.norm.running_var.uniform_(0.8, 1.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(torch.tanh(self.block(x)))
        h = self.norm_again(torch.tanh(self.again(h)))
        return torch.sigmoid(self.dec(torch.relu(self.enc(h))) + x)


class TiedClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Conv2d(3, 3, 3, padding=1)
        self.again = self.block
        self.bn = nn.BatchNorm2d(3)
        self.bn_again = self.bn
        self.enc = nn.Linear(12, 12)
        self.dec = nn.Linear(12, 12)
        self.dec.weight = self.enc.weight
        self.head = nn.Linear(12, 10)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.1, 0.1)
            self.bn.running_var.uniform_(0.5, 1.5)
            self.head.weight.mul_(10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(torch.relu(self.block(x)))
        h = nn.functional.adaptive_avg_pool2d(self.bn_again(torch.relu(self.again(h))), 2).flatten(1)
        return self.head(torch.tanh(self.dec(torch.tanh(self.enc(h)))))


# ---- "left exactly as found" -------------------------------------------------------------------
def snapshot(module: nn.Module) -> dict:
    for p in module.parameters():
        if p.grad is None:
            p.grad = torch.randn_like(p)  # a .grad that must survive untouched
    return {
        "params": [(k, p, p.detach().clone(), p.grad.clone(), p.requires_grad)
                   for k, p in module.named_parameters(remove_duplicate=False)],
        "buffers": [(k, b, b.clone()) for k, b in module.named_buffers(remove_duplicate=False)],
        "modes": [(k, m, m.training) for k, m in module.named_modules(remove_duplicate=False)],
    }


def assert_as_found(module: nn.Module, snap: dict) -> None:
    params = list(module.named_parameters(remove_duplicate=False))
    assert [k for k, _ in params] == [k for k, *_ in snap["params"]]
    for (k, p), (_, p0, v0, g0, rg) in zip(params, snap["params"]):
        assert p is p0 and type(p) is nn.Parameter, k
        assert torch.equal(p.detach(), v0) and torch.equal(p.grad, g0) and p.requires_grad == rg, k
    buffers = list(module.named_buffers(remove_duplicate=False))
    assert [k for k, _ in buffers] == [k for k, *_ in snap["buffers"]]
    for (k, b), (_, b0, v0) in zip(buffers, snap["buffers"]):
        assert b is b0 and torch.equal(b, v0), k
    for (k, m), (_, m0, mode) in zip(module.named_modules(remove_duplicate=False), snap["modes"]):
        assert m is m0 and m.training == mode, k


def _set_by_hand(module: nn.Module, values: dict[str, torch.Tensor]) -> nn.Module:
    """A deep copy with ``values`` written into its (canonical) parameters; ties carry them to the aliases."""
    m = copy.deepcopy(module)
    own = dict(m.named_parameters())
    with torch.no_grad():
        for k, v in values.items():
            own[k].copy_(v)
    return m


# ---- the helper itself ---------------------------------------------------------------------------
def test_slots_name_each_shared_tensor_once_and_know_its_aliases():
    slots = TensorSlots(TiedBackbone())
    assert list(slots.params) == ["block.weight", "block.bias", "enc.weight", "enc.bias", "dec.bias"]
    assert slots.aliases["block.weight"] == ("block.weight", "again.weight")
    assert slots.aliases["enc.weight"] == ("enc.weight", "dec.weight")
    assert slots.aliases["norm.running_mean"] == ("norm.running_mean", "norm_again.running_mean")
    assert slots.tied and not TensorSlots(nn.Conv2d(3, 3, 1)).tied


def test_swapped_shows_one_value_under_every_name_and_restores_even_on_error():
    module = TiedBackbone()
    snap = snapshot(module)
    slots = TensorSlots(module)
    w, mean = torch.zeros(4, 3, 3, 3), torch.ones(3)
    with swapped(slots, {"enc.weight": w, "norm.running_mean": mean}):
        assert module.enc.weight is w and module.dec.weight is w
        assert module.norm_again.running_mean is mean
        assert module.block.weight is snap["params"][0][1]  # not given: untouched
    assert_as_found(module, snap)
    with pytest.raises(ZeroDivisionError), swapped(slots, {"block.weight": torch.zeros(3, 3, 3, 3)}):
        1 / 0
    assert_as_found(module, snap)
    with pytest.raises(KeyError, match="again.weight"), swapped(slots, {"again.weight": w}):
        pass
    module.block.weight = nn.Parameter(torch.zeros(3, 3, 3, 3))  # replaced after the slots were taken
    with pytest.raises(RuntimeError, match="replaced"), swapped(slots, {"block.bias": torch.zeros(3)}):
        pass


# ---- per-example backbone passes (direct and vmap) ---------------------------------------------
def _state(module: nn.Module, n: int):
    g = torch.Generator().manual_seed(0)
    params = {k: p.detach().double() for k, p in module.named_parameters()}
    buffers = {k: b.detach().double() for k, b in module.named_buffers()}
    delta = {k: 0.1 * p.abs().mean() * torch.randn(n, *p.shape, generator=g, dtype=torch.float64)
             for k, p in params.items()}
    return params, buffers, delta


@pytest.mark.parametrize("direct", [True, False])
def test_per_example_passes_on_a_tied_backbone_match_deep_copies_and_leave_it_as_found(direct):
    torch.manual_seed(0)
    module = TiedBackbone(direct).double().eval()
    assert supports(module) == direct
    params, buffers, delta = _state(module, 3)
    x = torch.rand(3, 3, 6, 6, dtype=torch.float64)
    snap = snapshot(module)
    runner = PerExampleBackbone(module)
    assert runner.direct == direct
    leaves = {k: v.clone().requires_grad_(True) for k, v in delta.items()}
    out = runner(x, leaves, params, buffers)
    c = torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view_as(out)
    grads = dict(zip(leaves, torch.autograd.grad((out * c).sum(), list(leaves.values()))))
    assert_as_found(module, snap)
    for n in range(3):
        ref = _set_by_hand(module, {k: params[k] + delta[k][n] for k in params})
        ref_out = ref(x[n:n + 1])[0]
        assert (out[n] - ref_out).abs().max().item() < 1e-10
        ref_params = dict(ref.named_parameters())  # a shared Parameter's .grad sums all its uses
        ref_grads = torch.autograd.grad((ref_out * c[n]).sum(), [ref_params[k] for k in params])
        for k, g in zip(params, ref_grads):
            assert (grads[k][n] - g).abs().max().item() < 1e-10, k
    # the free functions too, and an empty batch
    weights = {k: params[k] + delta[k] for k in params}
    call = per_example_call if direct else vmap_call
    assert (call(module, weights, buffers, x) - out.detach()).abs().max().item() < 1e-10
    assert call(module, {k: v[:0] for k, v in weights.items()}, buffers, x[:0]).shape == (0, 3, 6, 6)
    assert_as_found(module, snap)


def test_untied_twin_differs_so_the_tied_reference_is_not_trivially_met():
    # the same weights, but dec owns a separate copy of enc's weight: one δ no longer reaches both uses
    torch.manual_seed(0)
    module = TiedBackbone().double().eval()
    params, buffers, delta = _state(module, 2)
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    out = PerExampleBackbone(module)(x, delta, params, buffers)
    twin = _set_by_hand(module, {k: params[k] + delta[k][0] for k in params})
    twin.dec.weight = nn.Parameter(module.enc.weight.detach().double().clone())
    assert (out[0] - twin(x[:1])[0]).abs().max().item() > 1e-4


# ---- NoisyPredictor ------------------------------------------------------------------------------
def test_param_noise_on_a_tied_model_equals_a_hand_made_noisy_copy_and_leaves_it_as_found():
    from adaaug.evaluate.sets import ArraySource
    from adaaug.evaluate.param_noise import NoisyPredictor

    torch.manual_seed(0)
    model = TiedClassifier()
    model.train()
    model.head.eval()
    images = torch.randint(0, 256, (48, 3, 8, 8), dtype=torch.uint8)
    source = ArraySource(images, np.zeros(48, dtype=np.int64))
    snap = snapshot(model)
    eta, samples, seed = 0.5, 3, 4
    pred = NoisyPredictor(model, eta, samples=samples, seed=seed, batch_size=16)(source)
    assert_as_found(model, snap)
    x = images.float() / 255

    def reference(tied: bool) -> np.ndarray:
        total = 0
        for i in range(samples):  # the documented draw: one generator per draw, blocks in named_parameters order
            gen = torch.Generator().manual_seed(seed * 1_000_003 + i)
            ref = copy.deepcopy(model).eval()
            if not tied:  # what a per-name perturbation would do: dec gets its own noise
                ref.dec.weight = nn.Parameter(ref.dec.weight.detach().clone())
            with torch.no_grad():
                for _, w in ref.named_parameters():
                    w.add_(eta * w.abs().max() * torch.randn(w.shape, generator=gen))
                total = total + torch.softmax(ref(x), 1)
        return total.argmax(1).numpy()

    np.testing.assert_array_equal(pred, reference(tied=True))
    assert (pred != model.eval()(x).argmax(1).numpy()).any()  # the noise does change predictions
    assert (pred != reference(tied=False)).any()


# ---- AdversarialAugment ---------------------------------------------------------------------------
@pytest.mark.parametrize("direct", [True, False])
def test_ada_with_a_tied_backbone_and_a_tied_classifier_leaves_both_as_found(direct):
    import adaaug
    from adaaug.perturb import block_radii, example_seeds, random_init

    torch.manual_seed(0)
    backbone, model = TiedBackbone(direct), TiedClassifier()
    backbone.train()
    model.train()
    snaps = snapshot(backbone), snapshot(model)
    nu = 0.05
    ada = adaaug.AdversarialAugment(model, backbone=backbone, nu=nu, steps=0, ssim_threshold=None, chunk_size=8)
    x, y = torch.rand(5, 3, 8, 8), torch.randint(0, 10, (5,))
    out, info = ada(x, y, generator=torch.Generator().manual_seed(3), return_info=True)
    assert_as_found(backbone, snaps[0])
    assert_as_found(model, snaps[1])
    # one block per shared tensor, and the result is c at φ + δ⁰ computed by hand (steps = 0)
    assert info.block_names["TiedBackbone"] == list(dict(backbone.named_parameters()))
    params = {k: p.detach() for k, p in backbone.named_parameters()}
    delta = random_init(params, block_radii(params, nu), example_seeds(5, torch.Generator().manual_seed(3)))
    for n in range(5):
        ref = _set_by_hand(backbone, {k: params[k] + delta[k][n] for k in params}).eval()
        assert (out[n] - ref(x[n:n + 1])[0].clamp(0, 1)).abs().max().item() < 1e-5
    # with steps the classifier is differentiated through: still as found
    ada = adaaug.AdversarialAugment(model, backbone=backbone, nu=nu, steps=2, ssim_threshold=None)
    ada(x, y)
    assert_as_found(backbone, snaps[0])
    assert_as_found(model, snaps[1])


# ---- DeepAugment ------------------------------------------------------------------------------
def _tied_edsr():
    from adaaug.backbones import build_backbone

    torch.manual_seed(0)
    edsr = build_backbone("edsr")
    edsr.body[1] = edsr.body[0]  # a residual block used twice
    return edsr


def test_deepaugment_segments_on_a_tied_backbone_match_deep_copies():
    from adaaug import DeepAugment

    edsr = _tied_edsr()
    da = DeepAugment(edsr, weights=None)
    pe = {"body.0.conv1.weight": 0.1 * torch.randn(2, *edsr.body[0].conv1.weight.shape),
          "body.0.conv1.bias": torch.randn(2, *edsr.body[0].conv1.bias.shape)}
    x = torch.rand(2, 64, 6, 6)

    def first(mod, r):
        for block in mod.body[:3]:
            r = block(r)
        return r

    snap = snapshot(edsr)
    with torch.no_grad():
        out = da._segment(first, pe, x)
        assert_as_found(edsr, snap)
        for n in range(2):
            ref = _set_by_hand(edsr, {k: v[n] for k, v in pe.items()})
            assert (out[n] - first(ref, x[n:n + 1])[0]).abs().max().item() < 1e-5


def test_deepaugment_on_a_tied_user_backbone_leaves_it_as_found():
    from adaaug import DeepAugment

    edsr = _tied_edsr()
    edsr.train()
    snap = snapshot(edsr)
    da = DeepAugment(edsr, weights=None, ops=("zero", "negate"), num_ops=3,
                     generator=torch.Generator().manual_seed(0))
    x = torch.rand(6, 3, 8, 8)
    # "body.1.conv1" names the shared tensor under its other name: its distortions reach "body.0.conv1.weight"
    pe = da._weight_distortions([[("negate", torch.tensor([2]), torch.tensor([0]))]], torch.arange(1), 0, 1, None)
    assert list(pe) == ["body.0.conv1.weight", "body.0.conv1.bias"]
    assert torch.equal(pe["body.0.conv1.weight"][0], -edsr.body[0].conv1.weight.detach())
    out = da(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert not torch.equal(out, da(x))  # fresh draws each call
    assert_as_found(edsr, snap)


def test_param_noise_names_a_classifier_that_returns_no_logits_and_leaves_it_as_found():
    from adaaug.evaluate.sets import ArraySource
    from adaaug.evaluate.param_noise import NoisyPredictor

    class Pair(TiedClassifier):
        def forward(self, x):
            return super().forward(x), x

    model = Pair()
    snap = snapshot(model)
    source = ArraySource(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), np.zeros(4, dtype=np.int64))
    with pytest.raises(TypeError, match="classifier Pair returned"):
        NoisyPredictor(model, 0.1, samples=2)(source)
    assert_as_found(model, snap)
    with pytest.raises(ValueError, match="no parameters"):
        NoisyPredictor(nn.Flatten(), 0.1)


# ---- weights computed from other tensors (weight_norm, spectral_norm) ----------------------------
def _normed(kind: str) -> nn.Module:
    import warnings

    from torch.nn.utils import parametrizations

    conv = nn.Conv2d(3, 3, 3, padding=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the hook-based versions are deprecated, not gone
        wrap = {"weight_norm": nn.utils.weight_norm, "spectral_norm": nn.utils.spectral_norm,
                "parametrized": parametrizations.weight_norm}[kind]
        conv = wrap(conv)

    class Normed(nn.Module):
        per_example_layers = True  # claimed, but the hooks make the direct path refuse it

        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, x):
            return torch.sigmoid(self.conv(x))

    return Normed()


@pytest.mark.filterwarnings("ignore:There is a performance drop")  # vmap has no batching rule for _weight_norm
@pytest.mark.parametrize("kind", ["weight_norm", "spectral_norm", "parametrized"])
def test_a_backbone_with_a_derived_weight_is_left_as_found_and_computed_per_example(kind):
    torch.manual_seed(0)
    module = _normed(kind).double().eval()
    assert not supports(module)  # the grouped-convolution path cannot see through the hooks
    derived = vars(module.conv).get("weight")  # the hook-based versions keep the weight as a plain attribute
    snap = snapshot(module)
    params, buffers, delta = _state(module, 2)
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    out = PerExampleBackbone(module)(x, delta, params, buffers)
    assert_as_found(module, snap)
    assert vars(module.conv).get("weight") is derived  # no perturbed (or vmapped) weight left behind
    for n in range(2):  # by hand: the weight from its parts (a hook-normed module cannot be deep-copied)
        w = {k.rsplit(".", 1)[-1]: params[k] + delta[k][n] for k in params}
        if kind == "weight_norm":
            weight = w["weight_v"] * (w["weight_g"] / w["weight_v"].flatten(1).norm(dim=1).view(-1, 1, 1, 1))
        elif kind == "spectral_norm":
            u, v = buffers["conv.weight_u"], buffers["conv.weight_v"]
            weight = w["weight_orig"] / (u @ w["weight_orig"].flatten(1) @ v)
        else:
            g, v = w["original0"], w["original1"]
            weight = v * (g / v.flatten(1).norm(dim=1).view(-1, 1, 1, 1))
        ref = torch.sigmoid(nn.functional.conv2d(x[n:n + 1], weight, w["bias"], padding=1))[0]
        assert (out[n] - ref).abs().max().item() < 1e-10


def test_a_forward_that_writes_into_buffers_or_caches_tensors_does_not_reach_the_users_module():
    import adaaug
    from adaaug.evaluate.sets import ArraySource
    from adaaug.evaluate.param_noise import NoisyPredictor

    class Counting(TiedBackbone):
        def __init__(self):
            super().__init__()
            self.register_buffer("calls", torch.zeros(()))

        def forward(self, x):
            self.calls += 1  # in place, even in eval mode
            self.last = super().forward(x)  # a cached activation
            return self.last

    class CountingClassifier(TiedClassifier):
        def __init__(self):
            super().__init__()
            self.register_buffer("calls", torch.zeros(()))

        def forward(self, x):
            self.calls += 1
            return super().forward(x)

    backbone, model = Counting(), CountingClassifier()
    snaps = snapshot(backbone), snapshot(model)
    adaaug.AdversarialAugment(TiedClassifier(), backbone=backbone, steps=1, ssim_threshold=None)(
        torch.rand(2, 3, 8, 8), torch.tensor([0, 1]))
    source = ArraySource(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), np.zeros(4, dtype=np.int64))
    NoisyPredictor(model, 0.1, samples=2)(source)
    assert_as_found(backbone, snaps[0])
    assert_as_found(model, snaps[1])
    assert "last" not in vars(backbone)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("direct", [True, False])
def test_cuda_tied_backbone_matches_the_cpu_deep_copies_and_a_user_deepaugment_backbone_is_not_moved(direct):
    from adaaug import DeepAugment

    torch.manual_seed(0)
    module = TiedBackbone(direct).double().eval()
    params, buffers, delta = _state(module, 2)
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64)
    cuda = lambda d: {k: v.cuda() for k, v in d.items()}  # noqa: E731
    gpu = module.cuda()
    snap = snapshot(gpu)
    out = PerExampleBackbone(gpu)(x.cuda(), cuda(delta), cuda(params), cuda(buffers)).cpu()
    assert_as_found(gpu, snap)
    cpu = copy.deepcopy(gpu).cpu()
    for n in range(2):
        ref = _set_by_hand(cpu, {k: params[k] + delta[k][n] for k in params})
        assert (out[n] - ref(x[n:n + 1])[0]).abs().max().item() < 1e-10
    edsr = _tied_edsr()
    with pytest.raises(ValueError, match="move it with"):
        DeepAugment(edsr, weights=None)(torch.rand(2, 3, 8, 8, device="cuda"))
    assert next(edsr.parameters()).device.type == "cpu"


@pytest.mark.parametrize("change", ["load_state_dict", "new_parameter", "new_layer"])
def test_ada_takes_up_backbone_weights_changed_after_it_was_built(change):
    import adaaug

    torch.manual_seed(0)
    backbone, model = TiedBackbone(), TiedClassifier()
    ada = adaaug.AdversarialAugment(model, backbone=backbone, steps=1, ssim_threshold=None)
    x, y = torch.rand(3, 3, 8, 8), torch.tensor([0, 1, 2])
    before = ada(x, y, generator=torch.Generator().manual_seed(0))
    if change == "load_state_dict":
        backbone.load_state_dict(TiedBackbone().state_dict())  # new values in place, same Parameters
    elif change == "new_parameter":
        backbone.block.weight = nn.Parameter(torch.randn(3, 3, 3, 3) * 0.2)  # both names follow: one module
    else:
        backbone.block = nn.Conv2d(3, 3, 3, padding=1)  # `again` still holds the old one: no longer tied
    after = ada(x, y, generator=torch.Generator().manual_seed(0))
    fresh = adaaug.AdversarialAugment(model, backbone=backbone, steps=1, ssim_threshold=None)
    expected = fresh(x, y, generator=torch.Generator().manual_seed(0))
    assert torch.equal(after, expected) and not torch.equal(after, before)
    assert ada.corruptors[0].block_names == fresh.corruptors[0].block_names
    assert ada.corruptors[0].step_size == fresh.corruptors[0].step_size


def test_torchscript_modules_are_refused_with_the_fix(tiny_net):
    from torch import nn

    from adaaug import AdversarialAugment
    from adaaug.evaluate.param_noise import NoisyPredictor
    from adaaug.evaluate.sets import ArraySource

    scripted = torch.jit.script(tiny_net)
    source = ArraySource(np.zeros((2, 32, 32, 3), np.uint8), np.array([0, 1]))
    with pytest.raises(TypeError, match=r"this module is a TorchScript module.*pass the original nn.Module"):
        NoisyPredictor(scripted, 0.1, samples=1)(source)
    backbone = nn.Sequential(torch.jit.script(nn.Conv2d(3, 3, 3, padding=1)), nn.Sigmoid())
    with pytest.raises(TypeError, match=r"submodule '0' of Sequential is a TorchScript module"):
        AdversarialAugment(tiny_net, backbone=backbone, steps=1)(torch.rand(2, 3, 32, 32), torch.tensor([0, 1]))
    # a scripted classifier is only run, never swapped: AdA takes it
    out = AdversarialAugment(scripted, backbone="unet", weights=None, steps=1)(torch.rand(2, 3, 32, 32),
                                                                            torch.tensor([0, 1]))
    assert out.shape == (2, 3, 32, 32)
