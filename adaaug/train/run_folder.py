"""``adaaug train``'s ``--out`` before a run starts: new or empty, a run to ``--resume``, or ``--overwrite``.

A run writes fixed names into ``--out`` (:data:`RUN_FILES`, and ``.checkpoint.pt.tmp-<pid>`` while a
checkpoint is being written). :func:`check_run_dir` refuses, before any work, an ``--out`` that holds
anything unless ``--resume`` continues the checkpoint there or ``--overwrite`` starts a new run in its
place; :func:`clear_run_dir` then removes those names only (files ``adaaug train`` does not write, such as a
user's notes, stay).
"""
from __future__ import annotations

import os
from pathlib import Path

from ..runtime.errors import ConfigError

CHECKPOINT = "checkpoint.pt"
#: What a run writes into ``--out`` (besides a checkpoint's temporary file).
RUN_FILES = ("config.json", "metrics.jsonl", CHECKPOINT, "final.safetensors", "result.json",
             ".final.safetensors.tmp")


def run_files(out: str | os.PathLike) -> list[str]:
    """The names in ``out`` that a run of ``adaaug train`` writes and that exist now (relative to ``out``)."""
    out = Path(out)
    names = [n for n in RUN_FILES if os.path.lexists(out / n)]
    return names + sorted(p.name for p in out.glob(f".{CHECKPOINT}.tmp-*"))


def check_run_dir(out: str | os.PathLike, *, resume: bool, overwrite: bool) -> None:
    """Raise :class:`ConfigError` unless a run may write into ``out``; removes nothing.

    Allowed: ``out`` does not exist or is empty; ``resume`` and ``out`` holds a checkpoint; ``overwrite``
    (a new run; :func:`clear_run_dir` removes the earlier run's files once every check has passed).

    Raises:
        ConfigError: both ``resume`` and ``overwrite``; ``out`` is not a folder; ``out`` holds anything
            otherwise (the message names ``--resume`` where there is a checkpoint, and ``--overwrite``).
    """
    out = Path(out)
    if resume and overwrite:
        raise ConfigError("--resume continues the run in --out and --overwrite starts a new one there: pass one "
                          "of them")
    if os.path.lexists(out) and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    if not out.is_dir():
        return
    entries = sorted(p.name for p in out.iterdir())
    ckpt = out / CHECKPOINT
    if not entries or overwrite or (resume and ckpt.is_file()):
        return
    shown = ", ".join(entries[:4]) + (f", ... ({len(entries)} entries)" if len(entries) > 4 else "")
    replace = (f"--overwrite to start a new run there (the files an earlier `adaaug train` wrote, "
               f"{', '.join(RUN_FILES[:5])}, are replaced; other files are kept)")
    if ckpt.exists():
        raise ConfigError(f"{ckpt} exists: pass --resume to continue that run, {replace}, or choose another --out")
    if resume:
        raise ConfigError(f"--resume: {out} holds no {CHECKPOINT} to continue from but is not empty ({shown}): "
                          f"drop --resume and pass {replace}, or choose a new or empty --out")
    raise ConfigError(f"--out {out} is not empty ({shown}): pass {replace}, or choose a new or empty --out")


def clear_run_dir(out: str | os.PathLike) -> list[str]:
    """Remove the files an earlier run of ``adaaug train`` wrote into ``out`` (:func:`run_files`); returns
    their names. Everything else in ``out`` stays."""
    from ..runtime.outdir import claim_output_dir

    names = run_files(out)
    claim_output_dir(out, overwrite=True, earlier=names)
    return names
