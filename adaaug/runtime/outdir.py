"""Output folders that already hold something, and telling a command's own files from another run's.

:func:`claim_output_dir` is what every command that writes a folder runs before writing: a new or
empty folder is used as it is; a folder holding anything is refused with a message naming
``--overwrite`` (or the command's own flag), and with it the files an earlier run of the same
command recorded writing there are removed first. Files the command did not write (a user's notes,
another tool's output) are never removed.

:func:`file_record` and :func:`check_file_record` describe a written file in a manifest (size,
sha256, and a fast sampled fingerprint) and check later that a file is still that one, so that a
reader can refuse a file that another run left in the folder.

:func:`claim_output_files` does the same for commands that write named files into a folder that collects
results (a weights directory, a results directory) or a single output file: a file the command would
replace is refused unless ``--overwrite``; the folder's other files are left alone.

:func:`claim_run_folder` is for commands that keep a resumable run in a folder (``mini-protocol``,
``finetune``): a manifest records the command, its settings and the names it writes; a rerun with the
same settings continues, one with other settings is refused unless ``--overwrite`` replaces the earlier
run's files.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterable, Sequence

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


def claim_output_files(paths: Iterable[str | os.PathLike], *, overwrite: bool, flag: str = "--overwrite",
                       what: str = "an earlier run's output", other: str = "choose another output path") -> list[Path]:
    """Check that a command may write ``paths`` (files); returns those that exist (replaced with ``overwrite``).

    Nothing is removed here: the command writes over the files it names, and every other file of their folders
    stays. Call it before any work, so that a long run is not refused at its end. ``what`` says what the files
    are and ``other`` the alternative to ``flag``, for the message.

    Raises:
        FileExistsError: one of ``paths`` exists and ``overwrite`` is false (the message names ``flag``), or
            one exists and is not a file, or a parent exists and is not a folder.
    """
    paths = [Path(p) for p in paths]
    for p in paths:
        parent = p.parent
        if os.path.lexists(parent) and not parent.is_dir():
            raise FileExistsError(f"{parent} exists and is not a folder: choose another output path")
        if os.path.lexists(p) and not p.is_file():
            raise FileExistsError(f"{p} exists and is not a file: choose another output path")
    existing = [p for p in paths if os.path.lexists(p)]
    if existing and not overwrite:
        shown = ", ".join(str(p) for p in existing[:4]) + (f", ... ({len(existing)} files)" if len(existing) > 4
                                                            else "")
        raise FileExistsError(f"{shown} exist{'s' if len(existing) == 1 else ''} ({what}): pass {flag} to replace "
                              f"{'it' if len(existing) == 1 else 'them'} (other files are kept), or {other}")
    return existing


def _plain(value: Any) -> Any:
    """``value`` as JSON reads it back (tuples become lists), for comparing settings with a manifest's."""
    return json.loads(json.dumps(value, default=str))


def claim_run_folder(out: str | os.PathLike, *, command: str, manifest: str, names: Sequence[str],
                     settings: dict[str, Any], overwrite: bool, compare: bool = True,
                     flag: str = "--overwrite") -> str:
    """Make ``out`` ready for a resumable run of ``command``; returns ``"new"``, ``"resume"`` or ``"replaced"``.

    ``out/manifest`` (JSON: ``{"command", "settings", "names"}``) marks a folder as ``command``'s. A new or
    empty folder is created and marked (``"new"``). A marked folder continues (``"resume"``) when ``settings``
    equal the recorded ones (or ``compare`` is false: the caller keys its own cache, or nothing of the earlier
    run depends on them) and is refused otherwise; with ``overwrite`` the earlier run's ``names`` are removed
    first (``"replaced"``). A folder holding anything without that mark is refused; with ``overwrite`` the run
    goes in beside what is there, unless something there has one of ``names`` (refused: the command would
    write into it).
    Nothing but ``names`` and the manifest is ever removed.

    Args:
        out: the run folder (need not exist).
        command: the command's name, for the mark and the messages (``"mini-protocol"``).
        manifest: the mark's file name in ``out``.
        names: top-level entries (files or folders) of ``out`` that the command writes.
        settings: the run's settings that its results depend on (JSON-serialisable); recorded.
        overwrite: the command's ``--overwrite``.
        compare: refuse a marked folder whose recorded settings differ from ``settings``.
        flag: the option's name, for the messages.

    Raises:
        FileExistsError: refused as described; the message names ``flag`` and says what differs.
    """
    out = Path(out)
    mark = out / manifest
    recorded = None
    if mark.is_file():
        try:
            recorded = json.loads(mark.read_text())
        except ValueError:
            recorded = None
        if not isinstance(recorded, dict) or recorded.get("command") != command:
            recorded = None
    state = "new"
    if recorded is not None:
        old = recorded.get("settings")
        new = _plain(settings)
        if overwrite:
            earlier = [n for n in recorded.get("names", []) if isinstance(n, str)] + [manifest]
            claim_output_dir(out, overwrite=True, earlier=earlier, flag=flag)
            state = "replaced"
        elif not compare or not isinstance(old, dict) or old == new:
            state = "resume"
        else:
            keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            diff = ", ".join(f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in keys[:6])
            raise FileExistsError(f"{out} holds a {command} run with other settings ({diff}): rerun with its "
                                  f"settings to continue it, pass {flag} to replace its files (other files are "
                                  f"kept), or choose a new or empty folder")
    else:
        claim_output_dir(out, overwrite=overwrite, flag=flag)  # refuses a non-empty folder without the flag
        taken = sorted(n for n in [*names, manifest] if os.path.lexists(out / n))
        if taken:
            raise FileExistsError(f"{out} holds {', '.join(taken)}, which no {manifest} there lists and {command} "
                                  f"would write into: move them away or choose a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{manifest}.tmp"
    tmp.write_text(json.dumps({"command": command, "settings": _plain(settings), "names": list(names)},
                              indent=2) + "\n")
    os.replace(tmp, mark)
    return state


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
