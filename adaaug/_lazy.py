"""Lazy package attributes: a subpackage's public names and submodules load on first access.

``import adaaug.corruptions`` then costs nothing until a name is used; ``adaaug.corruptions.make_c``
imports :mod:`adaaug.corruptions.dataset` at that moment (the PEP 562 module ``__getattr__``).
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import Callable


def attach(package: str, path: list[str], exports: dict[str, str]) -> tuple[Callable, Callable, list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package``.

    Args:
        package: the package's ``__name__``.
        path: the package's ``__path__`` (its submodules are found there).
        exports: public name -> submodule defining it, relative to the package (e.g. ``"dataset"``).
    """
    @functools.cache
    def submodules() -> frozenset[str]:  # listed on first need, not when the package is imported
        return frozenset(m.name for m in pkgutil.iter_modules(path))

    def __getattr__(name: str):
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        if name in submodules():
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(exports) | {m for m in submodules() if not m.startswith("_")})

    return __getattr__, __dir__, sorted(exports)
