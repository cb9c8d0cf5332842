"""Mixed precision (autocast, half-precision classifiers) and inference mode."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from adaaug import AdversarialAugment
from adaaug.backbones import build_backbone

torch.manual_seed(2)
UNET = build_backbone("unet")


def _batch(n=8, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)
    return x.to(device), y.to(device)


def _ada(net, **kw):
    return AdversarialAugment(net, **{"backbone": copy.deepcopy(UNET).to(next(net.parameters()).device),
                                      "steps": 2, **kw})


def _gen():
    return torch.Generator().manual_seed(0)


def _record_dtypes(module: nn.Module) -> list[torch.dtype]:
    seen: list[torch.dtype] = []
    module.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    return seen


def _check_autocast(tiny_net, device, dtype):
    x, y = _batch(device=device)
    net = copy.deepcopy(tiny_net).to(device)
    ref = _ada(net)(x, y, generator=_gen())
    seen = _record_dtypes(net.conv)
    with torch.autocast(device, dtype=dtype):
        out, info = _ada(net)(x, y, generator=_gen(), return_info=True)
    assert seen and all(d == dtype for d in seen)  # the classifier did run under the caller's autocast
    assert out.dtype == torch.float32 and info.ssim.dtype == torch.float32 and info.loss.dtype == torch.float32
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    # the same algorithm up to half-precision rounding of the two networks' activations
    assert (out - ref).abs().mean() < 0.01
    assert torch.all(1 - info.ssim <= 0.3 + 0.03)  # the line search still holds the threshold
    assert all(p.dtype == torch.float32 for p in net.parameters())


def test_autocast_bfloat16_on_cpu(tiny_net):
    _check_autocast(tiny_net, "cpu", torch.bfloat16)


def _check_half_classifier(tiny_net, dtype, device="cpu"):
    x, y = _batch(16, device=device)
    net = copy.deepcopy(tiny_net).to(device=device, dtype=dtype)
    before = copy.deepcopy(net.state_dict())
    big = dict(nu=0.05, ssim_threshold=None)
    out, info = _ada(net, **big)(x, y, generator=_gen(), return_info=True)
    _, info0 = _ada(net, **big, steps=0)(x, y, generator=_gen(), return_info=True)
    assert out.dtype == torch.float32 and ada_out_of(net, x.to(dtype), y).dtype == dtype
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    # info.loss is the half classifier's (eval mode) float32 cross-entropy on the returned images
    with torch.no_grad():
        expected = nn.functional.cross_entropy(net.eval()(out.to(dtype)).float(), y, reduction="none")
    assert torch.allclose(info.loss, expected)
    # the ascent works in half precision too: the loss rises over the random start
    assert info.loss.mean() > info0.loss.mean()


def ada_out_of(net, x, y):
    return _ada(net, steps=1)(x, y)


def test_bfloat16_classifier(tiny_net):
    _check_half_classifier(tiny_net, torch.bfloat16)


def test_float16_classifier(tiny_net):
    try:
        copy.deepcopy(tiny_net).half()(torch.rand(1, 3, 32, 32).half())
    except RuntimeError as err:
        pytest.skip(f"this CPU build has no float16 convolutions: {err}")
    _check_half_classifier(tiny_net, torch.float16)


def test_inference_mode_raises_a_clear_error(tiny_net):
    x, y = _batch(2)
    ada = _ada(tiny_net)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode.*outside"):
        ada(x, y)
    with torch.inference_mode():
        xi, yi = x.clone(), y.clone()  # inference tensors, used afterwards: fine
    with torch.no_grad():
        out = ada(xi, yi, generator=_gen())
    assert torch.equal(out, ada(x, y, generator=_gen()))


def test_any_integer_label_dtype(tiny_net):
    x, y = _batch(4)
    ref = _ada(tiny_net)(x, y, generator=_gen())
    for dtype in (torch.int32, torch.int16, torch.uint8, torch.int8):
        assert torch.equal(_ada(tiny_net)(x, y.to(dtype), generator=_gen()), ref)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_autocast_on_cuda(tiny_net, dtype):
    _check_autocast(tiny_net, "cuda", dtype)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_classifier_on_cuda(tiny_net, dtype):
    _check_half_classifier(tiny_net, dtype, "cuda")
