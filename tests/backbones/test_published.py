"""Published EDSR / CAE checkpoints load into adaaug's backbones and compute the published function.

The references below are written here, functionally, from the published architectures (EDSR-PyTorch's
baseline, Lim et al. 2017; DeepAugment's ``cae_32x32x32_zero_pad_bin``, as described in
``adaaug.backbones.cae``), and run in float64 on the published state dicts. The state dicts are made
from random weights in the published layout (key names, shapes, EDSR's frozen mean shift).
"""
from __future__ import annotations

import pickle

import pytest
import torch
import torch.nn.functional as F

from adaaug.backbones import CAE, EDSR, build_backbone
from adaaug.backbones.published import convert_published, read_checkpoint

MEAN255 = torch.tensor([0.4488, 0.4371, 0.4040], dtype=torch.float64) * 255


def _conv(g: torch.Generator, cout: int, cin: int, k: int, scale: float = 1.0, transposed: bool = False):
    fan = cin * k * k
    shape = (cin, cout, k, k) if transposed else (cout, cin, k, k)
    w = torch.randn(shape, generator=g, dtype=torch.float64) * scale * (2 / fan) ** 0.5
    return w.float(), (torch.randn(cout, generator=g, dtype=torch.float64) * 0.05).float()


def edsr_published_state(scale: int, seed: int = 0, blocks: int = 16, features: int = 64) -> dict[str, torch.Tensor]:
    """Random weights under EDSR-PyTorch's baseline key names, biases in 0–255 units."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}

    def put(key, cout, cin, k=3, s=1.0, bias_scale=255.0):
        w, b = _conv(g, cout, cin, k, s)
        sd[f"{key}.weight"], sd[f"{key}.bias"] = w, b * bias_scale

    eye = torch.eye(3).view(3, 3, 1, 1)
    sd["sub_mean.weight"], sd["sub_mean.bias"] = eye.clone(), (-MEAN255).float()
    put("head.0", features, 3)
    for i in range(blocks):
        put(f"body.{i}.body.0", features, features, s=0.3)
        put(f"body.{i}.body.2", features, features, s=0.3)
    put(f"body.{blocks}", features, features, s=0.3)
    put("tail.0.0", 4 * features, features)
    if scale == 4:
        put("tail.0.2", 4 * features, features)
    put("tail.1", 3, features, s=0.5)
    sd["add_mean.weight"], sd["add_mean.bias"] = eye.clone(), MEAN255.float()
    return sd


def reference_edsr(sd: dict[str, torch.Tensor], x255: torch.Tensor) -> torch.Tensor:
    """EDSR-PyTorch's baseline forward on 0–255 images, from its description, in float64."""
    p = {k: v.double() for k, v in sd.items()}

    def conv(t, key):
        w = p[f"{key}.weight"]
        return F.conv2d(t, w, p[f"{key}.bias"], padding=w.shape[-1] // 2)

    x = conv(x255, "sub_mean")
    x = conv(x, "head.0")
    res, i = x, 0
    while f"body.{i}.body.0.weight" in p:
        res = res + conv(F.relu(conv(res, f"body.{i}.body.0")), f"body.{i}.body.2")
        i += 1
    res = conv(res, f"body.{i}") + x
    j = 0
    while f"tail.0.{j}.weight" in p:
        res = F.pixel_shuffle(conv(res, f"tail.0.{j}"), 2)
        j += 2
    return conv(conv(res, "tail.1"), "add_mean")


CAE_SHAPES = {  # DeepAugment's CAE: (out, in, k) of each conv; transposed convs marked
    "e_conv_1.1": (64, 3, 5, False), "e_conv_2.1": (128, 64, 5, False), "e_conv_3.0": (32, 128, 5, False),
    "d_up_conv_1.0": (64, 32, 3, False), "d_up_conv_1.3": (128, 64, 2, True),
    "d_up_conv_2.0": (32, 128, 3, False), "d_up_conv_2.3": (256, 32, 2, True),
    "d_up_conv_3.0": (16, 256, 3, False), "d_up_conv_3.3": (3, 16, 3, False),
    **{f"{s}_block_{k}.{i}": (128, 128, 3, False) for s in "ed" for k in (1, 2, 3) for i in (1, 4)},
}


def cae_published_state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, (cout, cin, k, transposed) in CAE_SHAPES.items():
        sd[f"{key}.weight"], sd[f"{key}.bias"] = _conv(g, cout, cin, k, 0.7, transposed)
    return sd


def reference_cae_encode(sd, x):
    """DeepAugment's CAE encoder on [0, 1] images, float64: the tanh latent before binarisation."""
    p = {k: v.double() for k, v in sd.items()}
    lrelu = lambda t: F.leaky_relu(t, 0.01)  # noqa: E731
    conv = lambda t, key, **kw: F.conv2d(t, p[f"{key}.weight"], p[f"{key}.bias"], **kw)  # noqa: E731
    h = lrelu(conv(F.pad(x, (1, 2, 1, 2)), "e_conv_1.1", stride=2))
    h = lrelu(conv(F.pad(h, (1, 2, 1, 2)), "e_conv_2.1", stride=2))
    for k in (1, 2, 3):
        h = h + conv(F.pad(lrelu(conv(F.pad(h, (1,) * 4), f"e_block_{k}.1")), (1,) * 4), f"e_block_{k}.4")
    return torch.tanh(conv(h, "e_conv_3.0", padding=2))


def reference_cae_decode(sd, encoded01):
    """DeepAugment's CAE decoder, float64, on its (0|1) code; returns the tanh output (unclamped)."""
    p = {k: v.double() for k, v in sd.items()}
    lrelu = lambda t: F.leaky_relu(t, 0.01)  # noqa: E731
    conv = lambda t, key: F.conv2d(t, p[f"{key}.weight"], p[f"{key}.bias"])  # noqa: E731
    up = lambda t, key: F.conv_transpose2d(t, p[f"{key}.weight"], p[f"{key}.bias"], stride=2)  # noqa: E731
    y = encoded01 * 2 - 1
    h = up(F.pad(lrelu(conv(y, "d_up_conv_1.0")), (1,) * 4), "d_up_conv_1.3")
    for k in (1, 2, 3):
        h = h + conv(F.pad(lrelu(conv(F.pad(h, (1,) * 4), f"d_block_{k}.1")), (1,) * 4), f"d_block_{k}.4")
    h = up(F.pad(lrelu(conv(h, "d_up_conv_2.0")), (1,) * 4), "d_up_conv_2.3")
    h = F.pad(lrelu(conv(h, "d_up_conv_3.0")), (2,) * 4, mode="reflect")
    return torch.tanh(conv(h, "d_up_conv_3.3"))


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def load_converted(name: str, sd: dict[str, torch.Tensor]):
    state, config, _ = convert_published(name, sd)
    module = build_backbone(name, **config)
    module.load_state_dict(state, strict=True)
    return module.eval()


@pytest.mark.parametrize("scale, keys", [(2, 76), (4, 78)])
def test_edsr_published_checkpoint_computes_the_reference_function(scale, keys):
    sd = edsr_published_state(scale, seed=scale)
    assert len(sd) == keys
    model = load_converted("edsr", sd)
    assert model.scale == scale and isinstance(model, EDSR)
    x = torch.rand(2, 3, 13, 10, generator=torch.Generator().manual_seed(1))  # any H×W
    expected = reference_edsr(sd, 255 * x.double()) / 255
    with torch.no_grad():
        got = model.super_resolve(x)
        resized = model(x)
    assert got.shape == (2, 3, 13 * scale, 10 * scale)
    assert rel_err(got, expected) < 1e-5
    # forward resizes back to H×W with the antialiased bilinear kernel, at ×4 as at ×2
    back = F.interpolate(expected, size=(13, 10), mode="bilinear", align_corners=False, antialias=True)
    assert resized.shape == x.shape and rel_err(resized, back) < 1e-5


def test_edsr_x2_parameter_count_is_the_papers_and_x4_adds_one_upsampler():
    assert sum(p.numel() for p in EDSR(scale=2).parameters()) == 1_369_859
    assert sum(p.numel() for p in EDSR(scale=4).parameters()) == 1_369_859 + 64 * 256 * 9 + 256


def test_cae_published_checkpoint_computes_the_reference_function():
    sd = cae_published_state()
    assert len(sd) == 42
    model = load_converted("cae", sd)
    x = torch.rand(3, 3, 16, 24, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        z = model.encode(x)
        z_ref = reference_cae_encode(sd, x.double())
        assert rel_err(z, z_ref) < 1e-5
        code = torch.where(z_ref >= 0, 1.0, -1.0).float()
        out = model.decode(code)
        out_ref = reference_cae_decode(sd, (code.double() + 1) / 2).clamp(0, 1)
        assert out.shape == x.shape
        assert rel_err(out, out_ref) < 1e-5
        # forward in eval mode: deterministic sign binarisation, then the clamped decoder
        assert rel_err(model(x), out_ref) < 1e-5


def test_cae_stochastic_binarisation_draws_plus_one_with_probability_one_plus_z_over_two():
    from adaaug.backbones.cae import binarize

    z = torch.full((200_000,), 0.4, requires_grad=True)
    b = binarize(z, stochastic=True, generator=torch.Generator().manual_seed(0))
    assert set(b.unique().tolist()) == {-1.0, 1.0}
    assert abs((b > 0).float().mean().item() - 0.7) < 0.005
    b.sum().backward()
    assert torch.equal(z.grad, torch.ones_like(z))  # straight through


@pytest.mark.parametrize("change, message", [
    (lambda sd: sd.pop("body.3.body.2.bias"), "missing keys"),
    (lambda sd: sd.__setitem__("body.3.body.9.bias", sd.pop("body.3.body.2.bias")), "unexpected keys"),
    (lambda sd: sd.__setitem__("tail.1.weight", torch.zeros(3, 64, 5, 5)), "another shape"),
    (lambda sd: sd.__setitem__("sub_mean.bias", -sd["sub_mean.bias"]), "sub_mean.bias"),
    (lambda sd: sd.__setitem__("add_mean.bias", sd["add_mean.bias"] / 255), "another input range"),
    (lambda sd: sd.__setitem__("tail.0.0.weight", torch.zeros(576, 64, 3, 3)), "scale 3"),
    (lambda sd: [sd.pop(k) for k in [k for k in sd if k.startswith("body.15.")]], "15 residual blocks"),
])
def test_edsr_conversion_refuses_what_differs_naming_it(change, message):
    sd = edsr_published_state(2)
    change(sd)
    with pytest.raises(ValueError, match=message):
        convert_published("edsr", sd)


def test_cae_conversion_refuses_renamed_keys_and_adaaug_state_dicts():
    sd = cae_published_state()
    sd["e_block_1.2.weight"] = sd.pop("e_block_1.1.weight")
    with pytest.raises(ValueError, match=r"missing keys \['e_block_1.1.weight'\].*unexpected keys \['e_block_1.2"):
        convert_published("cae", sd)
    with pytest.raises(ValueError, match="adaaug CAE state dict"):
        convert_published("cae", CAE().state_dict())
    with pytest.raises(ValueError, match="no published checkpoint format"):
        convert_published("unet", {})


def test_read_checkpoint_unwraps_and_refuses_truncated_and_pickled_objects(tmp_path):
    sd = cae_published_state()
    path = tmp_path / "model_final.state"
    torch.save({f"module.{k}": v for k, v in sd.items()}, path)
    loaded = read_checkpoint(path)
    assert loaded.keys() == sd.keys() and all(torch.equal(loaded[k], sd[k]) for k in sd)
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": sd}, wrapped)
    assert read_checkpoint(wrapped).keys() == sd.keys()

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated or not a checkpoint"):
        read_checkpoint(truncated)
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"weights": sd["e_conv_1.1.weight"], "obj": Exception("code")}, f)
    with pytest.raises(ValueError):
        read_checkpoint(evil)
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "absent.pt")


def test_cae_weights_saved_by_adaaug_03_are_refused_naming_the_change(tmp_path):
    from safetensors.torch import save_file

    from adaaug.weights import load_safetensors_into

    old = tmp_path / "cae-cifar10.safetensors"
    save_file({k: v.contiguous() for k, v in CAE().state_dict().items()}, str(old),
              metadata={"name": "cae", "tag": "cifar10"})
    with pytest.raises(ValueError, match="adaaug 0.3 or earlier.*DeepAugment's network"):
        load_safetensors_into(CAE(), old)
