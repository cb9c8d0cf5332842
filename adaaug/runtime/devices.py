"""The ``--device`` check every command runs before any work, and cleaning up after a failed command.

:func:`check_device` is the one check behind every command's ``--device`` (``train``, ``eval``,
``bench``, ``deepaugment-data``, ``mini-protocol``): a device that does not exist here (CUDA on a
machine without it, a CUDA index beyond the visible devices, an unknown name) is a
:class:`~adaaug.runtime.errors.ConfigError` (a ``ValueError``) naming the flag and the fix,
which the command line prints as one line, before anything is read or written.

:func:`removed_on_failure` removes the files and folders a command created when the command fails
(an error, Ctrl-C), so that a rerun starts clean instead of asking for ``--overwrite``.
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

#: The forms ``--device`` accepts, for messages.
DEVICE_HELP = "auto, cpu, cuda or cuda:N"


def check_device(device: object, *, flag: str = "--device") -> str:
    """Check a ``--device`` value against this machine; returns it unchanged.

    Args:
        device: ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        flag: the option's name, for the message.

    Raises:
        ConfigTypeError: ``device`` is not a str.
        ConfigError: an unknown form, CUDA where none is available, or ``cuda:N`` with ``N`` not
            among the visible devices (the message names the fix, e.g. ``use --device cpu``).
    """
    from .errors import ConfigError, ConfigTypeError

    if not isinstance(device, str):
        raise ConfigTypeError(f"device ({flag}) must be str, got {device!r} ({type(device).__name__})")
    if device in ("auto", "cpu"):
        return device
    if device == "cuda" or device.startswith("cuda:"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"{flag} {device} asked for CUDA, which is not available here; use {flag} cpu")
        idx = device.split(":", 1)[1] if ":" in device else "0"
        if not idx.isdigit() or int(idx) >= torch.cuda.device_count():
            raise ConfigError(f"{flag} {device}: no such CUDA device ({torch.cuda.device_count()} visible); "
                              f"use {flag} cuda:0 .. cuda:{torch.cuda.device_count() - 1} or {flag} cpu")
        return device
    raise ConfigError(f"unknown {flag} {device!r}; use {DEVICE_HELP}")


def resolve_checked(device: str | None, *, flag: str = "--device"):
    """:func:`check_device`, then the ``torch.device`` (``None`` and ``"auto"``: CUDA when available, else CPU)."""
    import torch

    spec = check_device("auto" if device is None else device, flag=flag)
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(spec)


@contextmanager
def removed_on_failure(*paths: str | os.PathLike, keep_if: Callable[[], bool] | None = None) -> Iterator[None]:
    """Remove those of ``paths`` that did not exist on entry when the body raises (any exception, Ctrl-C too).

    Paths that existed before are left alone (a user's folder, an earlier run's files), so a
    failed command leaves the file system as it found it apart from files it overwrote.
    ``keep_if``: called after a failure; when it returns true nothing is removed (for example once a
    checkpoint that ``--resume`` continues from has been written).
    """
    fresh = [Path(p) for p in paths if not os.path.lexists(p)]
    try:
        yield
    except BaseException:
        if keep_if is not None and keep_if():
            raise
        for p in fresh:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            elif os.path.lexists(p):
                p.unlink(missing_ok=True)
        raise
