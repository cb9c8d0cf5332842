"""A cache of decoded image folders, kept out of the user's data.

Decoding an ImageFolder tree (CIFAR-10: 50,000 JPEGs) takes about a minute; the decoded
uint8 arrays are kept as ``.npz`` files in a cache directory so that later runs skip it.

* Where: adaaug's cache directory (:func:`adaaug._files.cache_dir`): ``$ADAAUG_CACHE`` if set
  (``none``/``off``/``0`` disables caching), else ``$XDG_CACHE_HOME/adaaug``, else
  ``~/.cache/adaaug``. Nothing is ever written inside the data directory (a cache directory
  inside it is refused).
* Keyed to the data: the file name carries a sha256 over the folder's resolved path and
  every image's relative path, size in bytes and modification time (ns), so adding,
  removing, replacing or touching an image gives a new key and the stale entry is not read.
* Atomic: written to a unique temporary file in the cache directory, then renamed; a
  concurrent reader (another torchrun rank) sees either no entry or a complete one.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np

from .._files import ENV_VAR, cache_dir  # noqa: F401  (ENV_VAR: documented here too)

_VERSION = "folder-v2"


def folder_key(root: Path, files: Iterable[Path]) -> str:
    """sha256 (hex) over ``root``'s resolved path and each file's path relative to ``root``, size and mtime (ns).

    ``files`` lie under ``root`` as listed (:func:`~adaaug.data.images.list_image_folder`); a class folder or an
    image may be a symbolic link to elsewhere, so the paths are taken before links are resolved.
    """
    h = hashlib.sha256(f"{_VERSION}\n{Path(root).resolve()}\n".encode())
    for f in files:
        st = os.stat(f)
        h.update(f"{os.path.relpath(f, root)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def entry_path(root: Path, key: str) -> Path | None:
    """Where the entry of ``key`` lives, or ``None`` (caching off, or the cache dir lies inside ``root``)."""
    d = cache_dir()
    if d is None:
        return None
    d, root = d.resolve(), Path(root).resolve()
    if d == root or root in d.parents:
        return None  # never write into the data tree
    name = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in root.name)[:40]
    return d / f"{name}-{key[:32]}.npz"


def load_entry(path: Path | None) -> dict[str, np.ndarray] | None:
    """The arrays of a cache entry, or ``None`` when there is none or it cannot be read."""
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None  # a damaged entry is rebuilt, not trusted


def save_entry(path: Path | None, **arrays: np.ndarray) -> bool:
    """Write ``arrays`` to ``path`` atomically; ``False`` (nothing written) when the directory is not writable."""
    if path is None:
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp.npz", dir=path.parent)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return True
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        return False
