"""Compressive autoencoder (Theis et al. 2017) in DeepAugment's layout (AdA paper, App. E.6).

Encoder: 5×5/2 conv 3→64, 5×5/2 conv 64→128, three residual blocks (two 3×3
128→128 convs each), 5×5 conv 128→32 with tanh: the latent, binarised to ±1.
Decoder: 3×3 conv 32→64, 2×2/2 transposed conv 64→128, three residual blocks,
3×3 conv 128→32, 2×2/2 transposed conv 32→256, 3×3 conv 256→16, 3×3 conv 16→3
with tanh. LeakyReLU (slope 0.01, PyTorch's default, as in DeepAugment) between convs. 2,241,859 parameters, the count in App. B.1.

Maps a [0, 1] image ``N×3×H×W`` (H, W divisible by 4) to the same size.
Binarisation: in training mode stochastic, P(+1) = (1 + z) / 2; in eval mode
deterministic, sign(z). Both pass gradients straight through (identity), so the
AdA inner maximisation can differentiate through the encoder.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# LeakyReLU negative slope: PyTorch's default, as in DeepAugment's CAE (nn.LeakyReLU()).
# adaaug 0.1 used 0.2.
LEAKY_SLOPE = 0.01


class CAEResBlock(nn.Module):
    """Two 3×3 convs with a LeakyReLU between them, added to the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), LEAKY_SLOPE))


def binarize(z: torch.Tensor, stochastic: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """Binarise ``z`` in [-1, 1] to ±1 with a straight-through (identity) gradient."""
    if stochastic:
        u = torch.rand(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        b = torch.where(u < (1 + z) / 2, 1.0, -1.0).to(z.dtype)
    else:
        b = torch.where(z >= 0, 1.0, -1.0).to(z.dtype)
    return z + (b - z).detach()


class CAE(nn.Module):
    """Compressive autoencoder; the AdA / DeepAugment corruption network 'cae'."""

    in_channels = 3

    def __init__(self, latent_channels: int = 32) -> None:
        super().__init__()
        self.config = {"latent_channels": latent_channels}
        self.enc1 = nn.Conv2d(3, 64, 5, stride=2, padding=2)
        self.enc2 = nn.Conv2d(64, 128, 5, stride=2, padding=2)
        self.enc_blocks = nn.ModuleList(CAEResBlock(128) for _ in range(3))
        self.enc_out = nn.Conv2d(128, latent_channels, 5, padding=2)
        self.dec1 = nn.Conv2d(latent_channels, 64, 3, padding=1)
        self.dec_up1 = nn.ConvTranspose2d(64, 128, 2, stride=2)
        self.dec_blocks = nn.ModuleList(CAEResBlock(128) for _ in range(3))
        self.dec2 = nn.Conv2d(128, 32, 3, padding=1)
        self.dec_up2 = nn.ConvTranspose2d(32, 256, 2, stride=2)
        self.dec3 = nn.Conv2d(256, 16, 3, padding=1)
        self.dec_out = nn.Conv2d(16, 3, 3, padding=1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] image → latent in (-1, 1), ``N×32×H/4×W/4`` (before binarisation)."""
        h = F.leaky_relu(self.enc1(2 * x - 1), LEAKY_SLOPE)
        h = F.leaky_relu(self.enc2(h), LEAKY_SLOPE)
        for block in self.enc_blocks:
            h = block(h)
        return torch.tanh(self.enc_out(h))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        """Binary code ``N×32×h×w`` → [0, 1] image ``N×3×4h×4w``."""
        h = F.leaky_relu(self.dec1(code), LEAKY_SLOPE)
        h = F.leaky_relu(self.dec_up1(h), LEAKY_SLOPE)
        for block in self.dec_blocks:
            h = block(h)
        h = F.leaky_relu(self.dec2(h), LEAKY_SLOPE)
        h = F.leaky_relu(self.dec_up2(h), LEAKY_SLOPE)
        h = F.leaky_relu(self.dec3(h), LEAKY_SLOPE)
        return (torch.tanh(self.dec_out(h)) + 1) / 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"CAE needs H and W divisible by 4, got {tuple(x.shape[-2:])}")
        return self.decode(binarize(self.encode(x), stochastic=self.training))
