"""The shared output checks: result files refused unless ``--overwrite``; resumable run folders marked by a
manifest, continued with the same settings, refused with others, and replaced (their own names only)."""
from __future__ import annotations

import json

import pytest

from adaaug.runtime.outdir import claim_output_files, claim_run_folder

NAMES = ("runs", "results.json")


def test_claim_output_files_refuses_existing_files_unless_overwrite(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "sub" / "b.json"
    assert claim_output_files([a, b], overwrite=False) == []  # nothing there: fine, nothing created
    assert not b.parent.exists()
    a.write_text("earlier")
    with pytest.raises(FileExistsError, match=r"a.json exists \(an earlier run's output\): pass --overwrite"):
        claim_output_files([a, b], overwrite=False)
    assert claim_output_files([a, b], overwrite=True) == [a]
    assert a.read_text() == "earlier"  # the check removes nothing; the command writes over it
    (tmp_path / "d.json").mkdir()
    with pytest.raises(FileExistsError, match="is not a file"):
        claim_output_files([tmp_path / "d.json"], overwrite=True)


def _mark(out):
    return json.loads((out / "m.json").read_text())


def test_run_folder_new_resume_other_settings_and_overwrite(tmp_path):
    out = tmp_path / "out"
    claim = dict(command="cmd", manifest="m.json", names=NAMES)
    assert claim_run_folder(out, settings={"epochs": 1}, overwrite=False, **claim) == "new"
    assert _mark(out) == {"command": "cmd", "settings": {"epochs": 1}, "names": list(NAMES)}
    (out / "runs").mkdir()
    (out / "runs" / "a.pt").write_text("trained")
    (out / "notes.txt").write_text("mine")
    assert claim_run_folder(out, settings={"epochs": 1}, overwrite=False, **claim) == "resume"
    with pytest.raises(FileExistsError, match=r"holds a cmd run with other settings \(epochs: 1 → 2\).*--overwrite"):
        claim_run_folder(out, settings={"epochs": 2}, overwrite=False, **claim)
    assert (out / "runs" / "a.pt").exists() and _mark(out)["settings"] == {"epochs": 1}  # untouched
    # a caller that keys its own cache does not compare
    assert claim_run_folder(out, settings={"epochs": 2}, overwrite=False, compare=False, **claim) == "resume"
    assert claim_run_folder(out, settings={"epochs": 3}, overwrite=True, **claim) == "replaced"
    assert sorted(p.name for p in out.iterdir()) == ["m.json", "notes.txt"]  # its own names went, the rest stays
    assert _mark(out)["settings"] == {"epochs": 3}


def test_run_folder_without_its_mark(tmp_path):
    out = tmp_path / "out"
    claim = dict(command="cmd", manifest="m.json", names=NAMES, settings={})
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="is not empty.*--overwrite"):
        claim_run_folder(out, overwrite=False, **claim)
    assert not (out / "m.json").exists()
    assert claim_run_folder(out, overwrite=True, **claim) == "new"  # goes in beside the user's file
    assert (out / "notes.txt").read_text() == "mine"
    # a folder another command wrote (names it would write into, no mark of this command) is not taken over
    other = tmp_path / "other"
    (other / "runs").mkdir(parents=True)
    (other / "m.json").write_text(json.dumps({"command": "another", "names": ["runs"]}))
    with pytest.raises(FileExistsError, match="holds m.json, runs, which no m.json there lists"):
        claim_run_folder(other, overwrite=True, **claim)
    assert (other / "runs").is_dir()
