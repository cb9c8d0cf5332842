"""Result files that a stop cannot leave half-written."""
from __future__ import annotations

import os
from pathlib import Path


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file beside it and ``os.replace``.

    A reader, or a command interrupted in the middle (SIGINT, SIGTERM), sees either the previous file or the
    new one, never a truncated one: results rewritten after every part keep the parts before a stop. The
    temporary file is ``.<name>.tmp-<pid>`` in the same folder, removed when the write fails.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
