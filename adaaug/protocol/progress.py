"""Progress bars for the long commands (tqdm, on stderr), switched off by ``--no-progress``.

``adaaug <command> --no-progress`` sets the environment variable ``ADAAUG_PROGRESS=0`` for the
duration of the command, so worker processes started by the command (``spawn``) inherit the
setting. Library calls show no bar unless they are asked to (``enabled()`` is false unless a
command turned bars on, or ``ADAAUG_PROGRESS=1`` is set by the user).
"""
from __future__ import annotations

import os
import sys
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

ENV = "ADAAUG_PROGRESS"


def enabled() -> bool:
    """Whether bars are shown: ``ADAAUG_PROGRESS`` is ``1`` (set by the command line unless ``--no-progress``)."""
    return os.environ.get(ENV, "0") == "1"


def bar(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str | None = None,
        unit: str = "it", leave: bool = False) -> "Iterator[T]":
    """A tqdm bar on stderr over ``iterable`` (or a manual bar with ``total``); disabled unless :func:`enabled`."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr,
                disable=not enabled(), dynamic_ncols=True)
