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
    """η = ¼ of the median of the per-block radii (App. E.4).

    Blocks whose weights are all zero (a zero-initialised bias of a custom backbone) have radius 0:
    they cannot be perturbed and are left out of the median. Raises ``ValueError`` when every block
    is zero.
    """
    r = torch.stack(list(radii.values())).float().cpu()
    r = r[r > 0]
    if not len(r):
        raise ValueError("every weight of the backbone is zero, so ν‖φ_i‖₂ = 0 leaves nothing to perturb; load "
                         "trained weights (or initialise it) before passing it to AdA")
    return STEP_SIZE_MEDIAN_FRACTION * r.median().item()


def example_seeds(n: int, generator: torch.Generator | None = None,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """One 63-bit seed per example (int64 ``N``), drawn from ``generator`` (torch's global RNG if None).

    The seeds are drawn on the generator's device and then moved to ``device`` (default:
    the generator's device; a host→device move does not wait for the device). Each example's
    δ⁰ is a function of its own seed alone (:func:`random_init`), so the draw does not depend
    on the nano-batch size or on which other examples share the batch.
    """
    source = generator.device if generator is not None else torch.device("cpu")
    seeds = torch.randint(0, 2 ** 63 - 1, (n,), generator=generator, device=source)
    return seeds if device is None else seeds.to(device, non_blocking=True)


def random_init(params: Blocks, radii: Blocks, seeds: torch.Tensor) -> Blocks:
    """δ⁰ (Algorithm 1, step 1): per example and block, a uniformly random direction scaled to
    r ~ U(0, ν‖φ_i‖₂).

    Args:
        params: the blocks φ_i (their shapes, device and dtype are used; float32 or float64).
        radii: ν‖φ_i‖₂ per block, from :func:`block_radii`.
        seeds: int64 tensor ``N``, one seed per example (:func:`example_seeds`), on any device.

    Returns ``{name: N × *φ_name.shape}`` on the blocks' device. All numbers come from the
    counter-based generator of :mod:`adaaug.counter_rng`, computed for the whole nano-batch
    at once on the blocks' device and written straight into the returned tensors: with T the
    total number of elements of all blocks (in ``params`` order) and P = ⌈T/2⌉, example n's
    Gaussians are positions 0 … T−1 of stream ``seeds[n]`` (words 0 … P−1, see
    :func:`~adaaug.counter_rng.normals_into`) and its radius fractions ``uniforms(seed_n, P,
    blocks)`` (the next words, one per block). Example n's δ⁰ is therefore a function of
    ``seeds[n]`` alone, bit for bit, whatever else is in the batch; on another device it agrees
    up to the rounding of ``log``/``cos``/``sin``.
    """
    from . import counter_rng

    first = next(iter(params.values()))
    seeds = seeds.to(first.device, non_blocking=True)
    n = len(seeds)
    flat = {k: torch.empty(n, p.numel(), dtype=first.dtype, device=first.device) for k, p in params.items()}
    counter_rng.normals_into(seeds, list(flat.values()))
    total = sum(p.numel() for p in params.values())
    fractions = counter_rng.uniforms(seeds, (total + 1) // 2, len(flat), dtype=first.dtype)  # N × blocks
    delta = {}
    for i, (k, d) in enumerate(flat.items()):
        norm = d.norm(dim=1, keepdim=True).clamp_min_(torch.finfo(d.dtype).tiny)
        d.mul_(fractions[:, i:i + 1].mul(radii[k].to(first.dtype)).div_(norm))
        delta[k] = d.view(n, *params[k].shape)
    return delta


def per_example_norms(delta: Blocks) -> Blocks:
    """‖δ_i‖₂ per example: ``{name: tensor of shape N}``."""
    return {k: d.flatten(1).norm(dim=1) for k, d in delta.items()}


def project_(delta: Blocks, radii: Blocks) -> Blocks:
    """In place: rescale every example's δ_i whose norm exceeds ν‖φ_i‖₂ back onto that sphere.

    A block of radius 0 (all-zero weights) is projected to δ_i = 0; no 0/0 (NaN) arises.
    """
    for k, d in delta.items():
        norm = d.flatten(1).norm(dim=1).clamp_min_(torch.finfo(d.dtype).tiny)
        scale = (radii[k] / norm).clamp_(max=1)  # norm 0: radius/tiny → 1 (or 0 for a zero radius)
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
    """‖δ_i‖₂ / ‖φ_i‖₂ as an ``N × blocks`` tensor (blocks in ``params`` order; 0 for an all-zero block)."""
    norms = per_example_norms(delta)
    return torch.stack([norms[k] / params[k].detach().norm().clamp_min(torch.finfo(norms[k].dtype).tiny)
                        for k in params], dim=1)
