"""The time estimate printed at the start of a training run: arithmetic against a fake clock."""
from __future__ import annotations

import io
import time

import pytest

from adaaug.runtime.progress import StepClock, _duration


def test_step_clock_times_steps_after_the_warm_up(monkeypatch):
    now = iter([100.0, 102.4, 112.5])  # after step 0 (warm-up), step 1 and step 5
    monkeypatch.setattr(time, "perf_counter", lambda: next(now))
    out, synced = io.StringIO(), []
    clock = StepClock("train", steps_per_epoch=391, epochs_left=10, timed=5, sync=lambda: synced.append(1),
                      stream=out)
    for step in range(391):
        clock.tick(step)
    # said after the first timed step (2.4 s); steps 2-5 confirm it within a quarter, so it is not said again
    assert clock.estimate["step_s"] == pytest.approx(2.4) and clock.estimate["timed_steps"] == 5
    assert out.getvalue().count("\n") == 1 and len(synced) == 3  # printed once; the device waited 3 times
    assert "2.4 s per step" in out.getvalue() and "16 min per epoch (391 steps)" in out.getvalue()
    assert "2.6 h for the 10 epochs to go" in out.getvalue() and "measured on step 2;" in out.getvalue()


def test_step_clock_revises_an_estimate_the_later_steps_change(monkeypatch):
    now = iter([0.0, 1.0, 20.0])  # step 1 took 1 s, steps 2-5 took 19 s: 4 s per step over steps 1-5
    monkeypatch.setattr(time, "perf_counter", lambda: next(now))
    out = io.StringIO()
    clock = StepClock("train", steps_per_epoch=100, epochs_left=1, stream=out)
    for step in range(10):
        clock.tick(step)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("train: 1 s per step") and "revised" in lines[1]
    assert clock.estimate["step_s"] == pytest.approx(4.0) and "measured on steps 2-6" in lines[1]


def test_step_clock_line_is_not_glued_to_a_progress_bar():
    """The bar's line has no newline; the estimate clears it, takes a line of its own, then the bar returns."""
    from tqdm import tqdm

    out = io.StringIO()
    bar = tqdm(total=10, file=out, mininterval=0, desc="ada epoch 1/1")
    bar.update(1)
    clock = StepClock("adaaug train --method ada", steps_per_epoch=10, epochs_left=1, stream=out)
    clock.tick(0)
    clock.tick(1)
    bar.update(1)
    bar.close()
    text = out.getvalue()
    (line,) = [seg for seg in text.split("\n") if "s per step" in seg]
    assert line.split("\r")[-1].startswith("adaaug train --method ada: ")  # starts the visible line
    assert line.rstrip().endswith("evaluation not included)")  # and the bar is not appended to it
    assert "ada epoch 1/1" in text.split(line)[1]  # the bar is drawn again below


def test_step_clock_says_nothing_for_a_one_step_epoch():
    out = io.StringIO()
    clock = StepClock("train", steps_per_epoch=1, epochs_left=3, stream=out)
    clock.tick(0)
    assert clock.estimate is None and out.getvalue() == ""


def test_durations():
    assert [_duration(s) for s in (42, 600, 3 * 3600, 5 * 86400)] == ["42 s", "10 min", "3.0 h", "5.0 days"]
