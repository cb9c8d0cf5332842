"""What AdA needs of the classifier: logits it can read, and a gradient with respect to its input.

:func:`classifier_logits` picks and checks the logits in a classifier's output (``output_fn``), so
that a classifier returning ``(logits, features)``, a dict or a wrongly shaped tensor gets an error
naming it and the fix instead of a failure deep inside the loss.

Where a classifier stops the gradient with respect to its input:
AdA (Algorithm 1, step 2) differentiates the classifier's loss with respect to the backbone's
weight perturbation δ, so the gradient must flow from the logits back through the classifier
to its input images. A ``torch.no_grad()`` block, a ``.detach()`` or a round trip through numpy
inside ``forward`` breaks that, and autograd then says only "element 0 of tensors does not require
grad". :func:`describe_gradient_break` reruns the classifier once, with forward hooks on every
submodule, and names the first submodule whose input carries a gradient but whose output does not.
It runs only after such a failure (:func:`gradient_error`): the normal path never pays for it.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
from torch import nn


def _tensors(value: Any) -> list[torch.Tensor]:
    """The tensors in a (possibly nested) tuple/list/dict output."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _carries_grad(value: Any) -> bool:
    return any(t.requires_grad for t in _tensors(value) if t.is_floating_point())


def describe_gradient_break(model: nn.Module, images: torch.Tensor,
                            output_fn: Callable[[Any], torch.Tensor] | None = None) -> str | None:
    """``None`` when the output of ``model`` on ``images`` is differentiable with respect to them, else a
    sentence naming where the gradient stops.

    ``images``: a batch in the classifier's input dtype (not modified). The model runs once in the mode it
    is in; its parameters' ``.grad`` are not touched (the gradient is taken with respect to the images only).
    """
    x = images.detach().clone().requires_grad_(True)
    calls: list[tuple[str, nn.Module, bool, bool, str | None]] = []
    names = {id(m): name for name, m in model.named_modules(remove_duplicate=False)}

    def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
        mode = ("torch.inference_mode()" if torch.is_inference_mode_enabled() else
                "torch.no_grad()" if not torch.is_grad_enabled() else None)
        calls.append((names.get(id(module), "?"), module, _carries_grad(inputs), _carries_grad(output), mode))

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.enable_grad():
            out = model(x)
            out = output_fn(out) if output_fn is not None else out
            flowing = [t for t in _tensors(out) if t.requires_grad]
            if flowing and torch.autograd.grad(sum(t.float().sum() for t in flowing), x, allow_unused=True)[0] \
                    is not None:
                return None
    except RuntimeError as err:  # e.g. an inference tensor saved for backward: say where it came from
        if "Inference tensors" not in str(err):
            raise
    finally:
        for h in handles:
            h.remove()
    for name, module, grad_in, grad_out, mode in calls:
        if module is model or not grad_in or grad_out:
            continue
        why = f"it ran under {mode}" if mode else "its output is detached from its input"
        return f"submodule {name!r} ({type(module).__name__}) returns an output without a gradient ({why})"
    return (f"{type(model).__name__}.forward drops it outside its submodules (a torch.no_grad() block, .detach(), "
            f".data, or a conversion to numpy)")


def describe(value: Any) -> str:
    """A short description of a value for error messages: its type and the shapes of the tensors it holds."""
    def one(v: Any) -> str:
        return f"Tensor {'×'.join(map(str, v.shape)) or 'scalar'}" if isinstance(v, torch.Tensor) else type(v).__name__
    if isinstance(value, (tuple, list)):
        inner = ", ".join(one(v) for v in value[:4]) + (", ..." if len(value) > 4 else "")
        return f"a {type(value).__name__} of {len(value)} ({inner})"
    if isinstance(value, dict):
        return f"a {type(value).__name__} with keys {list(value)[:6]}"
    return one(value) if isinstance(value, torch.Tensor) else f"a {type(value).__name__}"


def _output_fn_hint(out: Any) -> str:
    """An ``output_fn`` that would pick the logits from ``out``."""
    if isinstance(out, dict):
        key = "logits" if "logits" in out else next(iter(out), "logits")
        return f"output_fn=lambda out: out[{key!r}]"
    if hasattr(out, "logits"):
        return "output_fn=lambda out: out.logits"
    return "output_fn=lambda out: out[0] when the logits come first"


def classifier_logits(out: Any, n: int, model: nn.Module, output_fn: Callable[[Any], torch.Tensor] | None = None,
                      *, default_loss: bool = True, fix: str | None = None) -> torch.Tensor:
    """The logits in ``model``'s output ``out`` for ``n`` images (through ``output_fn``); no host sync.

    Raises ``TypeError`` when they are not one tensor, ``ValueError`` when they do not have ``n`` rows
    (or, for the default cross-entropy, are not ``n × classes``), naming the classifier and the fix.
    ``fix``: what to tell a caller that has no ``output_fn`` (evaluation, attacks); default: pass one.
    """
    name = type(model).__name__
    if output_fn is not None:
        out = output_fn(out)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"output_fn returned {describe(out)} for classifier {name}; it must return the logits "
                            f"as one tensor")
    elif not isinstance(out, torch.Tensor):
        how = fix or f"pass output_fn= to pick them, e.g. {_output_fn_hint(out)}"
        raise TypeError(f"classifier {name} returned {describe(out)}; its logits are needed as one tensor: {how}")
    if default_loss and (out.dim() != 2 or out.shape[0] != n):
        how = fix or "reshape them (in the model or with output_fn=), or pass a loss_fn= that takes this shape"
        raise ValueError(f"classifier {name} returned shape {tuple(out.shape)} for {n} images; logits "
                         f"{n} × classes are needed: {how}")
    if default_loss and out.shape[1] == 1:
        how = fix or ("for a binary classifier pass loss_fn= (binary cross-entropy on the one logit, e.g. "
                      "lambda z, y: F.binary_cross_entropy_with_logits(z.squeeze(1), y.float(), reduction='none'))")
        raise ValueError(f"classifier {name} returns one output per image: its argmax is always class 0 and "
                         f"cross-entropy over a single class is always 0 (no gradient); {how}, or return one logit "
                         f"per class")
    if out.dim() == 0 or out.shape[0] != n:
        raise ValueError(f"classifier {name} returned shape {tuple(out.shape)} for {n} images; AdA needs one row of "
                         f"outputs per image ({n} rows)")
    return out


def gradient_error(err: RuntimeError, model: nn.Module, images: torch.Tensor,
                   output_fn: Callable[[Any], torch.Tensor] | None, backbone: str) -> RuntimeError:
    """The error to raise when autograd could not differentiate AdA's loss with respect to δ.

    ``err``: autograd's error (returned unchanged when it is of another kind); ``images``: the
    classifier's input batch. Says whether the classifier or the backbone stopped the gradient, and where.
    """
    text = str(err)
    if not any(k in text for k in ("does not require grad", "not been used in the graph",
                                   "not have been used in the graph", "Inference tensors")):
        return err
    where = describe_gradient_break(model, images, output_fn)
    if where is not None:
        return RuntimeError(
            f"AdA needs the gradient of the classifier's loss with respect to its input images, but classifier "
            f"{type(model).__name__} does not pass it: {where}. Run the classifier's forward with gradients enabled "
            f"(AdA never writes its parameters' .grad and restores its mode)")
    return RuntimeError(
        f"AdA needs the gradient of the classifier's loss with respect to the weights of backbone {backbone!r}, but "
        f"its output does not depend on them through autograd (a torch.no_grad() or torch.inference_mode() block, "
        f".detach() or a non-differentiable step in its forward); make its forward differentiable")


EVAL_FIX = ("wrap the model so that its forward returns the logits, N × classes (e.g. a module whose forward is "
            "`return model(x)[0]`)")


def eval_logits(out: Any, n: int, model: nn.Module) -> torch.Tensor:
    """:func:`classifier_logits` for evaluation and attacks, which take no ``output_fn``: logits ``n × classes``."""
    return classifier_logits(out, n, model, fix=EVAL_FIX)


def check_live_classifier(model: nn.Module | None) -> None:
    """Raise ``RuntimeError`` when AdA cannot attack the live classifier: a copy without one, or a call inside a
    ``DataLoader`` worker process (whose classifier is a copy made when the worker started)."""
    where = ("AdA belongs in the training step, on the batch the DataLoader returns, where it attacks the model "
             "being trained")
    if model is None:
        raise RuntimeError(f"this AdversarialAugment is a copy (pickle, copy.deepcopy or torch.save), and copies leave "
                           f"the classifier behind; give it the live model with `ada.model = model`. {where}")
    from torch.utils.data import get_worker_info

    if get_worker_info() is not None:
        raise RuntimeError(f"AdversarialAugment was called inside a DataLoader worker process (a collate_fn or "
                           f"dataset transform with num_workers > 0), where the classifier is a stale copy made when "
                           f"the worker started. {where}; or use num_workers=0")


def input_dtype(model: nn.Module) -> torch.dtype | None:
    """dtype of the model's first floating parameter (``None`` without one): the dtype its input is cast to."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), None)


@contextmanager
def evaluated(*modules: nn.Module, buffers: bool = True) -> Iterator[None]:
    """Eval mode inside the block; on exit every submodule's train/eval flag and every buffer as on entry.

    ``buffers=False`` restores the flags only, for modules whose forward runs on copies of their
    buffers anyway (AdA's backbones, :mod:`adaaug.corruptor`).

    A forward that writes its own buffers (a counter, a cache, BatchNorm statistics after it calls
    ``self.train()``) would otherwise leave them changed. Every buffer's values are copied back through
    ``.data`` (no device synchronisation, and no version-counter bump, so an autograd graph of the user's
    that saved a buffer stays valid; BatchNorm's kernels update running statistics without bumping it
    either, so versions cannot tell what changed); buffers replaced by other objects get their original
    objects back. Cost: one copy of the buffers (BatchNorm statistics: kilobytes) each way.
    """
    modes = [(m, m.training) for module in modules for m in module.modules()]
    # buffer tables of plain modules (a TorchScript module's is a wrapper that cannot be replaced: its values are
    # restored below all the same)
    tables = [(m._buffers, dict(m._buffers)) for module in modules for m in module.modules()
              if buffers and type(m._buffers) is dict and m._buffers]
    kept = list({id(b): b for module in modules for b in module.buffers()}.values()) if buffers else []
    saved = [b.detach().clone() for b in kept]
    try:
        for module in modules:
            module.eval()
        yield
    finally:
        for m, flag in modes:
            m.training = flag
        for table, original in tables:
            for key in [k for k in table if k not in original]:
                del table[key]
            table.update(original)
        with torch.no_grad():
            for b, value in zip(kept, saved):
                b.data.copy_(value)
