"""The time estimate printed at the start of a training run: arithmetic against a fake clock."""
from __future__ import annotations

import io
import time

from adaaug.runtime.progress import StepClock, _duration


def test_step_clock_times_steps_after_the_warm_up(monkeypatch):
    now = iter([100.0, 112.5])  # after step 0 (warm-up), after step 5
    monkeypatch.setattr(time, "perf_counter", lambda: next(now))
    out, synced = io.StringIO(), []
    clock = StepClock("train", steps_per_epoch=391, epochs_left=10, timed=5, sync=lambda: synced.append(1),
                      stream=out)
    for step in range(391):
        clock.tick(step)
    assert clock.estimate == {"step_s": 2.5, "epoch_s": 977.5, "run_s": 9775.0, "timed_steps": 5}
    assert out.getvalue().count("\n") == 1 and len(synced) == 2  # printed once; the device waited twice
    assert "2.5 s per step" in out.getvalue() and "16 min per epoch (391 steps)" in out.getvalue()
    assert "2.7 h for the 10 epochs to go" in out.getvalue()


def test_step_clock_says_nothing_for_a_one_step_epoch():
    out = io.StringIO()
    clock = StepClock("train", steps_per_epoch=1, epochs_left=3, stream=out)
    clock.tick(0)
    assert clock.estimate is None and out.getvalue() == ""


def test_durations():
    assert [_duration(s) for s in (42, 600, 3 * 3600, 5 * 86400)] == ["42 s", "10 min", "3.0 h", "5.0 days"]
