"""Files adaaug writes for itself: where its cache lives, writing a file atomically, and file digests.

* Cache directory: ``$ADAAUG_CACHE`` if set (``none``/``off``/``0`` turns caching off), else
  ``$XDG_CACHE_HOME/adaaug``, else ``~/.cache/adaaug``. The decoded image folders
  (:mod:`adaaug.data.cache`) and the converted published weights (:mod:`adaaug.published_weights`)
  live there; adaaug writes nowhere else in a user's home.
* Atomic writes: a unique hidden temporary file in the target's directory, fsynced, then renamed over
  the target; the temporary file is removed if writing fails or is interrupted (``KeyboardInterrupt``,
  or ``SystemExit`` from a signal handler), so a reader sees either no file or a complete one.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

ENV_VAR = "ADAAUG_CACHE"
_OFF = {"", "0", "none", "off", "false", "no"}


def cache_dir() -> Path | None:
    """The cache directory (not created here), or ``None`` when ``$ADAAUG_CACHE`` turns caching off."""
    env = os.environ.get(ENV_VAR)
    if env is not None:
        return None if env.strip().lower() in _OFF else Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "adaaug"


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], None], *, overwrite: bool = True,
                 check: Callable[[Path], None] | None = None) -> Path:
    """Write ``path`` through ``write(file)`` so that it never exists half-written; returns ``path``.

    ``check(temporary_path)``, if given, runs on the complete file before it is renamed into place
    (raise to discard it). The parent directory is created. With ``overwrite=False`` an existing ``path`` raises
    ``FileExistsError`` (checked before writing and again, without a race, at the rename).
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        if check is not None:
            check(Path(tmp))
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # FileExistsError if another writer got there first
            except FileExistsError:
                raise
            except OSError:  # a file system without hard links
                if path.exists():
                    raise FileExistsError(f"{path} exists") from None
                os.replace(tmp, path)
            Path(tmp).unlink(missing_ok=True)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_blob_sha1(path: str | os.PathLike) -> str:
    """Git's object id of a file: hex SHA-1 of ``b"blob <size>\\0"`` followed by its bytes."""
    h = hashlib.sha1(f"blob {os.path.getsize(path)}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
