"""The Jensen–Shannon consistency loss of AugMix (Hendrycks et al., ICLR 2020).

With p_c, p_1, p_2 the softmax of the classifier on the clean image and two AugMix
views, and M = (p_c + p_1 + p_2) / 3 clamped to [1e-7, 1],

    JS = (KL(p_c ‖ M) + KL(p_1 ‖ M) + KL(p_2 ‖ M)) / 3,   each KL averaged over the batch,

and the loss is ``weight · JS`` (λ = 12, the AugMix setting, also used by the AdA paper
when it trains with AugMix, App. E.5). Computed from ``log_softmax`` and ``logsumexp``
so large logits do not overflow in float32.
"""
from __future__ import annotations

import math

import torch

from .. import paper


def _check_logits(*logits: object) -> None:
    for i, t in enumerate(logits):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"logits {i} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"logits {i} must be floating point, got {t.dtype}")
        if t.dim() != 2:
            raise ValueError(f"logits must be N×classes, got shape {tuple(t.shape)} for logits {i}")
    shapes = {tuple(t.shape) for t in logits}  # type: ignore[union-attr]
    if len(shapes) != 1:
        raise ValueError(f"the three logits must have the same shape, got {sorted(shapes)}")


def jsd_loss(logits_clean: torch.Tensor, logits_aug1: torch.Tensor, logits_aug2: torch.Tensor,
             weight: float = paper.AUGMIX_JSD_LAMBDA) -> torch.Tensor:
    """``weight`` × the AugMix Jensen–Shannon divergence of three ``N×classes`` logits.

    Returns a 0-d tensor (float32 for float32/bfloat16/float16 inputs, float64 for
    float64), differentiable with respect to all three inputs. Zero for identical
    distributions (up to the clamp of M, which only acts on probabilities < 1e-7).
    An empty batch gives 0.
    """
    _check_logits(logits_clean, logits_aug1, logits_aug2)
    dtype = torch.float64 if logits_clean.dtype == torch.float64 else torch.float32
    logp = torch.stack([t.to(dtype).log_softmax(dim=1) for t in (logits_clean, logits_aug1, logits_aug2)])
    n = logp.shape[1]
    if n == 0:
        return logp.sum() * 0
    log_m = (torch.logsumexp(logp, dim=0) - math.log(3)).clamp(math.log(paper.AUGMIX_JSD_CLAMP), 0.0)
    kl = (logp.exp() * (logp - log_m.unsqueeze(0))).sum(dim=2)  # 3 × N
    return weight * kl.sum(dim=1).div(n).mean()
