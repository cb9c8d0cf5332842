"""ℓp robust accuracy (AdA paper Section 5, App. E.2).

- CIFAR-10: AutoAttack, standard version (APGD-CE, APGD-T, FAB-T, Square; Croce & Hein 2020), run
  with its authors' reference implementation (the ``pyautoattack`` package, installed by the
  ``protocol`` extra). The paper adds MultiTargeted (Gowal et al. 2019), which is not part of
  AutoAttack, so the numbers here are upper bounds on the paper's protocol.
- ImageNet: PGD, 100 steps, 10 random restarts (:func:`pgd_fooled`, written here; no extra needed).
  An example counts as robust only if no restart fools the model. Step size 2.5·ε/steps
  (Madry et al. 2018).

ε: ℓ∞ 1/255 and 2/255, ℓ2 0.5 and 1.0 (``adaaug.paper``), on [0, 1] images; the model normalises
internally (:func:`adaaug.models.normalized`).

The attacks run inside :func:`preserved_state`: the model is in eval mode and its parameters do not
require gradients (the attacks differentiate with respect to the images only, so no ``.grad`` is
written); afterwards every module's own mode and every parameter's ``requires_grad`` flag are restored.
The global torch RNG is left as it was.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from .. import paper
from ..classifier_checks import describe_gradient_break, eval_logits, evaluated, input_dtype
from ..validation import check_label_range, in_unit_range

NORMS = ("Linf", "L2")
AUTOATTACK_VERSIONS = ("standard", "plus", "rand")
AUTOATTACK_TARGETS = 9  # the standard version's number of target classes for APGD-T and FAB-T
AUTOATTACK_ATTACKS = ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t")


@contextlib.contextmanager
def preserved_state(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and frozen parameters inside; each module's mode, ``requires_grad`` and buffers restored after."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        with evaluated(model):
            for p, _ in flags:
                p.requires_grad_(False)
            yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's logits on float32 images ``x``, given in the model's own dtype (bf16, float64), as float32."""
    dtype = input_dtype(model) or x.dtype
    return eval_logits(model(x if x.dtype == dtype else x.to(dtype)), len(x), model).float()


def _predict(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([_logits(model, x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def _labels(labels: object, n: int | None) -> torch.Tensor:
    """Class-index labels as int64 (a tensor, array or list of integers ≥ 0); ``TypeError``/``ValueError`` otherwise."""
    t = labels if isinstance(labels, torch.Tensor) else torch.as_tensor(labels)
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool or t.dim() != 1:
        raise TypeError(f"labels must be a 1-D sequence of integer class indices, got {t.dtype} of shape "
                        f"{tuple(t.shape)}")
    if len(t) and int(t.min()) < 0:
        raise ValueError(f"labels must be class indices ≥ 0, got {int(t.min())}")
    return t.long()


def _predict_logits_size(model: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad():
        return _logits(model, x).shape[1]


def pgd_fooled(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, norm: str, eps: float, steps: int,
               generator: torch.Generator) -> torch.Tensor:
    """One PGD run from a random start: which examples some iterate misclassifies.

    Maximises the cross-entropy with ``steps`` steps of size 2.5·``eps``/``steps``: ℓ∞ signed-gradient
    steps from a start uniform in the ε-cube; ℓ2 normalised-gradient steps from a random direction at
    a radius uniform in [0, ε]. Every iterate is projected onto the ε-ball around ``x`` and clamped to
    [0, 1]; an example counts as fooled when any iterate (the start included) is misclassified.

    Args:
        model: classifier on [0, 1] images returning logits ``B × classes``; called as it is (the
            caller sets eval mode and freezes the parameters, see :func:`preserved_state`).
        x: float ``B×C×H×W`` in [0, 1] (not modified). y: int64 ``B`` labels.
        norm: ``"Linf"`` or ``"L2"``. eps: radius > 0 in [0, 1] pixel units. steps: ≥ 1.
        generator: draws the random start; on ``x``'s device.

    Returns: bool ``B`` on ``x``'s device. Raises ``RuntimeError`` naming where the model stops the
    gradient with respect to its input.
    """
    n = len(x)
    alpha = 2.5 * eps / steps
    view = (n,) + (1,) * (x.dim() - 1)
    if norm == "Linf":
        delta = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype).mul_(2 * eps).sub_(eps)
    else:
        delta = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        radius = torch.rand(n, generator=generator, device=x.device, dtype=x.dtype).mul_(eps)
        delta.mul_((radius / delta.flatten(1).norm(dim=1).clamp_min(1e-12)).view(view))
    adv = (x + delta).clamp_(0, 1)
    fooled = torch.zeros(n, dtype=torch.bool, device=x.device)
    for _ in range(steps):
        adv.requires_grad_(True)
        with torch.enable_grad():
            logits = _logits(model, adv)
            if not logits.requires_grad:
                where = describe_gradient_break(model, adv.detach()) or "its output does not depend on the images"
                raise RuntimeError(f"PGD needs the gradient of the classifier's loss with respect to its input "
                                   f"images, but classifier {type(model).__name__} does not pass it: {where}")
            (grad,) = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), adv)
        with torch.no_grad():
            fooled |= logits.argmax(1) != y
            if norm == "Linf":
                adv = torch.min(torch.max(adv.detach() + alpha * grad.sign(), x - eps), x + eps)
            else:
                step = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(view)
                delta = adv.detach() + alpha * step - x
                delta.mul_((eps / delta.flatten(1).norm(dim=1).clamp_min(1e-12)).clamp(max=1.0).view(view))
                adv = x + delta
            adv = adv.clamp_(0, 1)
    with torch.no_grad():
        fooled |= _logits(model, adv).argmax(1) != y
    return fooled


def _autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, norm: str, eps: float, version: str,
                attacks: tuple[str, ...] | None, n_classes: int, seed: int, batch_size: int,
                device: torch.device) -> torch.Tensor:
    """The reference AutoAttack's adversarial examples for ``x`` (all correctly classified)."""
    try:
        from pyautoattack import AutoAttack
    except ImportError as err:
        raise ImportError("method='autoattack' needs the reference AutoAttack (the pyautoattack package): "
                          "pip install 'adaaug[protocol]' (or pip install pyautoattack), or use method='pgd' "
                          "(adaaug eval: --attack-method pgd)") from err

    def logits(images: torch.Tensor) -> torch.Tensor:
        return _logits(model, images)

    if attacks is None:
        attack = AutoAttack(logits, norm=norm, eps=eps, version=version, seed=seed, device=device)
    else:  # the reference's custom version, each attack with the standard version's settings
        attack = AutoAttack(logits, norm=norm, eps=eps, version="custom", attacks=list(attacks), seed=seed,
                            device=device)
        attack.apgd.n_restarts = attack.apgd_targeted.n_restarts = attack.fab.n_restarts = 1
        attack.square.n_queries = 5000
    attack.verbose = False
    attack.apgd_targeted.n_target_classes = min(AUTOATTACK_TARGETS, n_classes - 1)
    attack.fab.n_target_classes = min(AUTOATTACK_TARGETS, n_classes - 1)
    tracer = sys.gettrace()  # its check for dynamic defences sets a tracer and then clears any (a debugger's)
    try:
        adv, _ = attack.run_standard_evaluation(x, y, batch_size=batch_size)
    finally:
        sys.settrace(tracer)
    return adv


def robust_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, norm: str, eps: float,
                    method: str = "autoattack", n_classes: int | None = None, steps: int = paper.IMAGENET_PGD_STEPS,
                    restarts: int = paper.IMAGENET_PGD_RESTARTS, version: str = "standard", batch_size: int = 256,
                    seed: int = 0, device: str | torch.device | None = None,
                    attacks: tuple[str, ...] | None = None) -> float:
    """Accuracy (%) under an ℓp attack of radius ``eps``.

    Args:
        model: classifier on [0, 1] images ``B×3×H×W`` returning logits ``B × classes``; its parameters,
            buffers, ``.grad`` and each module's train/eval mode are as they were afterwards.
        images: float ``N×3×H×W`` in [0, 1] (uint8 is divided by 255). labels: int64 ``N``.
        norm: ``"Linf"`` or ``"L2"``. eps: the radius, > 0, in [0, 1] pixel units.
        method: ``"autoattack"`` (the reference AutoAttack, ``version`` ``"standard"`` (default),
            ``"plus"`` or ``"rand"``; needs the ``protocol`` extra) or ``"pgd"`` (``steps`` steps,
            ``restarts`` random restarts, :func:`pgd_fooled`).
        n_classes: classes the model tells apart (default: its output size; AutoAttack needs ≥ 4, ≥ 3 for ``"rand"``): APGD-T
            and FAB-T target the min(9, ``n_classes`` − 1) most likely wrong classes.
        batch_size: images per attack batch (default 256). device: where to attack (default: the model's).
        seed: seeds the attacks' random starts (default 0; the global RNG state is restored afterwards).
        attacks: AutoAttack's attacks to run instead of ``version``'s, in order, each with the standard
            version's settings (names from ``AUTOATTACK_ATTACKS``), e.g. ``("apgd-ce", "apgd-t")``: the
            two that decide almost every example of an undefended model, at a fraction of the cost.

    Raises ``ValueError`` for an unknown norm, method or version, a radius ≤ 0, images that are not
    ``N×3×H×W`` in [0, 1] or do not match the labels, and too few classes for AutoAttack.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be 'Linf' or 'L2', got {norm!r}")
    if method not in ("autoattack", "pgd"):
        raise ValueError(f"method must be 'autoattack' or 'pgd', got {method!r}")
    if method == "autoattack" and version not in AUTOATTACK_VERSIONS:
        raise ValueError(f"version must be one of {AUTOATTACK_VERSIONS}, got {version!r}")
    if attacks is not None and (not attacks or any(a not in AUTOATTACK_ATTACKS for a in attacks)):
        raise ValueError(f"attacks must name one or more of {AUTOATTACK_ATTACKS}, got {attacks!r}")
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    labels = _labels(labels, len(images) if isinstance(images, torch.Tensor) else None)
    if images.ndim != 4 or images.shape[1] != 3 or len(images) != len(labels):
        raise ValueError(f"expected images N×3×H×W and N labels, got {tuple(images.shape)} and "
                         f"{tuple(labels.shape)}")
    if len(images) == 0:
        raise ValueError("no images to attack")
    if steps < 1 or restarts < 1 or batch_size < 1:
        raise ValueError(f"steps, restarts and batch_size must be ≥ 1, got {steps}, {restarts}, {batch_size}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    images = in_unit_range(images, name="images")  # a rounding error of the images' own dtype is clamped
    x = (images.float() / 255 if images.dtype == torch.uint8 else images.float()).to(device)
    y = _labels(labels, len(images)).to(device)
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    if not cuda and torch.cuda.is_available() and torch.cuda.is_initialized():
        cuda = [torch.cuda.current_device()]  # AutoAttack seeds the CUDA generator too, even for a CPU model
    with preserved_state(model), torch.random.fork_rng(devices=cuda):
        check_label_range(int(y.max()), _predict_logits_size(model, x[:1]))  # a wrong label is a wrong number
        robust = _predict(model, x, batch_size) == y
        if method == "autoattack":
            outputs = _predict_logits_size(model, x[:1])
            classes = outputs if n_classes is None else n_classes
            names = attacks if attacks is not None else ("apgd-dlr",) if version == "rand" else ("apgd-t",)
            least = 4 if "apgd-t" in names else 3 if "apgd-dlr" in names else 2  # DLR: 3 logits, targeted 4
            if not least <= classes <= outputs:
                raise ValueError(f"AutoAttack ({', '.join(names) if attacks else version}) needs {least} to {outputs} "
                                 f"classes (the model's outputs), got n_classes={classes}: pass n_classes within "
                                 f"that range, or use method='pgd'")
            idx = robust.nonzero().flatten()
            if len(idx):
                adv = _autoattack(model, x[idx], y[idx], norm=norm, eps=eps, version=version, attacks=attacks,
                                  n_classes=classes, seed=seed, batch_size=batch_size, device=device)
                robust[idx] &= _predict(model, adv, batch_size) == y[idx]
        else:
            generator = torch.Generator(device=device).manual_seed(seed)
            for _ in range(restarts):
                for lo in range(0, len(x), batch_size):
                    idx = torch.arange(lo, min(lo + batch_size, len(x)), device=device)
                    idx = idx[robust[idx]]
                    if len(idx):
                        robust[idx] &= ~pgd_fooled(model, x[idx], y[idx], norm=norm, eps=eps, steps=steps,
                                                   generator=generator)
    return 100.0 * robust.float().mean().item()


def evaluate_attacks(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, method: str = "autoattack",
                     linf: tuple[float, ...] = paper.LINF_EPSILONS, l2: tuple[float, ...] = paper.L2_EPSILONS,
                     **kwargs) -> dict:
    """Robust accuracy (%) for every ε of the protocol.

    Returns ``{"method", "n", "clean_accuracy", "Linf": {"0.00392157": acc, ...}, "L2": {"0.5": acc, ...}}``
    (plus ``"steps"`` and ``"restarts"`` for PGD); ``kwargs`` go to :func:`robust_accuracy`.
    """
    device = kwargs.get("device") or next(model.parameters()).device
    x = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    with preserved_state(model):
        correct = _predict(model, x.to(device), kwargs.get("batch_size", 256)).cpu() == _labels(labels, None)
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
