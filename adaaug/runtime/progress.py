"""Progress bars for the long commands (tqdm, on stderr), switched off by ``--no-progress``.

``adaaug <command> --no-progress`` sets the environment variable ``ADAAUG_PROGRESS=0`` for the
duration of the command, so worker processes started by the command (``spawn``) inherit the
setting. Library calls show no bar unless they are asked to (``enabled()`` is false unless a
command turned bars on, or ``ADAAUG_PROGRESS=1`` is set by the user).
"""
from __future__ import annotations

import os
import sys
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

ENV = "ADAAUG_PROGRESS"


def enabled() -> bool:
    """Whether bars are shown: ``ADAAUG_PROGRESS`` is ``1`` (set by the command line unless ``--no-progress``)."""
    return os.environ.get(ENV, "0") == "1"


def bar(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str | None = None,
        unit: str = "it", leave: bool = False) -> "Iterator[T]":
    """A tqdm bar on stderr over ``iterable`` (or a manual bar with ``total``); disabled unless :func:`enabled`."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, file=sys.stderr,
                disable=not enabled(), dynamic_ncols=True)


def duration(seconds: float) -> str:
    """``42 s``, ``12 min``, ``3.4 h`` or ``2.1 days``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


_duration = duration  # the name of earlier versions


class StepClock:
    """The time per step, measured on the first steps of a run, and what it means for the run.

    Step 0 is a warm-up (first-call allocations, autotuning) and is not timed. The estimate is printed
    after step 1, the first timed step, and once more after step ``timed`` if the steps in between
    changed it by more than a quarter. Each line is written above the progress bar (``tqdm.write``), never
    glued to it. Call :meth:`tick` after every step with its index; ``sync`` (e.g.
    ``torch.cuda.synchronize``) makes the clock wait for queued device work at the timing points only.

    Args:
        label: what is being timed, e.g. ``"ada+augmix"``. steps_per_epoch: steps in one epoch.
        epochs_left: epochs this run will still train. timed: steps to time after the warm-up.
        sync: called before reading the clock. stream: where the lines go (default stderr).
    """

    def __init__(self, label: str, steps_per_epoch: int, epochs_left: int, *, timed: int = 5,
                 sync=None, stream=None) -> None:
        self.label, self.steps, self.epochs = label, steps_per_epoch, epochs_left
        self.last = min(timed, steps_per_epoch - 1)
        self.sync, self.stream = sync, stream
        self.start: float | None = None
        self.estimate: dict | None = None

    def tick(self, step: int) -> None:
        """Record that step ``step`` (0-based) has finished; prints the estimate after steps 1 and ``timed``."""
        import time

        if self.last < 1 or step not in (0, 1, self.last) or (step > 0 and self.start is None):
            return
        if self.estimate is not None and self.estimate["timed_steps"] >= step:
            return
        if self.sync is not None:
            self.sync()
        now = time.perf_counter()
        if step == 0:
            self.start = now
            return
        per_step = (now - self.start) / step
        first = self.estimate is None
        if not first and abs(per_step - self.estimate["step_s"]) <= 0.25 * self.estimate["step_s"]:
            self.estimate["timed_steps"] = step  # confirmed: said once is enough
            return
        self.estimate = {"step_s": per_step, "epoch_s": per_step * self.steps,
                         "run_s": per_step * self.steps * self.epochs, "timed_steps": step}
        steps = "step 2" if step == 1 else f"steps 2-{step + 1}"
        self._write(f"{self.label}: {per_step:.3g} s per step on this machine, so about "
                    f"{duration(self.estimate['epoch_s'])} per epoch ({self.steps} steps) and "
                    f"{duration(self.estimate['run_s'])} for the {self.epochs} epoch{'s' * (self.epochs != 1)} to go "
                    f"({'' if first else 'revised, '}measured on {steps}; evaluation not included)")

    def _write(self, line: str) -> None:
        from tqdm import tqdm

        tqdm.write(line, file=self.stream or sys.stderr)  # clears any bar on that stream, then redraws it
        (self.stream or sys.stderr).flush()
