"""One corruption network prepared for AdA: frozen weights φ, per-block radii ν‖φ_i‖₂ and step size η.

:class:`Corruptor` caches φ and the radii per device and dtype and runs c_{φ+δ⁽ⁿ⁾}(x⁽ⁿ⁾) for a
nano-batch with one weight set per example (:mod:`adaaug.per_example`). Used by
:class:`adaaug.transform.AdversarialAugment`.

What a backbone must be: a module mapping images ``N×C×H×W`` to one floating tensor of the same
shape (values are clamped to [0, 1]); a tuple, a dict or another shape is a TypeError/ValueError
naming the backbone's class. Its blocks are its distinct parameter tensors: a weight tied under
several names (a submodule used twice, ``dec.weight = enc.weight``) is one block with one δ⁽ⁿ⁾ and
one radius, used by every layer that shares it; the module keeps its own Parameters, buffers and
values (:mod:`adaaug._reparam`). Random operations in its ``forward`` draw independently for each
example, from torch's global generator (seed it with ``torch.manual_seed`` for reproducibility).
"""
from __future__ import annotations

import torch
from torch import nn

from ._reparam import TensorSlots
from .per_example import PerExampleBackbone, check_output
from .perturb import Blocks, block_radii, default_step_size
from .validation import check_positive


class Corruptor:
    """One backbone with its frozen weights, per-block radii and step size, cached per device.

    The backbone is used, not copied: if its weights change after this was built (in place, as by
    ``load_state_dict``, or by replacing a layer or a Parameter), the next :meth:`state` takes them
    up, with new radii (and a new default step size).
    """

    def __init__(self, name: str, module: nn.Module, nu: float, step_size: float | None, step_scale: float,
                 in_channels: int | None, multiple_of: int) -> None:
        self.name, self.module = name, module
        self.in_channels, self.multiple_of = in_channels, multiple_of
        self.nu, self._step_size, self._step_scale = nu, step_size, step_scale
        self._prepare()

    def _prepare(self) -> None:
        """Read the backbone: block names, radii, step size; drop what was cached for its old weights."""
        slots = TensorSlots(self.module)
        # one entry per tensor: a weight tied under several names is one block, perturbed once
        params = {k: p.detach() for k, p in slots.params.items()}
        if not params:
            raise ValueError(f"backbone {self.name!r} has no parameters to perturb")
        self.block_names = list(params)
        radii = block_radii(params, self.nu)
        given = self._step_size
        self.step_size = (given if given is not None else default_step_size(radii)) * self._step_scale
        self._cache: dict[tuple, tuple[Blocks, Blocks, Blocks]] = {}
        self._slots, self._runner = slots, PerExampleBackbone(self.module, slots)

    def state(self, device: torch.device, dtype: torch.dtype) -> tuple[Blocks, Blocks, Blocks]:
        """(params, buffers, radii) on ``device``; floating tensors in ``dtype``."""
        if self._slots.changed():
            self._prepare()
        key = (device, dtype)
        if key not in self._cache:
            def move(t: torch.Tensor, copy: bool = False) -> torch.Tensor:
                return t.detach().to(device=device, dtype=dtype if t.is_floating_point() else t.dtype, copy=copy)
            params = {k: move(p) for k, p in self._slots.params.items()}
            # copies: a forward that writes into a buffer must not reach the backbone's own
            buffers = {k: move(b, copy=True) for k, b in self._slots.buffers.items()}
            self._cache[key] = (params, buffers, block_radii(params, self.nu))
        return self._cache[key]

    def corrupt(self, x: torch.Tensor, delta: Blocks, params: Blocks, buffers: Blocks) -> torch.Tensor:
        """c_{φ+δ⁽ⁿ⁾}(x⁽ⁿ⁾) for every example n, clamped to [0, 1]; ``x``: n×C×H×W.

        Convolutional backbones run without ``vmap`` (:mod:`adaaug.per_example`); a graph from
        one call must be differentiated before the next call (the weight storage is reused).
        """
        return check_output(self.module, self._runner(x, delta, params, buffers), x).clamp(0, 1)


def backbone_list(backbone) -> list:
    """``backbone=`` of :class:`~adaaug.transform.AdversarialAugment` as a list of names and modules."""
    from .backbones import PAPER_BACKBONES

    if isinstance(backbone, str):
        return list(PAPER_BACKBONES) if backbone == "all" else [backbone]
    if isinstance(backbone, nn.Module):
        return [backbone]
    if isinstance(backbone, (list, tuple)) and backbone:
        return list(backbone)
    raise TypeError(f"backbone must be a name, an nn.Module or a non-empty list of them, got {backbone!r}")


def make_corruptors(backbone, nu, step_size, step_scale, weights) -> list["Corruptor"]:
    """One :class:`Corruptor` per entry of ``backbone=``; every named backbone's weights tag is checked
    before any is loaded (or downloaded), so that a missing one fails first."""
    from .weights import missing_tag_error, weights_for, weights_path

    entries = backbone_list(backbone)
    for b in entries:
        if isinstance(b, str):
            w = weights_for(b, weights)
            if isinstance(w, str) and weights_path(b, w) is None and (missing := missing_tag_error(b, w)) is not None:
                raise missing
    return [make_corruptor(b, nu, step_size, step_scale, weights) for b in entries]


def make_corruptor(b, nu, step_size, step_scale, weights) -> "Corruptor":
    """A :class:`Corruptor` for one entry of ``backbone=`` (a registered name, loaded with ``weights``, or a module)."""
    from .backbones import backbone_spec
    from .weights import load_backbone, missing_tag_error, weights_for, weights_path

    if isinstance(b, str):
        spec = backbone_spec(b)  # ValueError listing known names
        weights = weights_for(b, weights)  # one entry per backbone, or the same for all
        path = weights_path(b, weights) if weights is not None else None
        if isinstance(weights, str) and path is None:
            missing = missing_tag_error(b, weights)
            if missing is not None:
                raise missing
        name, module, channels, multiple = b, load_backbone(b, path or weights), spec.in_channels, spec.multiple_of
        source = "untrained" if weights is None else (path.name if path is not None else f"weights={weights!r}")
    elif isinstance(b, nn.Module):
        name, module, source = type(b).__name__, b, "your module"
        channels, multiple = getattr(b, "in_channels", None), 1
    else:
        raise TypeError(f"each backbone must be a registered name or an nn.Module, got {type(b).__name__}")
    nu_b = nu.get(name) if isinstance(nu, dict) else nu
    if nu_b is None:
        raise ValueError(f"nu has no entry for backbone {name!r}")
    check_positive(nu_b, "nu")
    corruptor = Corruptor(name, module, float(nu_b), step_size, step_scale, channels, multiple)
    corruptor.weights_source = source  # for repr: which weights the backbone carries
    return corruptor
