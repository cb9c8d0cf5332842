"""EDSR baseline ×2 (Lim et al. 2017), as used by AdA (paper App. E.6) and DeepAugment.

Maps a [0, 1] image ``N×3×H×W`` to ``N×3×H×W`` (H, W even): the input is first
downsampled ×2 (bilinear, antialiased), then super-resolved ×2 by the network.
16 residual blocks of two 3×3 convs with 64 features, one ×2 pixel-shuffle
upsampler: 1,369,859 parameters, the count in App. B.1 of the paper.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Per-channel mean of DIV2K that EDSR subtracts before its head and adds back
# after its tail (Lim et al. 2017). A fixed buffer, not a parameter.
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


class ResBlock(nn.Module):
    """conv3×3 → ReLU → conv3×3, added to the input (EDSR baseline: res_scale 1)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class EDSR(nn.Module):
    """EDSR baseline super-resolution network used as a corruption network.

    Args:
        num_blocks: residual blocks in the body (16 for the baseline).
        features: feature channels (64 for the baseline).
        scale: upsampling factor of the network (2); the input is downsampled by the
            same factor first, so the output has the input's size.
    """

    in_channels = 3

    def __init__(self, num_blocks: int = 16, features: int = 64, scale: int = 2) -> None:
        super().__init__()
        if scale != 2:
            raise ValueError(f"only scale=2 is supported, got {scale}")
        self.scale = scale
        self.config = {"num_blocks": num_blocks, "features": features, "scale": scale}
        self.register_buffer("rgb_mean", torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.head = nn.Conv2d(3, features, 3, padding=1)
        self.body = nn.ModuleList(ResBlock(features) for _ in range(num_blocks))
        self.body_tail = nn.Conv2d(features, features, 3, padding=1)
        self.upsample = nn.Conv2d(features, features * scale * scale, 3, padding=1)
        self.tail = nn.Conv2d(features, 3, 3, padding=1)

    def downsample(self, x: torch.Tensor) -> torch.Tensor:
        """The ×2 bilinear (antialiased) downsampling that feeds the network."""
        h, w = x.shape[-2:]
        return F.interpolate(x, size=(h // self.scale, w // self.scale), mode="bilinear",
                             align_corners=False, antialias=True)

    def super_resolve(self, low: torch.Tensor) -> torch.Tensor:
        """Network proper: low-resolution ``N×3×h×w`` → ``N×3×2h×2w``."""
        h = self.head(low - self.rgb_mean)
        r = h
        for block in self.body:
            r = block(r)
        r = self.body_tail(r) + h
        r = F.pixel_shuffle(self.upsample(r), self.scale)
        return self.tail(r) + self.rgb_mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.scale or x.shape[-2] % self.scale:
            raise ValueError(f"EDSR needs even H and W, got {tuple(x.shape[-2:])}")
        return self.super_resolve(self.downsample(x))
