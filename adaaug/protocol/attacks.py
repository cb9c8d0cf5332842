"""ℓp robust accuracy (AdA paper Section 5, App. E.2) with torchattacks.

- CIFAR-10: AutoAttack, standard version (APGD-CE, APGD-T, FAB-T, Square; Croce & Hein 2020).
  The paper adds MultiTargeted (Gowal et al. 2019), which torchattacks does not provide, so the
  numbers here are upper bounds on the paper's protocol.
- ImageNet: PGD, 100 steps, 10 random restarts; an example counts as robust only if no restart
  fools the model. Step size 2.5·ε/steps (Madry et al. 2018).

ε: ℓ∞ 1/255 and 2/255, ℓ2 0.5 and 1.0 (``adaaug.paper``), on [0, 1] images; the model normalises
internally (:func:`adaaug.models.normalized`).

torchattacks puts the model in eval mode and, afterwards, calls ``model.train()`` if it was training,
which switches every submodule to train mode (frozen BatchNorm layers included). The attacks here
run inside :func:`preserved_state`, which restores every module's own mode and every parameter's
``requires_grad`` flag, and leaves the global torch RNG as it was.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from .. import paper
from ..classifier_checks import eval_logits
from ..validation import in_unit_range


@contextlib.contextmanager
def preserved_state(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and frozen parameters inside; each module's mode and ``requires_grad`` restored after."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in flags:
            p.requires_grad_(flag)


def _predict(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([eval_logits(model(x[i:i + batch_size]), len(x[i:i + batch_size]), model).argmax(1)
                          for i in range(0, len(x), batch_size)])


def robust_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, norm: str, eps: float,
                    method: str = "autoattack", n_classes: int | None = None, steps: int = paper.IMAGENET_PGD_STEPS,
                    restarts: int = paper.IMAGENET_PGD_RESTARTS, version: str = "standard", batch_size: int = 256,
                    seed: int = 0, device: str | torch.device | None = None) -> float:
    """Accuracy (%) under an ℓp attack of radius ``eps``.

    Args:
        model: classifier on [0, 1] images ``B×3×H×W``; left in the mode it came in.
        images: float ``N×3×H×W`` in [0, 1] (uint8 is divided by 255). labels: int64 ``N``.
        norm: ``"Linf"`` or ``"L2"``. eps: the radius, in [0, 1] pixel units.
        method: ``"autoattack"`` (torchattacks.AutoAttack, ``version``) or ``"pgd"`` (``steps``
            steps, ``restarts`` random restarts).
        n_classes: number of classes for AutoAttack's targeted attacks (default: the model's output size).
        seed: seeds the attacks' random starts (global RNG state restored afterwards).
    """
    import torchattacks

    if norm not in ("Linf", "L2"):
        raise ValueError(f"norm must be 'Linf' or 'L2', got {norm!r}")
    if method not in ("autoattack", "pgd"):
        raise ValueError(f"method must be 'autoattack' or 'pgd', got {method!r}")
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    if images.ndim != 4 or images.shape[1] != 3 or len(images) != len(labels):
        raise ValueError(f"expected images N×3×H×W and N labels, got {tuple(images.shape)} and "
                         f"{tuple(labels.shape)}")
    if len(images) == 0:
        raise ValueError("no images to attack")
    if steps < 1 or restarts < 1:
        raise ValueError(f"steps and restarts must be ≥ 1, got {steps}, {restarts}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    x = (images.float() / 255 if images.dtype == torch.uint8 else images.float()).to(device)
    y = labels.long().to(device)
    x = in_unit_range(x, name="images")  # rounding error outside [0, 1] is clamped, anything else refused
    with preserved_state(model), torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        robust = _predict(model, x, batch_size) == y
        if method == "autoattack":
            classes = n_classes or int(_predict_logits_size(model, x[:1]))
            attack = torchattacks.AutoAttack(model, norm=norm, eps=eps, version=version, n_classes=classes, seed=seed)
            attacks = [attack]
        else:
            cls = torchattacks.PGD if norm == "Linf" else torchattacks.PGDL2
            attacks = [cls(model, eps=eps, alpha=2.5 * eps / steps, steps=steps, random_start=True)] * restarts
        for attack in attacks:
            for lo in range(0, len(x), batch_size):
                idx = torch.arange(lo, min(lo + batch_size, len(x)), device=device)
                idx = idx[robust[idx]]
                if len(idx) == 0:
                    continue
                adv = attack(x[idx], y[idx])
                model.eval()  # torchattacks may have switched modes; keep evaluating in eval mode
                robust[idx] &= _predict(model, adv, batch_size) == y[idx]
    return 100.0 * robust.float().mean().item()


def _predict_logits_size(model: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad():
        return eval_logits(model(x), len(x), model).shape[1]


def evaluate_attacks(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, method: str = "autoattack",
                     linf: tuple[float, ...] = paper.LINF_EPSILONS, l2: tuple[float, ...] = paper.L2_EPSILONS,
                     **kwargs) -> dict:
    """Robust accuracy (%) for every ε of the protocol.

    Returns ``{"method", "n", "clean_accuracy", "Linf": {"0.00392157": acc, ...}, "L2": {"0.5": acc, ...}}``;
    ``kwargs`` go to :func:`robust_accuracy`.
    """
    device = kwargs.get("device") or next(model.parameters()).device
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    with preserved_state(model):
        correct = _predict(model, x.to(device), kwargs.get("batch_size", 256)).cpu() == labels.long()
    out: dict = {"method": method, "n": int(len(images)), "clean_accuracy": 100.0 * correct.float().mean().item(),
                 "Linf": {}, "L2": {}}
    if method == "pgd":
        out.update(steps=kwargs.get("steps", paper.IMAGENET_PGD_STEPS),
                   restarts=kwargs.get("restarts", paper.IMAGENET_PGD_RESTARTS))
    for norm, epsilons in (("Linf", linf), ("L2", l2)):
        for eps in epsilons:
            out[norm][f"{eps:.6g}"] = robust_accuracy(model, images, labels, norm=norm, eps=eps, method=method,
                                                      **kwargs)
    return out
