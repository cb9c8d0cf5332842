"""``write_text_atomic``: a write stopped in the middle leaves the previous file whole and no temporary file."""
from __future__ import annotations

import pytest

from adaaug.runtime.files import write_text_atomic


def test_an_interrupted_write_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path / "suite-cuda.json"
    write_text_atomic(target, '{"parts": {"cuda-tests": "ok"}}\n')
    assert target.read_text() == '{"parts": {"cuda-tests": "ok"}}\n'
    import adaaug._files as files

    def stopped_halfway(fd):  # the bytes are written, a SIGINT comes before they are in place
        raise KeyboardInterrupt
    monkeypatch.setattr(files.os, "fsync", stopped_halfway)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(target, '{"parts": {"cuda-tests": "ok", "per-example": "ok"}}\n')
    monkeypatch.undo()
    assert target.read_text() == '{"parts": {"cuda-tests": "ok"}}\n'  # the earlier results, whole
    assert [p.name for p in tmp_path.iterdir()] == ["suite-cuda.json"]  # no temporary file left behind
    write_text_atomic(target, "new\n")
    assert target.read_text() == "new\n" and [p.name for p in tmp_path.iterdir()] == ["suite-cuda.json"]
