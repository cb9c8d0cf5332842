"""Compressive autoencoder (Theis et al. 2017) as DeepAugment runs it (AdA paper, App. E.6).

The AdA paper uses DeepAugment's CAE, architecture and weights (App. E.6; DeepAugment's
``cae_32x32x32_zero_pad_bin`` model). This module computes that network's function:

Encoder (input: the image x in [0, 1], not rescaled):
    zero-pad (left 1, right 2, top 1, bottom 2), 5×5/2 conv 3→64, LeakyReLU;
    the same pad, 5×5/2 conv 64→128, LeakyReLU;
    three residual blocks (3×3 conv, LeakyReLU, 3×3 conv, zero padding 1, added to the input);
    5×5 conv 128→32 (padding 2), tanh: the latent z ∈ (−1, 1)^{32×H/4×W/4}.
Binarisation: b = ±1 with a straight-through (identity) gradient (:func:`binarize`).
Decoder (input: the code b ∈ {−1, +1}):
    unpadded 3×3 conv 32→64, LeakyReLU, zero-pad 1, 2×2/2 transposed conv 64→128 (no activation);
    three residual blocks as in the encoder;
    unpadded 3×3 conv 128→32, LeakyReLU, zero-pad 1, 2×2/2 transposed conv 32→256 (no activation);
    unpadded 3×3 conv 256→16, LeakyReLU, reflection-pad 2, unpadded 3×3 conv 16→3, tanh;
    the tanh output clamped to [0, 1] (:meth:`CAE.decode`; DeepAugment clamps its output before
    saving it).
LeakyReLU slope 0.01 (PyTorch's default). 42 tensors, 2,241,859 parameters, the count in App. B.1.

Maps a [0, 1] image ``N×3×H×W`` (H, W divisible by 4, at least 12) to the same size. Binarisation: in
training mode stochastic, P(+1) = (1 + z)/2, as DeepAugment's CAE always does; in eval mode
deterministic, sign(z). AdA runs the backbone in eval mode: its corruption c_{φ+δ}(x) must be a
function of δ alone, so that the M gradient steps and the SSIM line search (App. F) see the same
function. DeepAugment (:class:`adaaug.augment.DeepAugment`) binarises stochastically, as its
authors' network does, from its own generator.

adaaug 0.3's ``cae`` had the same tensors but another function (padding 2 in the encoder, input
2x − 1, LeakyReLUs after the transposed convolutions, output (tanh + 1)/2); weights saved from it
are refused (:data:`WEIGHTS_LAYOUT`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# LeakyReLU negative slope: PyTorch's default, as in DeepAugment's CAE (nn.LeakyReLU()).
LEAKY_SLOPE = 0.01
# Zero padding before the encoder's stride-2 5×5 convolutions: (left, right, top, bottom).
ENCODER_PAD = (1, 2, 1, 2)
#: Smallest H and W: the decoder's unpadded first 3×3 conv needs a latent of at least 3×3 (H/4, W/4).
MIN_SIZE = 12
#: Recorded in the metadata of every CAE weights file adaaug writes; a file without it holds
#: adaaug 0.3's layout (or another network) and is refused by :meth:`CAE.check_weights_metadata`.
WEIGHTS_LAYOUT = "deepaugment-cae"


class CAEResBlock(nn.Module):
    """Two 3×3 convs (zero padding 1) with a LeakyReLU between them, added to the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), LEAKY_SLOPE))


def binarize(z: torch.Tensor, stochastic: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """Binarise ``z`` in [-1, 1] to ±1 with a straight-through (identity) gradient.

    Stochastic: +1 with probability (1 + z)/2, drawn from ``generator`` (torch's global
    generator when ``None``); deterministic: sign(z), with sign(0) = +1.
    """
    if stochastic:
        u = torch.rand(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        b = torch.where(u < (1 + z) / 2, 1.0, -1.0).to(z.dtype)
    else:
        b = torch.where(z >= 0, 1.0, -1.0).to(z.dtype)
    return z + (b - z).detach()


class CAE(nn.Module):
    """DeepAugment's compressive autoencoder; the AdA / DeepAugment corruption network ``cae``.

    Args:
        latent_channels: channels of the binary code (32, DeepAugment's).
    """

    in_channels = 3
    weights_layout = WEIGHTS_LAYOUT

    def __init__(self, latent_channels: int = 32) -> None:
        super().__init__()
        self.config = {"latent_channels": latent_channels}
        self.enc1 = nn.Conv2d(3, 64, 5, stride=2)
        self.enc2 = nn.Conv2d(64, 128, 5, stride=2)
        self.enc_blocks = nn.ModuleList(CAEResBlock(128) for _ in range(3))
        self.enc_out = nn.Conv2d(128, latent_channels, 5, padding=2)
        self.dec1 = nn.Conv2d(latent_channels, 64, 3)
        self.dec_up1 = nn.ConvTranspose2d(64, 128, 2, stride=2)
        self.dec_blocks = nn.ModuleList(CAEResBlock(128) for _ in range(3))
        self.dec2 = nn.Conv2d(128, 32, 3)
        self.dec_up2 = nn.ConvTranspose2d(32, 256, 2, stride=2)
        self.dec3 = nn.Conv2d(256, 16, 3)
        self.dec_out = nn.Conv2d(16, 3, 3)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] image ``N×3×H×W`` → latent z in (−1, 1), ``N×32×H/4×W/4`` (before binarisation)."""
        h = F.leaky_relu(self.enc1(F.pad(x, ENCODER_PAD)), LEAKY_SLOPE)
        h = F.leaky_relu(self.enc2(F.pad(h, ENCODER_PAD)), LEAKY_SLOPE)
        for block in self.enc_blocks:
            h = block(h)
        return torch.tanh(self.enc_out(h))

    def decode_unclamped(self, code: torch.Tensor) -> torch.Tensor:
        """Code ``N×32×h×w`` (±1) → the decoder's tanh output in (−1, 1), ``N×3×4h×4w`` (the
        training target of the reconstruction loss; :meth:`decode` clamps it)."""
        h = F.pad(F.leaky_relu(self.dec1(code), LEAKY_SLOPE), (1, 1, 1, 1))
        h = self.dec_up1(h)
        for block in self.dec_blocks:
            h = block(h)
        h = F.pad(F.leaky_relu(self.dec2(h), LEAKY_SLOPE), (1, 1, 1, 1))
        h = self.dec_up2(h)
        h = F.pad(F.leaky_relu(self.dec3(h), LEAKY_SLOPE), (2, 2, 2, 2), mode="reflect")
        return torch.tanh(self.dec_out(h))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Binary code ``N×32×h×w`` (±1) → [0, 1] image ``N×3×4h×4w``: the tanh output clamped."""
        return self.decode_unclamped(code).clamp(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4 or min(x.shape[-2:]) < MIN_SIZE:
            raise ValueError(f"CAE needs H and W divisible by 4 and at least {MIN_SIZE} (its decoder's first conv is "
                             f"unpadded), got {tuple(x.shape[-2:])}; resize or pad the images")
        return self.decode(binarize(self.encode(x), stochastic=self.training))

    @staticmethod
    def weights_metadata() -> dict[str, str]:
        """Metadata written into every CAE weights file (safetensors header)."""
        return {"layout": WEIGHTS_LAYOUT}

    @staticmethod
    def check_weights_metadata(metadata: dict[str, str] | None, source: str) -> None:
        """Refuse a weights file saved from adaaug 0.3's CAE (same tensors, another function).

        Raises:
            ValueError: ``metadata`` lacks ``layout = "deepaugment-cae"``; the message names the change.
        """
        layout = (metadata or {}).get("layout")
        if layout == WEIGHTS_LAYOUT:
            return
        raise ValueError(
            f"{source} holds CAE weights without the layout mark {WEIGHTS_LAYOUT!r} (found "
            f"{layout!r}): it was saved by adaaug 0.3 or earlier, whose CAE had the same tensors but another "
            f"function (encoder padding 2 and input 2x-1, LeakyReLU after the transposed convolutions, output "
            f"(tanh+1)/2). adaaug 0.4's cae is DeepAugment's network, so these weights would give wrong images. "
            f"Use weights='cifar10' (retrained in the new layout), weights='deepaugment' (DeepAugment's "
            f"published CAE), or retrain yours with `adaaug train-backbone cae`")
