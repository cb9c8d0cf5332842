"""The notebooks in notebooks/ run, in their quick mode, and draw their figure.

Each notebook is executed with ``ADAAUG_NB_SMALL=1`` (few images and steps; untrained networks where
adaaug has no packaged weights) from an in-memory copy, in a temporary directory: the committed
notebook and its outputs are never touched. About 10–20 s per notebook on 2 CPU cores.
"""
from __future__ import annotations

import base64
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="needs the notebooks extra: pip install 'adaaug[notebooks]'")
nbclient = pytest.importorskip("nbclient", reason="needs the notebooks extra: pip install 'adaaug[notebooks]'")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
FIGURES = {"01_quickstart.ipynb": "fig1_ada_examples.png",
           "02_ssim_distributions.ipynb": "fig2_ssim_distributions.png",
           "03_corruption_coverage.ipynb": "fig3_corruption_coverage.png"}
PNG = b"\x89PNG\r\n\x1a\n"


def test_every_notebook_is_tested() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(FIGURES)


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_notebook_runs_in_quick_mode(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = NOTEBOOKS / name
    committed = path.read_bytes()
    nb = nbformat.reads(committed.decode(), as_version=4)
    monkeypatch.setenv("ADAAUG_NB_SMALL", "1")
    monkeypatch.setenv("ADAAUG_NB_OUT", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel inherits the environment; 1 thread is fastest here
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", record_timing=False,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the failing cell and traceback, on any error
    nbformat.write(nb, tmp_path / name)  # the executed copy, for inspection when something looks wrong

    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    images = [o["data"]["image/png"] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert images, f"{name} displayed no figure"
    assert base64.b64decode(images[-1])[:8] == PNG
    figure = tmp_path / FIGURES[name]
    assert figure.read_bytes()[:8] == PNG and figure.stat().st_size > 10_000
    assert path.read_bytes() == committed  # the committed notebook is left as it was
