"""Registry of corruption networks ("backbones") by name.

A backbone is any ``nn.Module`` mapping a [0, 1] image ``N×C×H×W`` to an image
of the same shape. The four of the AdA paper are registered at import; users add
their own with :func:`register_backbone`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one registered backbone.

    Attributes:
        name: registry key.
        factory: callable returning a freshly initialised module; called with no arguments, or with
            the keyword arguments of a weights file's config (:func:`build_backbone`).
        in_channels: image channels the network takes (and returns).
        multiple_of: H and W must be divisible by this.
    """

    name: str
    factory: Callable[[], nn.Module]
    in_channels: int = 3
    multiple_of: int = 1


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(name: str, factory: Callable[[], nn.Module], *, in_channels: int = 3,
                      multiple_of: int = 1, overwrite: bool = False) -> None:
    """Register an image-to-image network under ``name``.

    Args:
        name: the key users pass as ``backbone=name``.
        factory: zero-argument callable building the module (weights already loaded,
            if it has any).
        in_channels: channels of the images it maps.
        multiple_of: H and W must be multiples of this.
        overwrite: replace an existing entry instead of raising ``ValueError``.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"backbone name must be a non-empty str, got {name!r}")
    if not callable(factory):
        raise TypeError(f"factory for backbone {name!r} must be callable, got {type(factory).__name__}")
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"backbone {name!r} is already registered; pass overwrite=True to replace it")
    _REGISTRY[name] = BackboneSpec(name, factory, in_channels, multiple_of)


def available_backbones() -> list[str]:
    """Names of all registered backbones, sorted."""
    return sorted(_REGISTRY)


def backbone_spec(name: str) -> BackboneSpec:
    """The :class:`BackboneSpec` registered as ``name``; ``ValueError`` listing known names otherwise."""
    if not isinstance(name, str):
        raise TypeError(f"backbone name must be a str, got {type(name).__name__}")
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; known backbones: {', '.join(available_backbones())}") from None


def build_backbone(name: str, **config: object) -> nn.Module:
    """A freshly initialised (untrained) instance of the registered backbone ``name``.

    ``config`` goes to the factory as keyword arguments (e.g. ``scale=4`` for ``edsr``; a weights
    file's recorded config); a factory that takes none is called without them.
    """
    factory = backbone_spec(name).factory
    return factory(**config) if config else factory()
