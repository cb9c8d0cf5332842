"""Stopping a command the way schedulers do: SIGTERM (SLURM, Kubernetes, ``timeout``) as Ctrl-C.

:func:`terminate_as_interrupt` makes SIGTERM raise :class:`Terminated`, a ``KeyboardInterrupt``, in
the main thread, so that every cleanup path written for Ctrl-C (``finally`` blocks,
:func:`~adaaug.runtime.devices.removed_on_failure`, ``adaaug train``'s checkpoints) runs for a
scheduler's kill too. :func:`exit_status` gives the conventional exit status of an interrupt (130 for
SIGINT, 143 for SIGTERM) and :func:`interrupt_line` the one line a command ends with; :func:`check`, called
once per step by the long loops, raises the interrupt again where a signal's exception was swallowed.
:func:`leave_interrupts_to_main` is the same for ``DataLoader`` workers.
:func:`process_pool` is a ``spawn`` process pool whose workers leave interrupts to the main process
and are stopped (pending work cancelled, running workers terminated) when the main process is
interrupted, so that an interrupted command does not wait for its queue to drain.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM (while :func:`terminate_as_interrupt` is on)."""

    signum = signal.SIGTERM


class SignalRecord:
    """The first termination signal received while :func:`terminate_as_interrupt` was on (``None``: none)."""

    def __init__(self) -> None:
        self.signum: int | None = None


_active: list[SignalRecord] = []  # the records of the blocks that are on, innermost last


def check() -> None:
    """Raise the interrupt again if a signal arrived but its exception was swallowed on the way.

    A signal's exception is raised wherever the main thread happens to be; where that is a place that
    ignores exceptions (a ``__del__``, a callback after ``fork``, as when a ``DataLoader`` starts its workers),
    the command would go on. Long loops call this once per step (``adaaug train``, ``make-c``,
    ``deepaugment-data``), which costs a list lookup; cleanup code never calls it.
    """
    if _active and _active[-1].signum is not None:
        raise Terminated() if _active[-1].signum == signal.SIGTERM else KeyboardInterrupt()


@contextmanager
def terminate_as_interrupt() -> Iterator[SignalRecord]:
    """Within the block, SIGTERM raises :class:`Terminated` (once; later SIGTERMs during cleanup are recorded
    only) and SIGINT is recorded before Python raises its ``KeyboardInterrupt``. The handlers of before are
    restored on exit. Outside the main thread (where signals cannot be handled) the block runs unchanged.

    Yields:
        a :class:`SignalRecord` whose ``signum`` is the first signal received, for the exit status.
    """
    record = SignalRecord()
    if threading.current_thread() is not threading.main_thread():
        yield record
        return
    _active.append(record)
    owner = os.getpid()

    # A process forked in the block (a DataLoader worker) inherits these handlers until it installs its own;
    # a signal sent to the whole process group in that window is left to this process, which stops its
    # workers, instead of raising in the child and printing the child's traceback.
    def on_term(signum: int, frame: Any) -> None:
        if os.getpid() != owner:
            return
        if record.signum is None:
            record.signum = signum
            raise Terminated()

    def on_int(signum: int, frame: Any) -> None:  # Python's own handler, which also records the signal
        if os.getpid() != owner:
            return
        if record.signum is None:
            record.signum = signum
        raise KeyboardInterrupt

    previous_int = signal.getsignal(signal.SIGINT)

    previous_hook = sys.unraisablehook

    def on_unraisable(unraisable: Any) -> None:  # "Exception ignored in ...": check() raises it again
        if not (isinstance(unraisable.exc_value, KeyboardInterrupt) and record.signum is not None):
            previous_hook(unraisable)

    sys.unraisablehook = on_unraisable
    previous_term = signal.signal(signal.SIGTERM, on_term)
    if previous_int is signal.default_int_handler:
        signal.signal(signal.SIGINT, on_int)
    try:
        yield record
    finally:
        _active.remove(record)
        sys.unraisablehook = previous_hook
        signal.signal(signal.SIGTERM, previous_term)
        if previous_int is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous_int)


def exit_status(signum: int | None) -> int:
    """The shell's status of a process stopped by ``signum``: 128 + the signal number (130 SIGINT, 143 SIGTERM)."""
    return 128 + int(signum if signum is not None else signal.SIGINT)


def interrupt_line(command: str, signum: int | None, hint: str = "") -> str:
    """``adaaug <command>: interrupted by SIGTERM[; hint]``: the one line an interrupted command ends with."""
    name = signal.Signals(signum).name if signum is not None else "SIGINT"
    return f"adaaug {command}: interrupted by {name}" + (f"; {hint}" if hint else "")


def leave_interrupts_to_main(*_: Any) -> None:
    """``worker_init_fn`` of a ``DataLoader``: its workers ignore SIGINT and SIGTERM, which a terminal or a
    scheduler sends to the whole process group; the main process handles them and shuts the workers down,
    instead of each dying and the main process reporting a dead worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _worker_start(initializer: Callable[..., Any] | None, initargs: tuple) -> None:
    """Pool worker start: Ctrl-C in a terminal reaches the whole process group; the main process handles it
    (it stops the workers), so a worker ignores SIGINT instead of printing its own traceback.

    A worker's progress bars lock with a thread lock: tqdm's default also takes a multiprocessing semaphore,
    which a worker terminated on an interrupt never releases, and Python's resource tracker then warns of
    "leaked semaphore objects" after the command's last line.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from tqdm import tqdm

    tqdm.set_lock(threading.RLock())
    if initializer is not None:
        initializer(*initargs)


def _ready() -> None:
    """A no-op run once per worker when the pool starts, so that every worker is launched up front."""


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT and SIGTERM received in the block take effect when it ends (their handlers run then)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in handlers:
        signal.signal(sig, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        for signum in pending[:1]:
            signal.raise_signal(signum)


@contextmanager
def process_pool(workers: int, *, initializer: Callable[..., Any] | None = None,
                 initargs: tuple = ()) -> Iterator[Any]:
    """A ``concurrent.futures.ProcessPoolExecutor`` of ``workers`` spawned processes.

    On leaving the block normally it waits for the submitted work; when the block raises (an error, Ctrl-C,
    SIGTERM) it cancels the work not yet started and terminates the running workers before re-raising, so
    an interrupted command ends at once and leaves no worker behind. ``initializer(*initargs)`` runs in
    each worker (it must be picklable: a module-level function).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    before = set(multiprocessing.active_children())  # the pool's workers are the children started after this
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_start,
                               initargs=(initializer, initargs))
    try:
        with _signals_deferred():  # a signal while a worker is being launched would cut its start-up pipe
            for future in [pool.submit(_ready) for _ in range(workers)]:
                future.result()
        yield pool
    except BaseException:
        def ours() -> list:
            return [c for c in multiprocessing.active_children() if c not in before]

        for p in ours():  # before the pool closes its pipes: a worker still starting would fail reading them
            p.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + 10
        while ours() and time.monotonic() < deadline:
            time.sleep(0.02)
        for p in ours():  # one that got SIGTERM before it could act on it
            p.kill()
            p.join(timeout=5)
        raise
    pool.shutdown(wait=True)
