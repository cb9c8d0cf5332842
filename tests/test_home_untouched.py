"""The suite writes nothing into the user's home: tests/conftest.py points every cache at a temporary directory.

One fresh interpreter, with ``HOME`` set to an empty directory and the rest of the environment as the tests
(and their subprocesses) see it, runs what writes caches in the suite: adaaug's decoded-folder cache,
matplotlib (font cache, config), torch.hub's directory, a Hugging Face Hub lookup, and the IPython and
Jupyter directories a notebook kernel uses. The home stays empty, and the files went where conftest says.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import ISOLATED_DIRS, UNSET

REPO = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, os, sys
from pathlib import Path

data, out = Path(sys.argv[1]), Path(sys.argv[2])
from adaaug.data import cache
from adaaug.data.images import load_image_folder

first = load_image_folder(data)  # decodes and writes the cache entry
again = load_image_folder(data)  # reads it back
assert (first.images == again.images).all()

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(2, 2))
ax.set_title("fonts")  # text: the font cache is built and saved
fig.savefig(out / "figure.png")

import torch.hub

os.makedirs(torch.hub.get_dir(), exist_ok=True)  # where torchvision keeps downloaded weights

os.environ["HF_HUB_OFFLINE"] = "1"
from huggingface_hub import constants, hf_hub_download

try:
    hf_hub_download("someone/not-cached", "model.safetensors", revision="v1")
except Exception as err:  # offline and not cached: expected
    hub_error = type(err).__name__

from IPython.paths import get_ipython_dir
from jupyter_core.paths import jupyter_config_dir, jupyter_data_dir, jupyter_runtime_dir

dirs = {"adaaug": cache.cache_dir(), "matplotlib_cache": matplotlib.get_cachedir(),
        "matplotlib_config": matplotlib.get_configdir(), "torch_hub": torch.hub.get_dir(),
        "hf_hub": constants.HF_HUB_CACHE, "ipython": get_ipython_dir(), "jupyter_config": jupyter_config_dir(),
        "jupyter_data": jupyter_data_dir(), "jupyter_runtime": jupyter_runtime_dir()}
print(json.dumps({"dirs": {k: str(v) for k, v in dirs.items()}, "hub_error": hub_error}))
"""


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_cache_writing_paths_leave_an_empty_home_empty(make_image_folder, tmp_path):
    data = make_image_folder(tmp_path / "data", per_class=1, classes=2)
    home = tmp_path / "home"
    home.mkdir()
    isolated = Path(os.environ["ADAAUG_CACHE"]).parent  # the session's directory for every cache
    assert all(Path(os.environ[var]).parent == isolated or isolated in Path(os.environ[var]).parents
               for var in ISOLATED_DIRS)
    assert not any(var in os.environ for var in UNSET)
    before = set((Path(os.environ["ADAAUG_CACHE"])).glob("*.npz"))
    env = {**os.environ, "HOME": str(home), "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(data), str(tmp_path)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.splitlines()[-1])

    assert _files(home) == [], f"written into HOME: {_files(home)}"
    for name, where in report["dirs"].items():  # every tool resolved its directory into the session's one
        assert isolated in Path(where).parents, (name, where)
    assert report["hub_error"]  # the lookup ran (and, offline with nothing cached, failed)
    # the writes happened, in the isolated directories: a new cache entry, matplotlib's font list
    assert len(set(Path(os.environ["ADAAUG_CACHE"]).glob("*.npz")) - before) == 1
    assert list(Path(report["dirs"]["matplotlib_cache"]).glob("fontlist-*.json"))
    assert (tmp_path / "figure.png").stat().st_size > 0
