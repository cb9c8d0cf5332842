"""Per-example, per-block weight perturbations δ of a backbone (Algorithm 1, App. E.4).

A "block" φ_i is one parameter tensor of the backbone (a conv kernel, a bias).
Every function here works on dicts ``{block name: tensor}``; perturbations carry a
leading example dimension: ``delta[name]`` has shape ``N × *φ_name.shape``.
The constraint is ``‖δ_i‖₂ ≤ ν‖φ_i‖₂`` for every example and block.
"""
from __future__ import annotations

import torch

from .paper import STEP_SIZE_MEDIAN_FRACTION

Blocks = dict[str, torch.Tensor]


def block_radii(params: Blocks, nu: float) -> Blocks:
    """ν‖φ_i‖₂ for every block (0-d tensors, on the blocks' device)."""
    return {k: nu * p.detach().norm() for k, p in params.items()}


def default_step_size(radii: Blocks) -> float:
    """η = ¼ of the median of the per-block radii (App. E.4)."""
    r = torch.stack(list(radii.values())).float().cpu()
    return STEP_SIZE_MEDIAN_FRACTION * r.median().item()


def random_init(params: Blocks, radii: Blocks, n: int, generator: torch.Generator | None = None) -> Blocks:
    """δ⁰: per example and block, a uniformly random direction scaled to r ~ U(0, ν‖φ_i‖₂).

    Random numbers are drawn on the generator's device (CPU by default) in float32,
    so a CPU generator gives the same draw whatever device the blocks live on.
    """
    gen_device = generator.device if generator is not None else torch.device("cpu")
    delta = {}
    for k, p in params.items():
        direction = torch.randn((n, p.numel()), generator=generator, device=gen_device)
        direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(torch.finfo(direction.dtype).tiny)
        u = torch.rand((n, 1), generator=generator, device=gen_device)
        d = (direction * u).to(device=p.device, dtype=p.dtype) * radii[k]
        delta[k] = d.view(n, *p.shape)
    return delta


def per_example_norms(delta: Blocks) -> Blocks:
    """‖δ_i‖₂ per example: ``{name: tensor of shape N}``."""
    return {k: d.flatten(1).norm(dim=1) for k, d in delta.items()}


def project_(delta: Blocks, radii: Blocks) -> Blocks:
    """In place: rescale every example's δ_i whose norm exceeds ν‖φ_i‖₂ back onto that sphere."""
    for k, d in delta.items():
        scale = (radii[k] / d.flatten(1).norm(dim=1)).clamp_(max=1)  # norm 0 → inf → 1
        d.mul_(scale.view(-1, *([1] * (d.dim() - 1))))
    return delta


def sign_step_(delta: Blocks, grads: Blocks, step_size: float) -> Blocks:
    """In place: one FGSM ascent step δ ← δ + η · sign(∇_δ L) (``grads`` is overwritten)."""
    for k, d in delta.items():
        d.add_(grads[k].sign_(), alpha=step_size)
    return delta


def project(delta: Blocks, radii: Blocks) -> Blocks:
    """Out-of-place :func:`project_`."""
    return project_({k: d.clone() for k, d in delta.items()}, radii)


def sign_step(delta: Blocks, grads: Blocks, step_size: float) -> Blocks:
    """Out-of-place :func:`sign_step_`: δ + η · sign(∇_δ L)."""
    return sign_step_({k: d.clone() for k, d in delta.items()}, {k: g.clone() for k, g in grads.items()},
                      step_size)


def relative_norms(delta: Blocks, params: Blocks) -> torch.Tensor:
    """‖δ_i‖₂ / ‖φ_i‖₂ as an ``N × blocks`` tensor (blocks in ``params`` order)."""
    norms = per_example_norms(delta)
    return torch.stack([norms[k] / params[k].detach().norm() for k in params], dim=1)
