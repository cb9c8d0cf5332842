"""EDSR baseline ×2 (Lim et al. 2017), as used by AdA (paper App. E.6) and DeepAugment.

Maps a [0, 1] image ``N×3×H×W`` to ``N×3×H×W``. Two ways to keep the size:

- ``mode="upsample"`` (registered as ``edsr``, the paper's construction): the network
  super-resolves the image itself ×2 (``N×3×2H×2W``), and the result is resized back
  to ``H×W`` with the antialiased bilinear kernel. This is how DeepAugment, whose EDSR
  the paper uses (App. E.6), runs EDSR: as an upsampler of the clean image, never
  after a downsampling. The back-down resize is the same kernel that made the
  network's low-resolution training inputs (:meth:`EDSR.downsample`), so an ideal
  super-resolver followed by it returns the input: with unperturbed weights
  c_φ(x) ≈ x (SSIM ≈ 1), and every change AdA makes comes from δ.
- ``mode="downsample"`` (registered as ``edsr-down``; adaaug 0.1's ``edsr``): the
  image is downsampled ×2 first and super-resolved back, so detail is lost even
  with δ = 0 (SSIM ≈ 0.92 on CIFAR-10).

16 residual blocks of two 3×3 convs with 64 features, one ×2 pixel-shuffle
upsampler: 1,369,859 parameters, the count in App. B.1 of the paper. Both modes
share the same weights.
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
        scale: upsampling factor of the network (2).
        mode: ``"upsample"`` (super-resolve, then resize back; the paper's) or
            ``"downsample"`` (downsample, then super-resolve). See the module doc.
    """

    in_channels = 3
    MODES = ("upsample", "downsample")

    def __init__(self, num_blocks: int = 16, features: int = 64, scale: int = 2, mode: str = "upsample") -> None:
        super().__init__()
        if scale != 2:
            raise ValueError(f"only scale=2 is supported, got {scale}")
        if mode not in self.MODES:
            raise ValueError(f"EDSR mode must be one of {self.MODES}, got {mode!r}")
        self.scale, self.mode = scale, mode
        self.config = {"num_blocks": num_blocks, "features": features, "scale": scale}
        self.register_buffer("rgb_mean", torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.head = nn.Conv2d(3, features, 3, padding=1)
        self.body = nn.ModuleList(ResBlock(features) for _ in range(num_blocks))
        self.body_tail = nn.Conv2d(features, features, 3, padding=1)
        self.upsample = nn.Conv2d(features, features * scale * scale, 3, padding=1)
        self.tail = nn.Conv2d(features, 3, 3, padding=1)

    def downsample(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Antialiased bilinear resize to ``size`` (default: ×1/scale), the kernel that made the
        network's low-resolution training inputs."""
        h, w = x.shape[-2:]
        size = size if size is not None else (h // self.scale, w // self.scale)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)

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
        if self.mode == "upsample":
            return self.downsample(self.super_resolve(x), size=tuple(x.shape[-2:]))
        if x.shape[-1] % self.scale or x.shape[-2] % self.scale:
            raise ValueError(f"EDSR (mode='downsample') needs even H and W, got {tuple(x.shape[-2:])}")
        return self.super_resolve(self.downsample(x))
