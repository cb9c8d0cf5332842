"""A failure of a command's environment (no network, a full disk, a read-only folder, a missing package, out
of memory) ends with one line saying what failed and what to do, and exit status 1 (2 is a bad setting)."""
from __future__ import annotations

import builtins
import errno
import io
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from adaaug import cli
from adaaug.runtime.environment import EXIT_ENVIRONMENT, environment_message, is_environment_failure


def _one_line(capsys, argv: list[str], *expected: str) -> str:
    rc = cli.main(argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert rc == EXIT_ENVIRONMENT == 1, (argv, captured.err)
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith(f"adaaug {argv[0]}: error: "), lines[0]
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]


def _folder(root: Path, n: int = 2) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("airplane", "automobile"):  # two of CIFAR-10's classes (the packaged classifier's)
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_train_download_without_a_network(capsys, tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    root = tmp_path / "c10"
    line = _one_line(capsys, ["train", "--data", f"cifar10:{root}", "--download", "--out", str(tmp_path / "run"),
                              "--epochs", "1", "--warmup-epochs", "0", "--no-progress"],
                     "could not download CIFAR-10", "name resolution", "cifar-10-python.tar.gz", "--download")
    assert str(root / "cifar-10-batches-py") in line  # where to put the archive by hand
    assert not (tmp_path / "run").exists()


def test_cifar10_spec_without_the_data_names_a_fix_that_exists(capsys, tmp_path):
    """eval has no --download: the message says where the files go, and which command can fetch them."""
    rc = cli.main(["eval", "--weights", "resnet20", "--data", f"cifar10:{tmp_path}", "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "cifar-10-batches-py" in err and "adaaug train: --download" in err


def test_disk_full_while_writing(capsys, tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(args[0]))

    monkeypatch.setattr(np, "save", full)
    src = _folder(tmp_path / "src")
    _one_line(capsys, ["make-c", str(src), str(tmp_path / "c"), "--corruptions", "contrast", "--no-progress"],
              "no space left on the device", "free space there")
    assert not (tmp_path / "c").exists()  # nothing half-written is left


def _read_only(monkeypatch, folder: Path) -> None:
    """Make ``folder`` read-only: by its mode, and (root ignores modes) by refusing writes under it."""
    folder.chmod(0o555)
    if os.geteuid() != 0:
        return
    inside = str(folder.resolve()) + os.sep

    def refused(path) -> PermissionError:
        return PermissionError(errno.EACCES, "Permission denied", str(path))

    real_open, real_mkdir = builtins.open, os.mkdir

    def guarded_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and any(m in mode for m in "wax+") and \
                os.path.abspath(file).startswith(inside):
            raise refused(file)
        return real_open(file, mode, *args, **kwargs)

    def guarded_mkdir(path, *args, **kwargs):
        if os.path.abspath(path).startswith(inside):
            raise refused(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(io, "open", guarded_open)  # pathlib's write_text
    monkeypatch.setattr(os, "mkdir", guarded_mkdir)


def test_output_in_a_read_only_folder(capsys, tmp_path, monkeypatch):
    src = _folder(tmp_path / "src")
    locked = tmp_path / "locked"
    locked.mkdir()
    _read_only(monkeypatch, locked)
    try:
        line = _one_line(capsys, ["make-c", str(src), str(locked / "c"), "--corruptions", "contrast",
                                  "--no-progress"], "permission denied", "choose a file or folder")
        assert str(locked / "c") in line
        line = _one_line(capsys, ["eval", "--weights", "resnet20", "--data", str(src), "--out",
                                  str(locked / "r.json"), "--batch-size", "4", "--no-progress"], "permission denied")
        assert str(locked / "r.json") in line
    finally:
        locked.chmod(0o755)


def test_missing_optional_package(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "scipy.ndimage", None)
    src = _folder(tmp_path / "src")
    _one_line(capsys, ["make-c", str(src), str(tmp_path / "c"), "--size", "imagenet", "--corruptions",
                       "gaussian_blur", "--no-progress"], "scipy", 'pip install "adaaug[protocol]"')


def test_debug_variable_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAAUG_DEBUG", "1")
    monkeypatch.setattr(np, "save", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    with pytest.raises(OSError, match="full"):
        cli.main(["make-c", str(_folder(tmp_path / "src")), str(tmp_path / "c"), "--corruptions", "contrast",
                  "--no-progress"])


@pytest.mark.parametrize("err, expected", [
    (OSError(errno.ENOSPC, "No space left on device", "/data/out/x.npy"), "no space left on the device (/data/out/x.npy)"),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), "no space left on the device"),
    (OSError(errno.EROFS, "Read-only file system", "/mnt/x"), "the file system is read-only (/mnt/x)"),
    (PermissionError(errno.EACCES, "Permission denied", "/etc/x"), "permission denied (/etc/x)"),
    (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), "network failure"),
    (urllib.error.HTTPError("https://x", 503, "Service Unavailable", None, None), "HTTP 503 Service Unavailable"),
    (TimeoutError("timed out"), "network failure (timed out)"),
    (ModuleNotFoundError("No module named 'cv2'", name="cv2"), 'pip install "adaaug[protocol]"'),
    (ModuleNotFoundError("No module named 'foo'", name="foo"), "pip install foo"),
    (ImportError("cannot import name 'x' from 'y'"), "reinstall"),
    (OSError(errno.EIO, "Input/output error"), "Input/output error"),
])
def test_environment_messages(err, expected):
    assert is_environment_failure(err)
    message = environment_message(err)
    assert expected in message and "\n" not in message and "run again" in message or "pip install" in message


def test_out_of_memory_names_only_options_the_command_has():
    oom = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert is_environment_failure(oom) and not is_environment_failure(RuntimeError("shape mismatch"))
    both = environment_message(oom, {"--batch-size", "--chunk-size"}.__contains__)
    assert "out of memory (CUDA out of memory)" in both and "--batch-size or --chunk-size" in both
    assert "--chunk-size" not in environment_message(oom, {"--batch-size"}.__contains__)
    assert "--" not in environment_message(MemoryError(), lambda flag: False)


def test_a_bug_is_not_disguised_as_an_environment_failure(tmp_path, monkeypatch):
    """Not an environment failure (a bug, a KeyError): the traceback, as before."""
    monkeypatch.setattr(np, "save", lambda *a, **k: {}["missing"])
    with pytest.raises(KeyError):
        cli.main(["make-c", str(_folder(tmp_path / "src")), str(tmp_path / "c"), "--corruptions", "contrast",
                  "--no-progress"])
