"""Small U-Net for image completion (AdA paper, App. E.6).

Two-layer encoder (16, 32 filters), three-layer decoder (64, 32, 16 filters), skip
connections by concatenation, a 3×3 output conv: 58,627 parameters, the count in
App. B.1. Maps a [0, 1] image ``N×3×H×W`` (H, W divisible by 4) to the same size.

The output is the last conv itself (a plain U-Net): the image is rebuilt by the
network, not added to its input. App. E.6 trains the U-Net to fill in zeroed
pixels, and nothing there makes it residual; a residual ``x + out(u)`` would pass
images through almost unchanged under any weight perturbation (adaaug 0.1 had
that: at ν = 0.015 SSIM ≈ 0.998), whereas the paper's AdA(U-Net) changes images
enough to matter for robustness.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class UNet(nn.Module):
    """U-Net trained to fill in zeroed pixels; the AdA corruption network 'unet'."""

    in_channels = 3

    def __init__(self, encoder: tuple[int, int] = (16, 32), decoder: tuple[int, int, int] = (64, 32, 16)) -> None:
        super().__init__()
        e1, e2 = encoder
        d1, d2, d3 = decoder
        self.config = {"encoder": list(encoder), "decoder": list(decoder)}
        self.enc1 = nn.Conv2d(3, e1, 3, padding=1)
        self.enc2 = nn.Conv2d(e1, e2, 3, padding=1)
        self.dec1 = nn.Conv2d(e2, d1, 3, padding=1)
        self.dec2 = nn.Conv2d(d1 + e2, d2, 3, padding=1)
        self.dec3 = nn.Conv2d(d2 + e1, d3, 3, padding=1)
        self.out = nn.Conv2d(d3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"UNet needs H and W divisible by 4, got {tuple(x.shape[-2:])}")
        s1 = F.relu(self.enc1(x))                       # H
        s2 = F.relu(self.enc2(F.max_pool2d(s1, 2)))     # H/2
        b = F.relu(self.dec1(F.max_pool2d(s2, 2)))      # H/4
        u = F.interpolate(b, scale_factor=2.0, mode="nearest")
        u = F.relu(self.dec2(torch.cat([u, s2], dim=1)))  # H/2
        u = F.interpolate(u, scale_factor=2.0, mode="nearest")
        u = F.relu(self.dec3(torch.cat([u, s1], dim=1)))  # H
        return self.out(u)
