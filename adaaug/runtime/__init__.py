"""What every command shares while it runs: the ``--device`` check, progress bars, one-line errors.

:mod:`adaaug.runtime.devices` (:func:`~adaaug.runtime.devices.check_device`, cleaning up after a failed
command), :mod:`adaaug.runtime.progress` (tqdm bars on stderr, the ETA of ``adaaug train``),
:mod:`adaaug.runtime.errors` (:class:`~adaaug.runtime.errors.UsageError`,
:class:`~adaaug.runtime.errors.ConfigError`), :mod:`adaaug.runtime.environment` (one line for a failure of
the environment: network, disk, permissions, packages, memory), :mod:`adaaug.runtime.markdown` (the
reports' tables), :mod:`adaaug.runtime.interrupts` (SIGTERM handled as Ctrl-C, exit statuses 130/143,
process pools that stop with the command), :mod:`adaaug.runtime.cost` (the floor of an
AdA step, ``adaaug bench``'s cost model), :mod:`adaaug.runtime.provenance` (the ``producer`` of a record)
and :mod:`adaaug.runtime.files` (result files written atomically).

Layer: imports only the core's file helpers (``adaaug._files``); everything above the augmentations may use it. Names load on
first access, so ``adaaug --help`` stays fast.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, __path__, {
    "check_device": "devices", "removed_on_failure": "devices", "bar": "progress", "StepClock": "progress",
    "UsageError": "errors", "ConfigError": "errors", "ConfigTypeError": "errors",
    "write_text_atomic": "files"})

if TYPE_CHECKING:  # pragma: no cover  (for type checkers and IDEs; at run time the names load lazily)
    from .devices import check_device, removed_on_failure
    from .errors import ConfigError, ConfigTypeError, UsageError
    from .files import write_text_atomic
    from .progress import StepClock, bar
