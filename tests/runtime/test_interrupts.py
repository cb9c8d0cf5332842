"""Killed the way schedulers kill: SIGTERM stops every command as Ctrl-C does, with one line and 143.

Each command path is run as a subprocess and sent SIGTERM mid-run (``make-c`` with worker processes,
``deepaugment-data``, ``train`` with DataLoader workers, then resumed bitwise); leftovers of runs killed
outright (SIGKILL) are removed by the next run.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from adaaug.runtime.interrupts import Terminated, exit_status, interrupt_line, process_pool, terminate_as_interrupt


def _start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "adaaug", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def _terminate_when(proc: subprocess.Popen, ready, timeout: float = 60.0) -> tuple[int, str, str]:
    """Send SIGTERM once ``ready()`` holds (the command is mid-run); returns its exit status and output."""
    end = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, "the command never reached the point to interrupt"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def _one_line(err: str, command: str) -> str:
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()]
    assert "Traceback" not in err, err
    assert lines[-1].startswith(f"adaaug {command}: interrupted by SIGTERM"), err
    return lines[-1]


# ---- the mechanism ------------------------------------------------------------------------------
def test_sigterm_raises_an_interrupt_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt) as caught, terminate_as_interrupt() as record:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts the sleep
    assert isinstance(caught.value, Terminated) and record.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before
    assert (exit_status(signal.SIGTERM), exit_status(signal.SIGINT), exit_status(None)) == (143, 130, 130)
    assert interrupt_line("train", signal.SIGTERM, "add --resume") == "adaaug train: interrupted by SIGTERM; add --resume"


def test_an_interrupt_swallowed_on_the_way_is_raised_again_at_the_next_check():
    from adaaug.runtime.interrupts import check

    check()  # no block on: nothing to raise
    with pytest.raises(Terminated), terminate_as_interrupt():
        try:  # where the exception lands in code that ignores it (a __del__, an after-fork callback)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        except BaseException:
            pass
        check()
    check()  # the block is over


def _sleep(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _sleep_then_exit(seconds: float) -> None:
    time.sleep(seconds)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_child_forked_in_the_block_leaves_the_signal_to_the_parent(capfd, signum):
    # A DataLoader worker is forked with the block's handlers and runs them until its worker_init_fn;
    # a process-group signal in that window must not raise in the child (its traceback on stderr).
    import multiprocessing

    with terminate_as_interrupt() as record:
        child = multiprocessing.get_context("fork").Process(target=_sleep_then_exit, args=(1.0,))
        child.start()
        time.sleep(0.2)
        os.kill(child.pid, signum)
        child.join(timeout=10)
    assert child.exitcode == 0 and record.signum is None  # the child went on; the parent received nothing
    assert "Traceback" not in capfd.readouterr().err


def test_process_pool_stops_its_workers_when_interrupted():
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt), process_pool(2) as pool:
        for _ in range(4):
            pool.submit(_sleep, 30)
        while not any(p.is_alive() for p in (pool._processes or {}).values()):
            time.sleep(0.01)
        workers = list(pool._processes.values())
        raise KeyboardInterrupt
    for p in workers:  # a worker still starting up may take a moment to die; one left running sleeps 30 s
        p.join(timeout=5)
    assert time.monotonic() - t0 < 25  # not 2 × 30 s of queued work
    assert workers and all(not p.is_alive() for p in workers)


_POOL_WITH_BARS = """
import os, signal, sys, time
from adaaug.runtime.interrupts import process_pool, terminate_as_interrupt

def work(n):
    from tqdm import tqdm
    for _ in tqdm(range(n), file=sys.stderr, mininterval=0.5):
        time.sleep(0.05)

if __name__ == "__main__":
    try:
        with terminate_as_interrupt(), process_pool(2) as pool:
            futures = [pool.submit(work, 400) for _ in range(2)]
            while not all(f.running() for f in futures):
                time.sleep(0.05)
            time.sleep(1.0)  # the workers' bars are drawing
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
    except KeyboardInterrupt:
        print("the one line", file=sys.stderr)
"""


def test_workers_stopped_mid_progress_bar_leave_no_resource_warning(tmp_path):
    # mini-protocol --jobs 2: the workers' tqdm bars held a multiprocessing semaphore; terminated, they never
    # released it and Python's resource tracker warned of "leaked semaphore objects" after the command's last line
    script = tmp_path / "pool_with_bars.py"
    script.write_text(_POOL_WITH_BARS)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    err = done.stderr.replace("\r", "\n")
    assert "the one line" in err and "leaked" not in err and "Traceback" not in err, err


# ---- make-c --------------------------------------------------------------------------------------
def test_make_c_sigterm_with_workers_leaves_nothing(make_image_folder, tmp_path):
    src = make_image_folder(tmp_path / "src", 3, seed=0, suffix=".png")
    out = tmp_path / "c"
    proc = _start("make-c", str(src), str(out), "--workers", "2", "--no-progress")
    rc, _, err = _terminate_when(proc, lambda: out.is_dir() and any(out.glob(".*.tmp.npy")))
    assert rc == 143
    _one_line(err, "make-c")
    assert not out.exists()  # the folder it created, with its hidden temporary files


def test_make_c_removes_leftovers_of_a_killed_run(make_image_folder, tmp_path):
    from adaaug.corruptions.dataset import make_c

    src = make_image_folder(tmp_path / "src", 1, seed=0, suffix=".png")
    out = tmp_path / "c"
    out.mkdir()
    for name in (".snow.tmp.npy", ".make_c.images.tmp.npy"):  # as SIGKILL leaves them
        np.save(out / name, np.zeros(3, np.uint8))
    make_c(str(src), out, corruptions=["fog"], verbose=False)  # the leftovers alone do not make OUT "not empty"
    assert sorted(p.name for p in out.iterdir()) == ["fog.npy", "labels.npy", "make_c.json"]
    other = tmp_path / "c2"
    other.mkdir()
    np.save(other / ".snow.tmp.npy", np.zeros(3, np.uint8))
    (other / ".keep.tmp.npy").write_bytes(b"not ours")
    with pytest.raises(FileExistsError, match="--overwrite"):  # a file that is not ours: refused, and kept
        make_c(str(src), other, corruptions=["fog"], verbose=False)
    assert sorted(p.name for p in other.iterdir()) == [".keep.tmp.npy"]


# ---- deepaugment-data -------------------------------------------------------------------------------
def test_deepaugment_data_sigterm_removes_what_it_wrote(make_image_folder, tmp_path):
    src = make_image_folder(tmp_path / "src", 3, seed=0, suffix=".png")
    dst = tmp_path / "da"
    proc = _start("deepaugment-data", str(src), str(dst), "--weights", "none", "--batch-size", "1", "--no-progress")
    rc, _, err = _terminate_when(proc, lambda: dst.is_dir() and any(dst.glob("*/*.png")))
    assert rc == 143
    _one_line(err, "deepaugment-data")
    assert not dst.exists()


def test_deepaugment_data_rerun_after_sigkill_needs_no_overwrite(make_image_folder, tmp_path, capsys):
    from adaaug.cli import main
    from adaaug.train.deepaugment_data import MARKER

    src = make_image_folder(tmp_path / "src", 1, seed=0, suffix=".png")
    dst = tmp_path / "da"
    (dst / "airplane").mkdir(parents=True)  # what a run killed outright left: a folder, a file, its marker
    (dst / "airplane" / "00000.png").write_bytes(b"partial")
    (dst / MARKER).write_text(json.dumps({"created_dst": True, "created": ["airplane"]}))
    assert main(["deepaugment-data", str(src), str(dst), "--weights", "none", "--no-progress"]) == 0
    assert "killed before it finished" in capsys.readouterr().err
    written = sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file())
    assert written == sorted([str(p.relative_to(src)).rsplit(".", 1)[0] + ".png" for p in src.rglob("*.png")]
                             + ["deepaugment_data.json"])  # the images and the record of what was written
    # a folder that holds something else still needs --overwrite
    other = tmp_path / "other"
    other.mkdir()
    (other / "mine.txt").write_text("keep")
    assert main(["deepaugment-data", str(src), str(other), "--weights", "none", "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err and (other / "mine.txt").exists()


# ---- train ---------------------------------------------------------------------------------------------
def test_train_sigterm_mid_run_then_resume_is_bitwise(cifar_train_subset, tmp_path):
    """SIGTERM (to the process group, as ``timeout`` sends it) during epoch 2 of a streamed run with a DataLoader
    worker: exit 143 with one line naming --resume; resuming ends with the uninterrupted run's weights."""
    from safetensors.torch import load_file

    from adaaug.train.config import TrainConfig
    from adaaug.train.loop import train

    settings = dict(data=str(cifar_train_subset), arch="resnet20", subset=96, batch_size=8, epochs=2,
                    warmup_epochs=0, device="cpu", threads=1, data_path="stream", workers=1, progress=False)
    train(TrainConfig(out=str(tmp_path / "straight"), **settings))
    out = tmp_path / "killed"
    flags = ["--data", str(cifar_train_subset), "--arch", "resnet20", "--subset", "96", "--batch-size", "8",
             "--epochs", "2", "--warmup-epochs", "0", "--device", "cpu", "--threads", "1", "--data-path", "stream",
             "--workers", "1", "--no-progress", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "adaaug", "train", *flags], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    end = time.monotonic() + 120
    while not (out / "checkpoint.pt").exists():
        assert proc.poll() is None and time.monotonic() < end, proc.communicate()
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGTERM)  # the main process and its DataLoader worker
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == 143
    assert "--resume" in _one_line(err, "train")
    assert not list(out.glob(".*.tmp*")) and not (out / "final.safetensors").exists()
    train(TrainConfig(out=str(out), resume=True, **settings))
    a, b = load_file(str(tmp_path / "straight" / "final.safetensors")), load_file(str(out / "final.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_train_removes_temporary_checkpoints_of_a_killed_run(tmp_path):
    from adaaug.train.checkpoint import remove_leftovers, save_atomic

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".checkpoint.pt.tmp-{int(dead.stdout)}"
    live = tmp_path / f".checkpoint.pt.tmp-{os.getppid()}"  # a process that is still running
    for p in (stale, live, tmp_path / ".final.safetensors.tmp", tmp_path / "notes.tmp"):
        p.write_bytes(b"x")
    assert sorted(remove_leftovers(tmp_path)) == sorted([stale.name, ".final.safetensors.tmp"])
    assert live.exists() and (tmp_path / "notes.tmp").exists()
    save_atomic({"a": 1}, tmp_path / "checkpoint.pt")
    assert not list(tmp_path.glob(f".checkpoint.pt.tmp-{os.getpid()}"))
