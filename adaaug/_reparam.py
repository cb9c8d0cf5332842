"""Running a module with other tensors in place of its parameters and buffers, tied weights included.

Everything in adaaug that evaluates a network at other weights (the corruption backbone at
φ + δ⁽ⁿ⁾, DeepAugment's distorted backbone, a classifier under parameter noise) goes through
:func:`swapped`, which puts the given tensors into the module's parameter and buffer slots for
the duration of a ``with`` block and then puts the very same objects back.

Why not ``torch.func.functional_call``: a module reachable under two names (``self.again =
self.block``, as in weight-tied or recurrent networks) makes functional_call leave the swapped
tensors in the module. With ``tie_weights=True`` it expands the given names to every alias, and
two aliases of one submodule point at the same ``_parameters`` slot: the second swap saves the
already swapped tensor as the "original" and restores that (pytorch/pytorch#164759, fix proposed
in pytorch/pytorch#195593; in torch 2.14.1 the module comes back holding plain tensors, not its
Parameters). Passing only one name per tensor with ``tie_weights=False`` avoids that case but
leaves a weight shared by two *different* modules (``dec.weight = enc.weight``) unswapped under its
second name, so that the forward mixes perturbed and original weights (the semantics of
``tie_weights`` are discussed in pytorch/pytorch#86708 and #90477). Here every physical slot
``(submodule, attribute)`` is swapped exactly once, whatever number of names reaches it.

Names: a tensor reachable under several names is keyed by its first name in
``named_parameters()`` / ``named_buffers()`` order (the names those methods return by
default); :attr:`TensorSlots.aliases` lists the others. One value per shared tensor is used
under every name, so a perturbation of a tied weight is one perturbation, seen consistently
by every use, with one radius (the same count of blocks as ``named_parameters()``).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Mapping

import torch
from torch import nn

_TENSOR = torch._C.TensorBase  # the C base of every tensor: a fast isinstance test
_Slot = tuple[dict, str, torch.Tensor]  # (the submodule's _parameters or _buffers dict, key, original tensor)


class TensorSlots:
    """Where each parameter and buffer of ``module`` is stored, under all the names it has.

    Attributes:
        params: ``{name: Parameter}``, as ``dict(module.named_parameters())`` (one entry per tensor).
        buffers: ``{name: tensor}``, as ``dict(module.named_buffers())``.
        aliases: ``{name: (name, other names...)}`` for every key of ``params`` and ``buffers``.

    A snapshot: if the module's parameters or buffers are later replaced by other objects,
    :func:`swapped` raises a RuntimeError rather than writing into a structure that no longer exists;
    :meth:`changed` tells a user of the snapshot to take a new one.
    """

    def __init__(self, module: nn.Module) -> None:
        scripted = next((name for name, m in module.named_modules() if isinstance(m, torch.jit.ScriptModule)), None)
        if scripted is not None:
            what = f"submodule {scripted!r} of {type(module).__name__}" if scripted else "this module"
            raise TypeError(f"{what} is a TorchScript module, whose weights cannot be swapped for perturbed ones; "
                            f"pass the original nn.Module (before torch.jit.script or torch.jit.trace)")
        self.module = module
        self.params: dict[str, torch.Tensor] = dict(module.named_parameters())
        self.buffers: dict[str, torch.Tensor] = dict(module.named_buffers())
        canonical: dict[int, str] = {}
        for name, t in (*self.params.items(), *self.buffers.items()):
            canonical.setdefault(id(t), name)
        aliases: dict[str, list[str]] = {name: [] for name in canonical.values()}
        self._slots: dict[str, list[_Slot]] = {name: [] for name in canonical.values()}
        seen: set[tuple[int, str, str]] = set()
        for prefix, sub in module.named_modules(remove_duplicate=False):
            for kind in ("_parameters", "_buffers"):
                table = sub.__dict__[kind]
                for attr, t in table.items():
                    if t is None:
                        continue
                    name = canonical[id(t)]
                    aliases[name].append(f"{prefix}.{attr}" if prefix else attr)
                    if (id(sub), kind, attr) not in seen:  # one submodule under two names: one slot
                        seen.add((id(sub), kind, attr))
                        self._slots[name].append((table, attr, t))
        self.aliases = {k: tuple(v) for k, v in aliases.items()}
        self._modules = list(module.modules())
        self._signature = self._sign()

    def _sign(self) -> tuple:
        """The identities of every submodule, parameter and buffer, and the tensors' version counters."""
        return (tuple(tuple(map(id, d.values())) for m in self._modules
                      for d in (m._modules, m._parameters, m._buffers)),
                tuple(t._version for t in (*self.params.values(), *self.buffers.values())))

    def changed(self) -> bool:
        """True when the module was changed since this snapshot: a submodule, parameter or buffer added,
        removed or replaced, or a value written in place (``load_state_dict``, ``p.copy_``, an optimizer
        step). Cost: one pass over the module's tables, no device synchronisation."""
        return self._sign() != self._signature

    @property
    def tied(self) -> bool:
        """True when some tensor is reachable under more than one name."""
        return any(len(v) > 1 for v in self.aliases.values())

    def check_unchanged(self) -> None:
        """Raise a RuntimeError if a parameter or buffer slot no longer holds the object it held."""
        for name, slots in self._slots.items():
            for table, attr, original in slots:
                if table.get(attr) is not original:
                    raise RuntimeError(
                        f"{type(self.module).__name__}.{name} was replaced by another tensor while adaaug was "
                        f"using the module (or another call is running it with other weights at the same time, "
                        f"from another thread); run one call at a time on one module")


@contextmanager
def swapped(slots: TensorSlots, values: Mapping[str, torch.Tensor], *, complete: bool = False) -> Iterator[None]:
    """Inside the block, every name of each key of ``values`` holds ``values[key]``.

    Tensors a forward stores as plain attributes of a submodule (the ``weight`` that the
    deprecated ``nn.utils.weight_norm`` / ``spectral_norm`` hooks recompute from the swapped
    parameters, a cached activation) are put back as well, and those it creates are removed, so no
    perturbed weight, and no tensor from inside ``vmap``, stays behind in the module.

    Args:
        slots: the module's :class:`TensorSlots`.
        values: ``{name: tensor}`` with names that are keys of ``slots.params`` or ``slots.buffers``
            (any shape, dtype, device or tensor subclass; not made Parameters).
        complete: require a value for every parameter and buffer.

    On exit (also on an exception) every slot holds its original object again, so the module has
    the same Parameter and buffer objects, with unchanged values, ``.grad`` and ``requires_grad``.
    Not reentrant for one module, and not safe to run on one module from several threads at once.
    """
    unknown = [k for k in values if k not in slots._slots]
    if unknown:
        raise KeyError(f"{type(slots.module).__name__} has no parameter or buffer named {unknown} "
                       f"(expected one of {list(slots._slots)})")
    if complete:
        missing = [k for k in slots._slots if k not in values]
        if missing:
            raise KeyError(f"no value given for {missing}")
    slots.check_unchanged()
    done: list[_Slot] = []
    plain = [(d, {k: v for k, v in d.items() if isinstance(v, torch.Tensor)}) for d in map(vars, slots._modules)]
    try:
        for name, value in values.items():
            for table, attr, original in slots._slots[name]:
                table[attr] = value
                done.append((table, attr, original))
        yield
    finally:
        for table, attr, original in reversed(done):
            table[attr] = original
        for d, saved in plain:
            for k in [k for k, v in d.items() if isinstance(v, _TENSOR) and k not in saved]:
                del d[k]
            d.update(saved)
