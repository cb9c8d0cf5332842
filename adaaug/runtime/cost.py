"""What an AdA training step costs at least: the floor of ``adaaug bench``, and a quick estimate of it.

An AdA step with M ascent steps cannot do less than M + 1 forward+backward passes of the classifier
(M for the ascent, one for the training step) and M forward+backward passes of the corruption network:
the *floor* :func:`floor_seconds`. ``adaaug bench`` measures both passes at full batch size and reports
the step against this floor (1.0–1.8 times it on the machines of ``benchmarks/``); ``adaaug train``
times the two passes on a few images before it starts (:func:`estimate_ada_step`) and says so when a
step will be slow, long before the first step has finished.

Only torch is imported (lazily); the modules timed are passed in, and are left as they were (copies run).
"""
from __future__ import annotations

import copy
import time
from typing import Callable


def floor_seconds(classifier_fwd_bwd_s: float, backbone_fwd_bwd_s: float, steps: int) -> float:
    """``(M + 1) · classifier + M · backbone`` forward+backward seconds: the least an AdA step with M steps takes."""
    if steps < 0:
        raise ValueError(f"steps (M) must be ≥ 0, got {steps}")
    return (steps + 1) * float(classifier_fwd_bwd_s) + steps * float(backbone_fwd_bwd_s)


def _timed(fn: Callable[[], None], sync: Callable[[], None] | None) -> float:
    """Seconds of one call of ``fn`` after one warm-up call (first-call allocations are not counted)."""
    fn()
    if sync is not None:
        sync()
    start = time.perf_counter()
    fn()
    if sync is not None:
        sync()
    return time.perf_counter() - start


def estimate_ada_step(classifier, backbone, *, batch: int, image_shape: tuple[int, int, int], steps: int,
                      probe: int = 4, device=None, sync: Callable[[], None] | None = None) -> dict[str, float]:
    """The floor of one AdA step of ``batch`` images, from forward+backward passes timed on ``probe`` images.

    Copies of ``classifier`` (train mode, gradients of its parameters) and ``backbone`` (gradients of its
    weights, as AdA takes them) each run twice on ``min(probe, batch)`` constant images; the second run
    is timed and scaled linearly to ``batch``. The modules passed in, their gradients, BatchNorm
    statistics and every random generator are left untouched. On a GPU, where small batches do not fill
    the device, the figure is low; it is meant to warn about slow steps, not to replace the measured time.

    Args:
        classifier, backbone: ``nn.Module`` s on ``device`` taking ``(n, C, H, W)`` float images in [0, 1].
        batch: images per step (per process). image_shape: ``(C, H, W)`` of a training image.
        steps: M, AdA's ascent steps. probe: images per timed pass. sync: waits for queued device work.

    Returns:
        ``{"classifier_fwd_bwd_s", "backbone_fwd_bwd_s", "floor_s", "probe"}``: seconds at ``batch`` images.
    """
    import torch

    n = max(1, min(int(probe), int(batch)))
    x = torch.full((n, *image_shape), 0.5, device=device)
    net = copy.deepcopy(classifier).train()
    corrupt = copy.deepcopy(backbone).eval()
    weights = [p.requires_grad_(True) for p in corrupt.parameters()]

    def classifier_pass() -> None:
        net.zero_grad(set_to_none=True)
        net(x).float().logsumexp(1).sum().backward()

    def backbone_pass() -> None:
        out = corrupt(x)
        if weights:
            torch.autograd.grad(out.float().square().mean(), weights)

    scale = batch / n
    c, b = _timed(classifier_pass, sync) * scale, _timed(backbone_pass, sync) * scale
    return {"classifier_fwd_bwd_s": c, "backbone_fwd_bwd_s": b, "floor_s": floor_seconds(c, b, steps), "probe": n}
