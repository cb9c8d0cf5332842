"""Result files that a stop cannot leave half-written."""
from __future__ import annotations

import os


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`adaaug._files.write_atomic`).

    A reader, or a command interrupted in the middle (SIGINT, SIGTERM), sees either the previous file or the
    new one, never a truncated one: results rewritten after every part keep the parts before a stop. The
    temporary file beside it is removed when the write fails.
    """
    from .._files import write_atomic

    write_atomic(path, lambda f: f.write(text.encode("utf-8")))
