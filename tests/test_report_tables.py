"""Every markdown table the commands print or write is well-formed, and a -C set is named by what made it.

The report writers run on small generated results (and ``adaaug eval`` end to end on a few images): each
table has a header of named columns, a separator and rows of exactly as many cells.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from adaaug import cli
from adaaug.corruptions import BENCHMARK, EXTRA
from adaaug.runtime.markdown import cells, table

SEPARATOR = re.compile(r":?-{3,}:?")


def tables(text: str) -> list[list[str]]:
    """The markdown tables of ``text``: runs of consecutive lines that start with ``|``."""
    found, current = [], []
    for line in text.splitlines() + [""]:
        if line.lstrip().startswith("|"):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    return found


def assert_well_formed(text: str, expected_tables: int | None = None) -> int:
    """Every table: a header of non-empty cells, a separator of ``---`` cells, rows of the header's width."""
    found = tables(text)
    assert found, text
    if expected_tables is not None:
        assert len(found) == expected_tables, text
    for lines in found:
        header, sep, rows = cells(lines[0]), cells(lines[1]), [cells(line) for line in lines[2:]]
        assert all(header), (lines[0], text)
        assert len(sep) == len(header) and all(SEPARATOR.fullmatch(c) for c in sep), (lines[:2], text)
        for line, row in zip(lines[2:], rows):
            assert len(row) == len(header), (line, lines[0])
    return len(found)


# ---- the checker and the table builder ----------------------------------------------------------------------
def test_the_checker_finds_the_reported_malformation():
    bad = "| model | clean error | mCE |  |\n| --- | --- | --- |\n| m | 1.00 | – |  |"
    with pytest.raises(AssertionError):
        assert_well_formed(bad)
    with pytest.raises(AssertionError):
        assert_well_formed("| a | b |\n| --- | --- |\n| 1 | 2 | 3 |")
    assert_well_formed("| a | b |\n| --- | --- |\n| 1 | 2 |")


def test_table_escapes_pipes_and_newlines_and_refuses_ragged_rows():
    lines = table(["model", "note"], [["a|b", "line one\nline two"]])
    assert lines == ["| model | note |", "| --- | --- |", r"| a\|b | line one line two |"]
    assert cells(lines[2]) == [r"a\|b", "line one line two"]
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        table(["a", "b", "c"], [["1", "2"]])
    with pytest.raises(ValueError):
        table([], [])


# ---- adaaug eval -------------------------------------------------------------------------------------------
def _c_result(names, n=10) -> dict:
    ce = {c: 10.0 + i for i, c in enumerate(names)}
    bench = {c: ce[c] for c in BENCHMARK if c in ce}
    return {"errors": {c: [ce[c]] * 5 for c in names}, "ce": bench, "extra": {c: ce[c] for c in EXTRA if c in ce},
            "mce": float(np.mean(list(bench.values()))) if len(bench) == 15 else None,
            "n": 5 * n * len(names), "n_per_set": {c: [n] * 5 for c in names}, "classes": 10}


EVAL_CASES = {
    "everything": {"clean": {"error": 5.0, "accuracy": 95.0, "n": 10, "classes": 10},
                   "cifar10_c": _c_result(list(BENCHMARK) + list(EXTRA)),
                   "imagenet_c": {**_c_result(BENCHMARK), "normalized_ce": {c: 50.0 for c in BENCHMARK}},
                   "shift": {"cifar10.1": {"accuracy": 90.0, "n": 10, "classes": 10}},
                   "robust": {"method": "pgd", "n": 10, "clean_accuracy": 95.0, "Linf": {"0.00392157": 40.0},
                              "L2": {"0.5": 30.0}},
                   "param_noise": {"samples": 2, "seed": 0, "results": {
                       "0": {"clean_error": 5.0, **_c_result(BENCHMARK)},
                       "0.02": {"clean_error": 7.0, **_c_result(BENCHMARK)}}}},
    # the reported instance: parameter noise without a -C set (no corruption columns)
    "param noise alone": {"clean": {"error": 5.0, "n": 10, "classes": 10},
                          "param_noise": {"samples": 2, "seed": 0, "results": {"0": {"clean_error": 5.0},
                                                                                "0.02": {"clean_error": 7.0}}}},
    # the same kind: a -C set holding only extra corruptions (none of the 15)
    "extras only": {"clean": {"error": 5.0, "n": 10, "classes": 10}, "cifar10_c": _c_result(["speckle_noise"])},
    "some corruptions": {"clean": {"error": 5.0}, "cifar10_c": _c_result(["fog", "contrast", "saturate"])},
}


@pytest.mark.parametrize("name", list(EVAL_CASES))
def test_eval_report_tables_are_well_formed(name):
    from adaaug.evaluate.report import markdown_report

    text = markdown_report(EVAL_CASES[name], label="runs|ada")  # a label holding a pipe stays in its cell
    assert_well_formed(text)
    assert r"runs\|ada" in text


def test_eval_command_output_is_well_formed(tmp_path, capsys):
    """``adaaug eval --param-noise`` without a -C set: printed and written reports (the reported case)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("airplane", "automobile"):
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "data" / c / f"{i}.png")
    md = tmp_path / "r.md"
    assert cli.main(["eval", "--weights", "resnet20", "--data", str(tmp_path / "data"), "--param-noise", "0", "0.01",
                     "--noise-samples", "1", "--out", str(tmp_path / "r.json"), "--markdown", str(md),
                     "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert assert_well_formed(printed, expected_tables=1) == 1
    assert md.read_text().strip() == printed.strip()
    assert cells(tables(printed)[0][0]) == ["model", "clean error", "mCE"]


# ---- the -C set is named by what made it --------------------------------------------------------------------
def test_a_make_c_set_is_named_by_its_severity_table_and_size(tmp_path, capsys):
    """The reported case: ImageNet-C severities at 64 px, passed as --cifar-c, is not called CIFAR-10-C."""
    from PIL import Image

    from adaaug.evaluate.report import c_set_title

    rng = np.random.default_rng(1)
    for c in ("airplane", "automobile"):
        (tmp_path / "val64" / c).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "val64" / c / "0.png")
    assert cli.main(["make-c", str(tmp_path / "val64"), str(tmp_path / "c"), "--corruptions", "contrast",
                     "--no-progress"]) == 0
    capsys.readouterr()
    assert cli.main(["eval", "--weights", "resnet20", "--data", str(tmp_path / "val64"), "--cifar-c",
                     str(tmp_path / "c"), "--out", str(tmp_path / "r.json"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    heading = next(line for line in printed.splitlines() if line.startswith("### "))
    assert "ImageNet-C severities, 64×64 images" in heading and "from val64" in heading
    assert "CIFAR-10-C" not in heading
    assert_well_formed(printed)
    saved = json.loads((tmp_path / "r.json").read_text())["cifar10_c"]["set"]
    assert saved == {"severities": "imagenet", "height": 64, "width": 64, "source": "val64"}
    # without a manifest (the released sets), the option names it, as before
    assert c_set_title("cifar10_c", {}).startswith("CIFAR-10-C (")
    assert c_set_title("imagenet_c", {}).startswith("ImageNet-C (")
    assert "CIFAR-10-C severities, 32×32" in c_set_title(
        "imagenet_c", {"set": {"severities": "cifar", "height": 32, "width": 32}})


# ---- the experiments' reports ------------------------------------------------------------------------------
def _mini_row(method: str, k: int) -> dict:
    return {"method": method, "clean_error": 10.0 + k, "mce": 20.0 + k, "ce": {c: 20.0 + k for c in BENCHMARK}}


def test_mini_protocol_tables_are_well_formed():
    from adaaug.experiments.mini_report import markdown_table, report

    rows = [_mini_row("nominal", 0), _mini_row("ada", 1), {**_mini_row("augmix", 2), "mce": None}]
    assert_well_formed(markdown_table(rows), expected_tables=1)
    assert_well_formed(markdown_table(rows, corruptions=()), expected_tables=1)  # no corruption columns
    settings = dict(epochs=1, batch_size=8, lr=0.1, weight_decay=5e-4, backbone="edsr", backbone_weights=None,
                    nu=0.015, ada_steps=1, seed=0, data="train", dev="dev")
    assert_well_formed(report({"settings": settings, "train_images": 16, "dev_images": 8, "rows": rows,
                               "paper_mce": {"nominal": 29.37}}), expected_tables=1)


def test_finetune_report_tables_are_well_formed():
    pytest.importorskip("scipy")
    from adaaug.experiments.finetune_config import FinetuneConfig
    from adaaug.experiments.finetune_report import report, row_name, summarise

    cfg = FinetuneConfig(data="train", dev="dev", out="out", seeds=(0, 1))
    records = [{"row": row_name(m, b), "key": {"seed": s}, "clean_error": 10.0 + s + i, "mce": 20.0 + s * 0.5 + i,
                "ce": {c: 20.0 + i for c in BENCHMARK}, "train_s": 1.0}
               for i, (m, b) in enumerate(cfg.rows()) for s in cfg.seeds]
    packaged = {"clean_error": 9.0, "mce": 19.0, "ce": {c: 19.0 for c in BENCHMARK}}
    assert_well_formed(report(summarise(cfg, records, packaged)), expected_tables=3)


def test_bench_suite_tables_are_well_formed():
    """A failed part's note is its error message: several lines, holding a ``|``, in one cell."""
    from adaaug.experiments.bench_suite import markdown

    env = {"device_name": "a CPU", "device": "cpu", "torch": "2", "commit": "abc", "date": "today"}
    parts = {"cuda-tests": {"status": "failed", "seconds": 1.0, "error": "RuntimeError: a | b\n  at line 2"},
             "memory": {"status": "ok", "seconds": 2.0, "config": {"batch": 4, "steps": 1, "measure": "RSS"},
                        "peak_mb": {"1": 10.0, "8": 20.0}},
             "imagenet": {"status": "ok", "seconds": 3.0, "nominal_step_s": 0.1, "nominal_images_per_s": 10.0,
                          "ada_step_s": 1.0, "ada_images_per_s": 1.0,
                          "config": {"classifier": "resnet50", "size": 224, "batch": 2, "steps": 1, "chunk_size": 1,
                                     "backbone_weights": None}}}
    assert_well_formed(markdown({"environment": env, "sizes": "ci", "parts": parts}), expected_tables=3)


def test_gpu_compare_table_is_well_formed():
    from adaaug.experiments.gpu_compare import markdown

    row = {"clean_error": 10.0, "mce": 20.0, "train_s": 5.0, "steps": 10, "steps_planned": 10}
    results = {"settings": {"size": "tiny", "backbone": "edsr", "ada_steps": 1, "nu": 0.015},
               "environment": {"device_name": "a CPU", "torch": "2", "commit": "abc", "date": "today"},
               "rows": {"nominal": row, "ada": {**row, "ada_ssim_median": 0.9, "stopped_at_step": 5}},
               "train_images": 10, "dev_images": 10, "recipe": {"epochs": 1, "batch_size": 4}}
    assert_well_formed(markdown(results), expected_tables=1)
