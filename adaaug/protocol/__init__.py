"""The paper's training and evaluation protocol: training, -C sets, mCE, robust accuracy, benchmarks.

Submodules load on first attribute access (``adaaug.protocol.<name>``), so importing the package stays light.
"""
from __future__ import annotations

import importlib
import pkgutil


def __getattr__(name: str):
    if any(m.name == name for m in pkgutil.iter_modules(__path__)):
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
