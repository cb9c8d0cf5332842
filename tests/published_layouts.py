"""Random-weight checkpoints in the publishers' layouts, made from the published architecture facts
(not from adaaug's modules): EDSR-PyTorch's baseline (``edsr_baseline_x2/x4.pt``, also DeepAugment's
``edsr_baseline_x4.pt``) and DeepAugment's CAE (``model_final.state``), saved as ``torch.save`` saves them."""
from __future__ import annotations

from pathlib import Path

import torch

#: EDSR-PyTorch's DIV2K RGB mean (rgb_range 255, std 1)
EDSR_MEAN = (0.4488, 0.4371, 0.4040)


def _conv(g: torch.Generator, out_ch: int, in_ch: int, k: int, scale: float = 0.05) -> tuple[torch.Tensor, ...]:
    return torch.randn(out_ch, in_ch, k, k, generator=g) * scale, torch.randn(out_ch, generator=g) * scale


def edsr_baseline_state(scale: int = 2, seed: int = 0, blocks: int = 16, features: int = 64) -> dict[str, torch.Tensor]:
    """EDSR-PyTorch ``EDSR(n_resblocks=16, n_feats=64, scale)``'s state dict: 76 keys at ×2, 78 at ×4."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def put(prefix: str, out_ch: int, in_ch: int, k: int = 3) -> None:
        state[f"{prefix}.weight"], state[f"{prefix}.bias"] = _conv(g, out_ch, in_ch, k)

    mean = torch.tensor(EDSR_MEAN)
    eye = torch.eye(3).view(3, 3, 1, 1)
    state["sub_mean.weight"], state["sub_mean.bias"] = eye.clone(), -255 * mean
    put("head.0", features, 3)
    for i in range(blocks):
        put(f"body.{i}.body.0", features, features)
        put(f"body.{i}.body.2", features, features)
    put(f"body.{blocks}", features, features)
    stages = {2: 1, 4: 2}[scale]
    for j in range(stages):  # Upsampler: conv to 4·features then PixelShuffle(2), once per factor 2
        put(f"tail.0.{2 * j}", 4 * features, features)
    put("tail.1", 3, features)
    state["add_mean.weight"], state["add_mean.bias"] = eye.clone(), 255 * mean
    return state


#: DeepAugment's CAE: (key prefix, weight shape); ``d_up_conv_*.3`` are transposed convs (in, out, 2, 2)
CAE_LAYOUT: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("e_conv_1.1", (64, 3, 5, 5)), ("e_conv_2.1", (128, 64, 5, 5)),
    *((f"e_block_{i}.{j}", (128, 128, 3, 3)) for i in (1, 2, 3) for j in (1, 4)),
    ("e_conv_3.0", (32, 128, 5, 5)),
    ("d_up_conv_1.0", (64, 32, 3, 3)), ("d_up_conv_1.3", (64, 128, 2, 2)),
    *((f"d_block_{i}.{j}", (128, 128, 3, 3)) for i in (1, 2, 3) for j in (1, 4)),
    ("d_up_conv_2.0", (32, 128, 3, 3)), ("d_up_conv_2.3", (32, 256, 2, 2)),
    ("d_up_conv_3.0", (16, 256, 3, 3)), ("d_up_conv_3.3", (3, 16, 3, 3)),
)


def deepaugment_cae_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """DeepAugment's ``CAE`` state dict: 42 tensors (21 layers, weight and bias)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for prefix, shape in CAE_LAYOUT:
        state[f"{prefix}.weight"] = torch.randn(*shape, generator=g) * 0.05
        out_ch = shape[1] if prefix.endswith(".3") and prefix.startswith("d_up") and shape[2] == 2 else shape[0]
        state[f"{prefix}.bias"] = torch.randn(out_ch, generator=g) * 0.05
    return state


def save_published(state: dict[str, torch.Tensor], path: Path) -> Path:
    """``torch.save`` the state dict (the publishers' format); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path
