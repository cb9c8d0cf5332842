"""One line for a failure of a command's environment: the network, the disk, a permission, a package, memory.

A command that stops because of where it runs, not because of what it was asked, ends with
``adaaug <command>: error: <what failed>: <what to do>`` and exit status :data:`EXIT_ENVIRONMENT` (1),
as a bad setting ends with exit status 2. :func:`environment_message` turns such an exception into
that line; :func:`is_environment_failure` says which exceptions it covers (``OSError`` and its
subclasses, ``ImportError``, ``MemoryError`` and torch's out-of-memory error). An exception whose
message already says what to do (one raised by adaaug with its context, such as a failed download)
keeps its message (a class attribute ``says_what_to_do = True`` marks such exceptions).
"""
from __future__ import annotations

import errno
import sys
from typing import Callable

EXIT_ENVIRONMENT = 1

_NETWORK_ERRNOS = {errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTUNREACH, errno.ECONNREFUSED, errno.ECONNRESET,
                   errno.ETIMEDOUT}
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}
_PERMISSION = {errno.EACCES, errno.EPERM}
_PROTOCOL_MODULES = {"scipy", "skimage", "cv2", "pyautoattack", "matplotlib"}  # what the protocol extra brings


def _is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, MemoryError):
        return True
    torch = sys.modules.get("torch")
    oom = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    return isinstance(oom, type) and isinstance(err, oom)


def is_environment_failure(err: BaseException) -> bool:
    """Whether ``err`` is a failure of the environment (see the module docstring)."""
    return isinstance(err, (OSError, ImportError)) or _is_out_of_memory(err)


def _network_reason(err: BaseException) -> str | None:
    """The reason of a network failure (``urllib``'s ``URLError``, a socket error, a timeout), else None."""
    from urllib.error import HTTPError, URLError

    if isinstance(err, HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, URLError):
        return str(err.reason)
    import socket

    if isinstance(err, (socket.gaierror, ConnectionError, TimeoutError)) or getattr(err, "errno", None) in _NETWORK_ERRNOS:
        return " ".join(str(err).split()) or type(err).__name__
    return None


def _where(err: OSError) -> str:
    name = err.filename if err.filename is not None else None
    return f" ({name})" if name else ""


def environment_message(err: BaseException, has_option: Callable[[str], bool] = lambda option: False) -> str:
    """One line for an environment failure ``err``: what failed and what to do.

    ``has_option(flag)`` tells whether the running command has ``flag`` (e.g. ``--batch-size``), so that
    the advice names only options that exist there. Every ``OSError`` and ``ImportError`` gets a line;
    ``MemoryError`` and torch's out-of-memory error too.
    """
    text = " ".join(str(err).split()) or type(err).__name__
    if getattr(err, "says_what_to_do", False) or (isinstance(err, ImportError) and "pip install" in text):
        return text
    if isinstance(err, ModuleNotFoundError):
        name = (err.name or "").split(".")[0] or text
        if name in _PROTOCOL_MODULES:
            return (f"the optional package {name} is not installed ({text}): the protocol commands need the extra: "
                    f'pip install "adaaug[protocol]"')
        return f"the package {name} is not installed ({text}): install it (pip install {name}) and run again"
    if isinstance(err, ImportError):
        return f"an installed package cannot be imported ({text}): reinstall it, or adaaug, and run again"
    if _is_out_of_memory(err):
        smaller = [flag for flag in ("--batch-size", "--chunk-size") if has_option(flag)]
        fix = f"pass a smaller {' or '.join(smaller)}" if smaller else "use a smaller input"
        return f"out of memory ({text.split('. ')[0]}): {fix}, or free memory on the device and run again"
    reason = _network_reason(err)
    if reason is not None:
        return (f"network failure ({reason}): check the connection (or proxy settings) and run again, or fetch the "
                f"files on a machine that has one and copy them here")
    code = getattr(err, "errno", None)
    if code in _DISK_FULL:
        return (f"no space left on the device{_where(err)}: free space there, or write to another folder, and "
                f"run again")
    if code == errno.EROFS:
        return f"the file system is read-only{_where(err)}: write to another folder and run again"
    if code in _PERMISSION or isinstance(err, PermissionError):
        return (f"permission denied{_where(err)}: choose a file or folder you may read and write, or change its "
                f"permissions, and run again")
    return f"the system refused an operation ({text}): check the file or device named, and run again"
