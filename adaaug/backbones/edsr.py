"""EDSR baseline (Lim et al. 2017), ×2 or ×4: AdA's super-resolution corruption network (App. E.6).

The AdA paper uses DeepAugment's EDSR weights, which are EDSR-PyTorch's published baseline ×4
network (DeepAugment's ``edsr_baseline_x4.pt``); its parameter count (1,369,859, App. B.1) is the ×2
network's. Both load from their published files (:mod:`adaaug.backbones.published`), which expect
images in 0–255 and hold the DIV2K mean in two frozen 1×1 convolutions. This module works on [0, 1]
images: :meth:`EDSR.super_resolve` of a converted network equals the published ``EDSR(255·x)/255``
(the conversion divides every bias by 255, exact because the network is linear but for ReLUs).

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

16 residual blocks of two 3×3 convs with 64 features, then a pixel-shuffle upsampler: one
3×3 conv 64→256 and a ×2 shuffle at ×2 (``upsample``; 1,369,859 parameters, the count in App. B.1),
two of them at ×4 (``upsample``, ``upsample2``; 1,517,571 parameters). Both modes share the same
weights. adaaug's packaged CIFAR-10 ``edsr`` is a ×2 network trained on CIFAR-10, not the paper's.
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
        scale: upsampling factor of the network, 2 or 4 (:data:`SCALES`).
        mode: ``"upsample"`` (super-resolve, then resize back; the paper's) or
            ``"downsample"`` (downsample, then super-resolve). See the module doc.
    """

    in_channels = 3
    MODES = ("upsample", "downsample")
    SCALES = (2, 4)

    def __init__(self, num_blocks: int = 16, features: int = 64, scale: int = 2, mode: str = "upsample") -> None:
        super().__init__()
        if scale not in self.SCALES:
            raise ValueError(f"EDSR scale must be one of {self.SCALES} (EDSR-PyTorch's baseline networks), got {scale!r}")
        if mode not in self.MODES:
            raise ValueError(f"EDSR mode must be one of {self.MODES}, got {mode!r}")
        self.scale, self.mode = scale, mode
        self.config = {"num_blocks": num_blocks, "features": features, "scale": scale}
        self.register_buffer("rgb_mean", torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.head = nn.Conv2d(3, features, 3, padding=1)
        self.body = nn.ModuleList(ResBlock(features) for _ in range(num_blocks))
        self.body_tail = nn.Conv2d(features, features, 3, padding=1)
        # one 3×3 conv 64→256 plus a ×2 pixel shuffle per factor 2 (EDSR-PyTorch's Upsampler)
        self.upsample = nn.Conv2d(features, 4 * features, 3, padding=1)
        if scale == 4:
            self.upsample2 = nn.Conv2d(features, 4 * features, 3, padding=1)
        self.tail = nn.Conv2d(features, 3, 3, padding=1)

    def downsample(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Antialiased bilinear resize to ``size`` (default: ×1/scale), the kernel that made the
        network's low-resolution training inputs."""
        h, w = x.shape[-2:]
        size = size if size is not None else (h // self.scale, w // self.scale)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)

    def super_resolve(self, low: torch.Tensor) -> torch.Tensor:
        """Network proper: low-resolution ``N×3×h×w`` in [0, 1] → ``N×3×(scale·h)×(scale·w)``
        (not clamped)."""
        h = self.head(low - self.rgb_mean)
        r = h
        for block in self.body:
            r = block(r)
        return self.upscale(self.body_tail(r) + h)

    def upscale(self, r: torch.Tensor) -> torch.Tensor:
        """The network after its body: features ``N×64×h×w`` → image ``N×3×(scale·h)×(scale·w)``."""
        r = F.pixel_shuffle(self.upsample(r), 2)
        if self.scale == 4:
            r = F.pixel_shuffle(self.upsample2(r), 2)
        return self.tail(r) + self.rgb_mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "upsample":
            return self.downsample(self.super_resolve(x), size=tuple(x.shape[-2:]))
        if x.shape[-1] % self.scale or x.shape[-2] % self.scale:
            raise ValueError(f"EDSR (mode='downsample') needs even H and W, got {tuple(x.shape[-2:])}")
        return self.super_resolve(self.downsample(x))
