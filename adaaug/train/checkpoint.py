"""Atomic training checkpoints (write a temporary file, fsync it, rename it over the target), and
saving/restoring a training run's state per epoch (:func:`save_run`, :func:`restore_run`).

Checkpoints hold optimiser and RNG state and are written with ``torch.save``; they are
read back with ``weights_only=True`` (no arbitrary unpickling). Shipped weights use
safetensors instead (:mod:`adaaug.weights`).
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` so that ``path`` is never left half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:  # an interrupt (Ctrl-C, SIGTERM) while writing leaves the previous checkpoint and no temporary file
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_leftovers(folder: str | os.PathLike) -> list[str]:
    """Remove the temporary files (``.<name>.tmp-<pid>``, ``.<name>.tmp``) of :func:`save_atomic` and
    :func:`export_final` that a process killed outright (SIGKILL) left in ``folder``; returns their names.

    Only names of that form whose process is gone are removed, so a run writing there now is left alone.
    """
    import re

    folder = Path(folder)
    removed = []
    for p in (folder.iterdir() if folder.is_dir() else ()):
        match = re.fullmatch(r"\.(.+\.(?:pt|safetensors))\.tmp(?:-(\d+))?", p.name)
        if match is None or not p.is_file() or (match.group(2) and _alive(int(match.group(2)))):
            continue
        p.unlink(missing_ok=True)
        removed.append(p.name)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process writes nothing at the moment it looks
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint written by :func:`save_atomic` (tensors and plain containers only)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def rng_state() -> dict:
    """Global RNG states (torch CPU, CUDA if present, numpy, python) as tensors/lists."""
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(int, np_state[2:4]),
                  float(np_state[4])],
        "python": repr(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Inverse of :func:`rng_state`."""
    import ast

    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(ast.literal_eval(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---- stage 5 of ``adaaug train``: one checkpoint per epoch, and resuming from it ----------------
def save_run(ckpt_path: Path, metrics_path: Path, cfg, env, m, epoch: int, wall: float, record: dict) -> None:
    """End of epoch ``epoch`` (1-based): rank 0 appends ``record`` to ``metrics.jsonl``, prints it, and
    writes the checkpoint (model, optimiser, schedule, every process's RNG states); all processes wait.

    ``cfg`` is a :class:`~adaaug.train.config.TrainConfig`, ``env`` a
    :class:`~adaaug.train.distributed.DistEnv`, ``m`` a :class:`~adaaug.train.loop.Model`.
    """
    import json

    from . import distributed as D

    states = D.all_gather_object(env, {"global": rng_state(), "augment": m.aug_gen.get_state()})
    if env.is_main:
        with open(metrics_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)
        save_atomic({"model": m.model.state_dict(), "optimizer": m.opt.state_dict(),
                     "scheduler": m.sched.state_dict(), "epoch": epoch, "wall_s": wall, "config": cfg.record(),
                     "rng": states, "world_size": env.world_size}, ckpt_path)
    D.barrier(env)


def restore_run(ckpt_path: Path, cfg, env, m) -> tuple[int, float]:
    """Load ``ckpt_path`` into ``m`` (before DDP wrapping); returns ``(epochs done, wall seconds)``.

    ``(0, 0.0)`` when there is no checkpoint yet. Raises
    :class:`~adaaug.train.config.ConfigError` when the checkpoint's settings differ
    (other than :data:`~adaaug.train.config.RESUME_FREE_KEYS`). RNG states written by
    another number of processes (or on another device type) cannot be restored: the
    augmentation generators then restart from fresh seeds, with a warning.
    """
    import sys

    from . import distributed as D
    from .config import ConfigError

    if not ckpt_path.exists():
        if env.is_main:
            print(f"--resume: no checkpoint at {ckpt_path}; starting from scratch", file=sys.stderr)
        return 0, 0.0
    ck = load_checkpoint(ckpt_path)
    mismatch = cfg.resume_mismatch(ck["config"])
    if mismatch:
        raise ConfigError(f"cannot resume {ckpt_path}: settings differ from the checkpoint's run: "
                          + ", ".join(f"{k}={ck['config'].get(k)!r}→{getattr(cfg, k, None)!r}" for k in mismatch))
    m.model.load_state_dict(ck["model"])
    m.opt.load_state_dict(ck["optimizer"])
    m.sched.load_state_dict(ck["scheduler"])
    start_epoch, wall = int(ck["epoch"]), float(ck["wall_s"])
    states = ck["rng"]
    try:
        if len(states) != env.world_size:
            raise ValueError(f"written by {len(states)} processes, this run has {env.world_size}")
        m.aug_gen.set_state(states[env.rank]["augment"])
        set_rng_state(states[env.rank]["global"])
    except (ValueError, RuntimeError) as err:  # other world size, or a CUDA generator resumed on CPU
        if env.is_main:
            print(f"warning: cannot restore the RNG states of {ckpt_path} ({err}); augmentation "
                  f"generators restart from fresh per-rank seeds: not bitwise reproducible", file=sys.stderr)
        m.aug_gen.manual_seed(D.derive_seed(cfg.seed, "augment", env.rank, "resumed", start_epoch))
    if env.is_main:
        print(f"resuming {ckpt_path} after epoch {start_epoch}/{cfg.epochs}", file=sys.stderr)
    return start_epoch, wall


def export_final(model: torch.nn.Module, cfg, path: Path, num_classes: int, classes: list[str]) -> None:
    """Write the state_dict with its arch, class count and names (logit order; ``adaaug eval`` matches sets by them).

    ``cfg``: the run's :class:`~adaaug.train.config.TrainConfig`. Written under a temporary name and renamed.
    """
    import json

    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        save_file(state, str(tmp), metadata={"arch": cfg.arch, "num_classes": str(num_classes),
                                             "normalize": cfg.preset, "method": cfg.method,
                                             "classes": json.dumps([str(c) for c in classes])})
        tmp.chmod(0o644)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def rewrite_metrics(path: Path, keep_until: int) -> None:
    """Keep only the lines of epochs ≤ ``keep_until`` (a run killed between log and checkpoint)."""
    import json

    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["epoch"] <= keep_until]
    path.write_text("".join(ln + "\n" for ln in lines))
