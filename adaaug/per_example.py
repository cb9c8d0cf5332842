"""Per-example weights c_{φ+δ⁽ⁿ⁾}(x⁽ⁿ⁾) without ``vmap`` for convolutional backbones (App. B.1).

AdA runs the corruption network once per nano-batch with one weight set per example. The
generic way is ``vmap(functional_call)`` over the examples, which turns every convolution
into a grouped convolution and every other op into a batched one. For a network whose
parameters all sit in plain ``nn.Conv2d`` / ``nn.ConvTranspose2d`` / ``nn.Linear`` layers,
this module does the same computation directly: :func:`per_example_call` swaps the stacked
per-example weights (``N × *φ.shape``) into the module (:func:`adaaug._reparam.swapped`, which
handles tied weights and leaves the module as found) and, while
the module runs on the whole nano-batch, intercepts the convolution and linear calls that
receive such a weight and computes them per example:

- a convolution as ONE grouped convolution over the nano-batch (groups = N · groups), the
  layout ``vmap`` uses too, but without ``vmap``'s per-op wrapping;
- a 1×1 convolution (stride 1, no padding) and a linear layer as a batched matrix product;
- a transposed convolution as a grouped transposed convolution.

Every op without parameters (activations, pooling, resizing, the VQ-VAE quantiser) runs on
the nano-batch as in a shared-weight pass. The result equals ``vmap(functional_call)`` (and a
Python loop over examples) up to floating-point summation order.

:func:`supports` says whether a module qualifies: every parameter must belong to one of the
three layer types above (exact types, as ``weight`` / ``bias``, no parametrizations or forward
hooks), and the module must be one of the package's backbones (``adaaug.backbones``) or mark itself
with ``per_example_layers = True`` to state that its own ``forward`` uses its parameters only by
calling those layers. Others go through ``vmap`` (:func:`vmap_call`). :class:`PerExampleBackbone`
picks the path and forms φ + δ⁽ⁿ⁾ in storage reused from call to call.

Weights are keyed by ``named_parameters()`` names: a tensor tied under several names (a submodule
used twice, ``dec.weight = enc.weight``) has one entry, and its per-example value is used under every
name. Random operations in the module's ``forward`` draw independently for each example on both
paths (on the direct path they run on the whole nano-batch; ``vmap`` runs with
``randomness="different"``), from torch's global generator.

On a 2-core x86_64 CPU (torch 2.14.1, one thread, batch 32 in nano-batches of 8) the direct
path with reused storage took 1.04× (EDSR) to 2.2× (VQ-VAE) the time of one shared-weight pass,
against 1.08× to 2.35× for ``vmap``; ``benchmarks/README.md`` has the figures and what else was
tried.
"""
from __future__ import annotations

import threading
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ._reparam import TensorSlots, swapped

_LAYERS = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def supports(module: nn.Module) -> bool:
    """True when :func:`per_example_call` computes ``module`` exactly (see the module doc)."""
    trusted = type(module).__module__.startswith("adaaug.backbones") or getattr(module, "per_example_layers", False)
    if not trusted:
        return False
    for m in module.modules():
        own = [k for k, p in m._parameters.items() if p is not None]
        if own and (type(m) not in _LAYERS or getattr(m, "parametrizations", None) is not None
                    # hooks (the deprecated weight_norm / spectral_norm) compute the weight from other tensors
                    or not set(own) <= {"weight", "bias"} or m._forward_pre_hooks or m._forward_hooks):
            return False
    return True


def _pair(v):
    return v if isinstance(v, str) else (v, v) if isinstance(v, int) else tuple(v)


def _conv2d(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, stride=1, padding=0, dilation=1,
            groups: int = 1) -> torch.Tensor:
    """Per-example ``F.conv2d``: x ``N×C×H×W``, w ``N×Co×C/g×k×k``, b ``N×Co`` or None."""
    n = x.shape[0]
    if groups == 1 and w.shape[-2:] == (1, 1) and _pair(stride) == (1, 1) and _pair(padding) in {(0, 0), "valid"}:
        h, wd = x.shape[-2:]
        flat = x.reshape(n, x.shape[1], h * wd)
        w2 = w.reshape(n, w.shape[1], w.shape[2])
        out = torch.bmm(w2, flat) if b is None else torch.baddbmm(b.unsqueeze(-1), w2, flat)
        return out.view(n, w.shape[1], h, wd)
    out = F.conv2d(x.reshape(1, n * x.shape[1], *x.shape[2:]), w.reshape(n * w.shape[1], *w.shape[2:]),
                   None if b is None else b.reshape(-1), stride, padding, dilation, n * groups)
    return out.view(n, w.shape[1], *out.shape[2:])


def _conv_transpose2d(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, stride=1, padding=0,
                      output_padding=0, groups: int = 1, dilation=1) -> torch.Tensor:
    """Per-example ``F.conv_transpose2d``: x ``N×C×H×W``, w ``N×C×Co/g×k×k``, b ``N×Co`` or None."""
    n = x.shape[0]
    out = F.conv_transpose2d(x.reshape(1, n * x.shape[1], *x.shape[2:]), w.reshape(n * w.shape[1], *w.shape[2:]),
                             None if b is None else b.reshape(-1), stride, padding, output_padding, n * groups,
                             dilation)
    return out.view(n, -1, *out.shape[2:])


def _linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """Per-example ``F.linear``: x ``N×…×I``, w ``N×O×I``, b ``N×O`` or None."""
    n = x.shape[0]
    flat = x.reshape(n, -1, x.shape[-1])
    out = torch.bmm(flat, w.transpose(1, 2)) if b is None else torch.baddbmm(b.unsqueeze(1), flat, w.transpose(1, 2))
    return out.view(*x.shape[:-1], w.shape[1])


def _arg(args: tuple, kwargs: dict, i: int, name: str, default=None):
    return args[i] if len(args) > i else kwargs.get(name, default)


class _PerExampleMode(TorchFunctionMode):
    """Routes conv/linear calls whose weight carries an extra leading example dimension."""

    _KERNELS: dict[Callable, tuple[int, Callable]] = {
        F.conv2d: (4, _conv2d), torch.conv2d: (4, _conv2d),
        F.conv_transpose2d: (4, _conv_transpose2d), torch.conv_transpose2d: (4, _conv_transpose2d),
        F.linear: (2, _linear), torch._C._nn.linear: (2, _linear),
    }

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        entry = self._KERNELS.get(func)
        if entry is not None:
            dims, kernel = entry
            w = _arg(args, kwargs, 1, "weight")
            if isinstance(w, torch.Tensor) and w.dim() == dims + 1:
                return kernel(*args, **kwargs)
        return func(*args, **kwargs)


_NEED = "an image tensor of the input's shape N×C×H×W (values are clamped to [0, 1])"


def _check_tensor(module: nn.Module, out: object) -> None:
    if not isinstance(out, torch.Tensor):
        hint = ("; wrap it in a module whose forward returns only the image (e.g. `return self.inner(x)[0]` if "
                "the image comes first)") if isinstance(out, (tuple, list, dict)) else ""
        raise TypeError(f"backbone {type(module).__name__} returned a {type(out).__name__}, but a corruption "
                        f"backbone must return {_NEED}{hint}")


def check_output(module: nn.Module, out: object, x: torch.Tensor) -> torch.Tensor:
    """``out`` if it is a floating tensor of ``x``'s shape, else a TypeError/ValueError naming ``module``.

    A corruption backbone must map images to images: ``N×C×H×W`` in, the same shape out (values
    are clamped to [0, 1] afterwards). One ``isinstance`` and one shape comparison, no device sync.
    """
    need, name = _NEED, type(module).__name__
    _check_tensor(module, out)
    if out.shape != x.shape:
        got, want = "×".join(map(str, out.shape[1:])), "×".join(map(str, x.shape[1:]))
        raise ValueError(f"backbone {name} returned images of shape {got} for inputs of shape {want} (per example); "
                         f"a corruption backbone must return {need}: keep the spatial size (padding) and the "
                         f"number of channels, or resize its output back to the input's size")
    if not out.is_floating_point():
        raise TypeError(f"backbone {name} returned {out.dtype} images; a corruption backbone must return {need}, "
                        f"floating point and differentiable with respect to its weights")
    return out


def per_example_call(module: nn.Module, weights: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                     x: torch.Tensor, slots: TensorSlots | None = None) -> torch.Tensor:
    """``module`` applied to example n of ``x`` with parameters ``weights[k][n]``, for every n.

    Args:
        module: a module for which :func:`supports` is true.
        weights: ``{parameter name: N × *φ.shape}``, every parameter of ``module`` (names as
            ``named_parameters()``; a tied weight under its first name only, see :mod:`adaaug._reparam`).
        buffers: ``{buffer name: tensor}``, shared by all examples.
        x: inputs ``N × …``.
        slots: ``TensorSlots(module)``, if already built.

    Returns the stacked outputs ``N × …`` (whatever ``module`` returns). The module is left as
    found (same Parameter objects); random operations in its ``forward`` draw independently for
    each example (they run on the whole nano-batch).
    """
    slots = slots if slots is not None else TensorSlots(module)
    if x.shape[0] == 0:  # a grouped convolution needs at least one group
        with swapped(slots, buffers):
            return module(x)
    with _PerExampleMode(), swapped(slots, {**weights, **buffers}):
        return module(x)


def vmap_call(module: nn.Module, weights: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
              x: torch.Tensor, slots: TensorSlots | None = None) -> torch.Tensor:
    """The same as :func:`per_example_call` for any module, through ``vmap``.

    Random operations in the module's ``forward`` (``torch.rand_like``, dropout in training mode)
    draw independently for each example (``vmap``'s ``randomness="different"``), as on the direct path,
    from torch's global generator. The module must return one tensor (else a TypeError naming it).
    """
    slots = slots if slots is not None else TensorSlots(module)

    def one(w: dict[str, torch.Tensor], xi: torch.Tensor) -> torch.Tensor:
        with swapped(slots, {**w, **buffers}):
            out = module(xi.unsqueeze(0))
        _check_tensor(module, out)
        return out.squeeze(0)
    if x.shape[0] == 0:
        with swapped(slots, buffers):
            return module(x)
    return torch.func.vmap(one, randomness="different")(weights, x)


class _AddInto(torch.autograd.Function):
    """φ + δ written into ``out`` (no fresh allocation); the gradient passes to δ unchanged."""

    @staticmethod
    def forward(ctx, delta: torch.Tensor, phi: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        torch.add(phi, delta, out=out)
        # a detached alias shares out's version counter: if a later call overwrites ``out`` while a
        # graph that saved this tensor is still alive, its backward raises instead of using stale weights
        return out.detach()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None, None


class PerExampleBackbone:
    """Runs one backbone with per-example weights φ + δ⁽ⁿ⁾ (the work of every AdA step).

    Picks :func:`per_example_call` when :func:`supports` says so, else :func:`vmap_call`.
    The per-example weights φ + δ⁽ⁿ⁾ (``N ×`` the backbone's size) are written into storage
    kept from call to call (one set per device, dtype and thread, as large as the largest
    nano-batch seen), which on a CPU saves the page faults of a fresh allocation of that size
    on every step. The gradient with respect to δ is that of the weights. A graph built by
    one call must be used (or dropped) before the next call on the same thread: the storage
    is overwritten, and a stale backward raises a RuntimeError instead of using wrong weights.
    """

    def __init__(self, module: nn.Module, slots: TensorSlots | None = None) -> None:
        self.module = module
        self.direct = supports(module)
        self.slots = slots if slots is not None else TensorSlots(module)
        self._storage: dict[tuple, dict[str, torch.Tensor]] = {}

    def weights(self, params: dict[str, torch.Tensor], delta: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{k: φ_k + δ_k}`` (``N × *φ_k.shape``), differentiable with respect to δ."""
        first = next(iter(params.values()))
        n = next(iter(delta.values())).shape[0]
        key = (first.device, first.dtype, threading.get_ident())
        store = self._storage.get(key)
        if store is None or next(iter(store.values())).shape[0] < n:
            store = self._storage[key] = {k: torch.empty(n, *p.shape, device=p.device, dtype=p.dtype)
                                          for k, p in params.items()}
        return {k: _AddInto.apply(delta[k], p, store[k][:n]) for k, p in params.items()}

    def __call__(self, x: torch.Tensor, delta: dict[str, torch.Tensor], params: dict[str, torch.Tensor],
                 buffers: dict[str, torch.Tensor]) -> torch.Tensor:
        """c_{φ+δ⁽ⁿ⁾}(x⁽ⁿ⁾) for every n (not clamped); x ``N×…``, δ ``{k: N × *φ_k.shape}``."""
        call = per_example_call if self.direct else vmap_call
        return call(self.module, self.weights(params, delta), buffers, x, self.slots)
