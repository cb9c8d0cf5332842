"""Backbone architectures: parameter counts from the paper (App. B.1), shapes, the registry."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from adaaug.backbones import (CAE, EDSR, VQVAE, UNet, available_backbones, backbone_spec, build_backbone,
                              register_backbone)
from adaaug.backbones import registry as registry_module


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("cls, expected", [(EDSR, 1_369_859), (CAE, 2_241_859), (UNet, 58_627)])
def test_parameter_counts_match_the_paper(cls, expected):
    assert n_params(cls()) == expected


def test_vqvae_count_matches_the_paper_once_ema_state_is_counted():
    m = VQVAE()
    trainable = n_params(m)
    assert trainable == 662_723
    codes, dim = m.quantizer.codebook.shape
    # Sonnet's EMA state: codebook + EMA average and its debiasing copy (3 × K·D),
    # cluster sizes and their copy (2 × K), two step counters.
    assert trainable + 3 * codes * dim + 2 * codes + 2 == 762_053


@pytest.mark.parametrize("name", ["edsr", "cae", "vqvae", "unet"])
def test_backbones_map_images_to_the_same_shape(name):
    m = build_backbone(name).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        y = m(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_registry_lists_and_rejects():
    assert {"edsr", "cae", "vqvae", "unet"} <= set(available_backbones())
    with pytest.raises(ValueError, match="known backbones: .*edsr"):
        backbone_spec("edsr2")
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("edsr", EDSR)
    with pytest.raises(TypeError):
        register_backbone("x", 3)


def test_register_a_custom_backbone(monkeypatch):
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))
    register_backbone("blur", lambda: nn.Conv2d(3, 3, 3, padding=1), multiple_of=1)
    assert "blur" in available_backbones()
    assert isinstance(build_backbone("blur"), nn.Conv2d)


def test_cae_binarisation_is_deterministic_in_eval_and_passes_gradients():
    m = CAE().eval()
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(m(x), m(x))
    w = m.enc1.weight.detach().clone().requires_grad_(True)
    out = torch.func.functional_call(m, {"enc1.weight": w}, (x,))
    (g,) = torch.autograd.grad(out.sum(), w)
    assert g.abs().sum() > 0  # straight-through estimator reaches the encoder


def test_edsr_downsample_mode_rejects_odd_sizes():
    with pytest.raises(ValueError, match="even"):
        EDSR(mode="downsample")(torch.rand(1, 3, 31, 32))


def test_edsr_upsample_mode_keeps_any_size_and_equals_sr_then_resize():
    torch.manual_seed(0)
    m = EDSR(num_blocks=2, features=8).eval()
    x = torch.rand(2, 3, 31, 20)
    with torch.no_grad():
        y = m(x)
        sr = m.super_resolve(x)
        ref = torch.nn.functional.interpolate(sr, size=(31, 20), mode="bilinear", align_corners=False,
                                              antialias=True)
    assert sr.shape == (2, 3, 62, 40) and y.shape == x.shape
    torch.testing.assert_close(y, ref, rtol=0, atol=0)


def test_edsr_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        EDSR(mode="sideways")


def test_unet_is_plain_not_residual():
    """Output = the last conv: with that conv zeroed the U-Net returns the constant 0, whatever the input."""
    torch.manual_seed(0)
    m = UNet().eval()
    with torch.no_grad():
        m.out.weight.zero_()
        m.out.bias.zero_()
        y = m(torch.rand(2, 3, 32, 32))
    assert torch.equal(y, torch.zeros_like(y))


def test_unet_output_is_the_out_conv_bias_when_the_decoder_is_silent():
    """Independent check of the same: zero dec3 (the last hidden layer) → output = out.bias per channel."""
    torch.manual_seed(1)
    m = UNet().eval()
    with torch.no_grad():
        m.dec3.weight.zero_()
        m.dec3.bias.zero_()
        y = m(torch.rand(1, 3, 8, 8))
    torch.testing.assert_close(y, m.out.bias.detach().view(1, 3, 1, 1).expand_as(y), rtol=0, atol=0)


def test_cae_uses_pytorchs_default_leaky_relu_slope():
    """DeepAugment's CAE uses nn.LeakyReLU() (slope 0.01): a negative pre-activation is scaled by 0.01."""
    from adaaug.backbones import cae as cae_module

    assert cae_module.LEAKY_SLOPE == nn.LeakyReLU().negative_slope == 0.01
    m = CAE().eval()
    with torch.no_grad():  # a residual block with identity-like weights: conv1 = -I → LeakyReLU → conv2 = I
        block = m.enc_blocks[0]
        for conv, sign in ((block.conv1, -1.0), (block.conv2, 1.0)):
            conv.weight.zero_()
            conv.bias.zero_()
            conv.weight[:, :, 1, 1] = sign * torch.eye(128)
        h = torch.rand(1, 128, 4, 4) + 0.1  # positive, so conv1 makes it negative
        torch.testing.assert_close(block(h), h + 0.01 * (-h), rtol=1e-6, atol=1e-6)


def test_cae_refuses_images_its_unpadded_decoder_cannot_take():
    """DeepAugment's decoder starts with an unpadded 3×3 conv: the 3×3 latent of 12×12 images is the least."""
    from adaaug.augment.deepaugment import DeepAugment

    m = CAE().eval()
    assert m(torch.rand(1, 3, 12, 12)).shape == (1, 3, 12, 12)
    with pytest.raises(ValueError, match="at least 12"):
        m(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="at least 12×12 for the CAE"):
        DeepAugment(m)(torch.rand(1, 3, 8, 8))
