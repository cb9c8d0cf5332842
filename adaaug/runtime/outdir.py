"""Output folders that already hold something, and telling a command's own files from another run's.

:func:`claim_output_dir` is what every command that writes a folder runs before writing: a new or
empty folder is used as it is; a folder holding anything is refused with a message naming
``--overwrite`` (or the command's own flag), and with it the files an earlier run of the same
command recorded writing there are removed first. Files the command did not write (a user's notes,
another tool's output) are never removed.

:func:`file_record` and :func:`check_file_record` describe a written file in a manifest (size,
sha256, and a fast sampled fingerprint) and check later that a file is still that one, so that a
reader can refuse a file that another run left in the folder.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Iterable

#: Blocks read by :func:`sampled_sha256`: this many, evenly spaced, of :data:`BLOCK` bytes each.
SAMPLES = 16
BLOCK = 1 << 16


def claim_output_dir(out: str | os.PathLike, *, overwrite: bool, earlier: Iterable[str | os.PathLike] = (),
                     flag: str = "--overwrite") -> list[Path]:
    """Make ``out`` ready for a command's files; returns the earlier run's paths it removed.

    Args:
        out: the output folder (need not exist).
        overwrite: the command's ``--overwrite``; without it a folder holding anything is refused.
        earlier: paths relative to ``out`` that an earlier run of the same command wrote, as its manifest
            records them; with ``overwrite`` they are removed (folders with everything in them).
            Nothing else in ``out`` is touched.
        flag: the command's name for the option, for the message.

    Raises:
        FileExistsError: ``out`` holds something and ``overwrite`` is false (the message lists a few
            entries and names ``flag``), or ``out`` exists and is not a folder.
    """
    out = Path(out)
    if not os.path.lexists(out):
        return []
    if not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder: choose a folder that is new or empty")
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return []
    if not overwrite:
        shown = ", ".join(entries[:4]) + (f", ... ({len(entries)} entries)" if len(entries) > 4 else "")
        raise FileExistsError(f"{out} is not empty ({shown}): pass {flag} to replace what an earlier run "
                              f"of this command wrote there (other files are kept), or choose a new or empty folder")
    removed = []
    root = out.resolve()
    for p in earlier:
        p = out / p
        if not os.path.lexists(p) or root not in p.resolve().parents:
            continue  # gone already, or outside the folder: never ours to remove
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
        removed.append(p)
    return removed


def sampled_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's size and :data:`SAMPLES` evenly spaced blocks of :data:`BLOCK` bytes (the first and
    the last among them; the whole file when it is smaller): reads at most 1 MiB, whatever the file's size."""
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        if size <= SAMPLES * BLOCK:
            h.update(f.read())
        else:
            for k in range(SAMPLES):
                f.seek((size - BLOCK) * k // (SAMPLES - 1))
                h.update(f.read(BLOCK))
    return h.hexdigest()


def file_record(path: str | os.PathLike) -> dict:
    """``{"bytes": size, "sha256": of the whole file, "sampled_sha256": see sampled_sha256}`` of ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return {"bytes": Path(path).stat().st_size, "sha256": h.hexdigest(), "sampled_sha256": sampled_sha256(path)}


def check_file_record(path: str | os.PathLike, record: dict, manifest: str, fix: str) -> None:
    """``ValueError`` when ``path`` is missing or is not the file ``record`` (from :func:`file_record`)
    describes: size and sampled fingerprint (not the whole-file sha256, to keep reading cheap).

    ``manifest`` names the record's file and ``fix`` says what to do, for the message.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} is missing, but {manifest} lists it: {fix}")
    size = path.stat().st_size
    why = (f"{size} bytes, recorded {record.get('bytes')}" if size != record.get("bytes") else
           "same size, other content" if sampled_sha256(path) != record.get("sampled_sha256") else "")
    if why:
        raise ValueError(f"{path} is not the file {manifest} records ({why}): it comes from another run; {fix}")
