"""What produced a record: the ``producer`` entry of every report a command writes.

:func:`producer` names the command, adaaug's version, the commit of adaaug's own source tree (only when
adaaug runs from a git checkout of itself, or ``ADAAUG_COMMIT`` names it; never the commit of a
repository that merely surrounds the working directory or the installation) and torch's version.
"""
from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path


@functools.cache
def source_commit() -> str | None:
    """The short commit of adaaug's source checkout: ``ADAAUG_COMMIT`` if set, else ``git rev-parse`` in the
    package's folder when that folder is the top of a git work tree's ``adaaug/``; None otherwise."""
    if os.environ.get("ADAAUG_COMMIT"):
        return os.environ["ADAAUG_COMMIT"]
    package = Path(__file__).resolve().parents[1]
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=10,
                             cwd=package).stdout.strip()
        if not top or Path(top).resolve() / "adaaug" != package:
            return None  # installed into a folder of some other repository
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=package).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def producer(command: str) -> dict[str, str | None]:
    """``{"command": "adaaug <command>", "adaaug": version, "commit": source_commit(), "torch": version}``."""
    import torch

    root = sys.modules.get(__name__.split(".")[0])
    return {"command": f"adaaug {command}", "adaaug": getattr(root, "__version__", None), "commit": source_commit(),
            "torch": torch.__version__}
