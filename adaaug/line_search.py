"""The approximate SSIM line search of App. F, batched over examples.

Given clean images x and AdA outputs x̂, examples whose SSIM distance
1 − SSIM(x, x̂) exceeds the threshold t are pulled back along the ray
x_γ = (1 − γ)·x + γ·x̂: SSIM(x, x_γ) is evaluated at 9 equally spaced γ in
[0, 1], a quadratic in γ is fitted (least squares) to SSIM(x, x_γ) − (1 − t), and
the real root closest to 1 inside [0, 1] is kept (the most corrupted image on the
ray that the fit says obeys the threshold). No iteration, so it is approximate.

Where the fit has no real root in [0, 1] (it can underfit), adaaug falls back to
the largest of the 9 grid values of γ whose measured SSIM meets the threshold
(γ = 0 always does). The paper does not say what it does in that case.

Precision: SSIM and the search run in float32 (float64 for float64 inputs) with any
``torch.autocast`` region switched off, so a caller's mixed precision does not round the
SSIM values that decide γ; the images come back in ``x_hat``'s dtype.
"""
from __future__ import annotations

import contextlib

import torch

from .paper import LINE_SEARCH_POINTS, SSIM_K1, SSIM_K2, SSIM_KERNEL_SIZE, SSIM_SIGMA


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM (App. F.1: 11×11 Gaussian window, σ 1.5, K1 0.01, K2 0.03) of [0, 1] images.

    ``x``, ``y``: ``N×C×H×W`` with H, W ≥ 11. Returns shape ``N``. Uses piq with
    ``downsample=False`` (the paper's SSIM has no downsampling step).
    """
    import piq

    dtype = _search_dtype(x, y)
    with autocast_off(x.device):
        return piq.ssim(x.to(dtype).clamp(0, 1), y.to(dtype).clamp(0, 1), kernel_size=SSIM_KERNEL_SIZE,
                        kernel_sigma=SSIM_SIGMA, data_range=1.0, reduction="none", k1=SSIM_K1, k2=SSIM_K2,
                        downsample=False)


def _search_dtype(x: torch.Tensor, y: torch.Tensor) -> torch.dtype:
    """float32, or float64 when an input is float64."""
    return torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)


def autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    """A context that disables ``torch.autocast`` for ``device``'s type (a no-op where autocast does not exist)."""
    try:
        available = torch.amp.is_autocast_available(device.type)
    except AttributeError:  # pragma: no cover - older torch
        available = device.type in ("cpu", "cuda")
    return torch.autocast(device.type, enabled=False) if available else contextlib.nullcontext()


def _quadratic_root_near_one(coef: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Largest real root in [0, 1] of a·γ² + b·γ + c (rows of ``coef`` = (a, b, c)).

    Returns ``(root, found)``; ``found`` is False where no real root lies in [0, 1].
    """
    a, b, c = coef.unbind(1)
    eps = 1e-12
    disc = b * b - 4 * a * c
    sq = disc.clamp_min(0).sqrt()
    quad = a.abs() > eps
    safe_a = torch.where(quad, a, torch.ones_like(a))
    r1 = torch.where(quad, (-b - sq) / (2 * safe_a), -c / torch.where(b.abs() > eps, b, torch.ones_like(b)))
    r2 = torch.where(quad, (-b + sq) / (2 * safe_a), r1)
    real = torch.where(quad, disc >= 0, b.abs() > eps)
    tol = 1e-6
    in1 = real & (r1 >= -tol) & (r1 <= 1 + tol)
    in2 = real & (r2 >= -tol) & (r2 <= 1 + tol)
    neg = torch.full_like(r1, -1.0)
    best = torch.maximum(torch.where(in1, r1, neg), torch.where(in2, r2, neg))
    return best.clamp(0, 1), in1 | in2


def ssim_line_search(x: torch.Tensor, x_hat: torch.Tensor, threshold: float,
                     points: int = LINE_SEARCH_POINTS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pull over-corrupted examples back towards the clean image (App. F).

    Args:
        x: clean images ``N×C×H×W`` in [0, 1].
        x_hat: corrupted images, same shape, in [0, 1].
        threshold: t, the largest allowed SSIM distance 1 − SSIM(x, x̂) (0.3 CIFAR-10, 0.7 ImageNet).
        points: number of equally spaced γ (9 in the paper).

    Returns:
        ``(x_out, gamma, ssim_out)``: the images (x̂ itself, bitwise, where it already
        met the threshold), γ per example (1 there), and SSIM(x, x_out) per example.
    """
    out_dtype, dtype = x_hat.dtype, _search_dtype(x, x_hat)
    x, x_hat = x.to(dtype), x_hat.to(dtype)
    with autocast_off(x.device):
        out, gamma, s_out = _search(x, x_hat, threshold, points)
    return out.to(out_dtype), gamma, s_out


def _search(x: torch.Tensor, x_hat: torch.Tensor, threshold: float,
            points: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    s_hat = ssim(x, x_hat)
    gamma = torch.ones_like(s_hat)
    bad = (1 - s_hat) > threshold
    if not bool(bad.any()):
        return x_hat, gamma, s_hat
    xb, hb = x[bad], x_hat[bad]
    m = xb.shape[0]
    grid = torch.linspace(0, 1, points, device=x.device, dtype=x.dtype)
    xg = torch.lerp(xb.unsqueeze(1), hb.unsqueeze(1), grid.view(1, -1, 1, 1, 1))       # m×P×C×H×W
    s = ssim(xb.repeat_interleave(points, 0), xg.flatten(0, 1)).view(m, points)
    target = s - (1 - threshold)                                                        # m×P
    design = torch.stack([grid * grid, grid, torch.ones_like(grid)], dim=1).double()     # P×3
    coef = torch.linalg.lstsq(design.expand(m, -1, -1), target.double().unsqueeze(-1)).solution.squeeze(-1)
    root, found = _quadratic_root_near_one(coef)
    ok = target >= 0
    idx = torch.arange(points, device=x.device).expand(m, -1)
    fallback = grid[torch.where(ok, idx, torch.zeros_like(idx)).amax(dim=1)]
    g = torch.where(found, root.to(x.dtype), fallback)
    out = x_hat.clone()
    out[bad] = torch.lerp(xb, hb, g.view(-1, 1, 1, 1))
    gamma[bad] = g
    s_out = s_hat.clone()
    s_out[bad] = ssim(xb, out[bad])
    return out, gamma, s_out


def pull_back(x: torch.Tensor, x_adv: torch.Tensor, threshold: float | None,
              return_info: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """AdA's pull-back step (App. F) on one nano-batch: ``(images, γ, SSIM(x, images))``, each with N rows.

    ``threshold``: the largest SSIM distance kept (:func:`ssim_line_search`); ``None`` turns the search
    off: the images pass unchanged (γ = 1), and their SSIM is computed only for ``return_info`` (NaN for
    images smaller than the 11×11 window), else reported as 1.
    """
    if threshold is not None:
        return ssim_line_search(x, x_adv, threshold)
    ones = torch.ones(len(x), device=x.device, dtype=x.dtype)
    if not return_info:
        return x_adv, ones, ones
    s = ssim(x, x_adv) if min(x.shape[-2:]) >= SSIM_KERNEL_SIZE else torch.full_like(ones, float("nan"))
    return x_adv, ones, s
