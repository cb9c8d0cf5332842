"""The package's layers point one way: core ← augment ← data, runtime ← corruptions ← evaluate, train
← experiments ← cli. No module imports one of a higher layer or a peer package, at import time or
inside a function, and no modules import each other in a circle (the map is in docs/design.md)."""
from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import adaaug

PACKAGE = Path(adaaug.__file__).parent

#: rank of each subpackage; modules directly under ``adaaug`` (and ``adaaug.backbones``) are the core, 0.
#: A module may import its own package and packages of a lower rank only: peers do not import each other.
LAYERS = {"augment": 1, "data": 2, "runtime": 2, "corruptions": 3, "evaluate": 4, "train": 4, "experiments": 5,
          "cli": 6, "__main__": 7, "protocol": 8, "facade": 9}
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _package(module: str) -> str:
    """The layer a module belongs to: its first component under ``adaaug`` when that is a layer, else core;
    the root package, whose lazy names reach every layer (``TYPE_CHECKING`` imports only), is the facade."""
    if module == "adaaug":
        return "facade"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "core"


def _rank(module: str) -> int:
    return LAYERS.get(_package(module), 0)


def _from_imports(module: str) -> list[tuple[str, list[str]]]:
    """``(target module, imported names)`` of every ``import`` / ``from … import`` of an adaaug module in
    ``module``, anywhere in it (top level, functions, ``TYPE_CHECKING`` blocks), relative ones resolved."""
    path = MODULES[module]
    here = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names if a.name.split(".")[0] == "adaaug"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "adaaug":
                found.append((target, [a.name for a in node.names]))
    return found


def imports(module: str) -> set[str]:
    """Every adaaug module ``module`` imports anywhere (see :func:`_from_imports`).

    ``from pkg import name`` counts as an import of ``pkg.name`` when that is a module, else of ``pkg``;
    the root package ``adaaug`` (a lazy facade that imports nothing at run time) is left out."""
    found: set[str] = set()
    for target, names in _from_imports(module):
        subs = {f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES}
        found |= subs if names and len(subs) == len(names) else subs | {target}
    return {m for m in found if m != "adaaug" and m != module}


def test_the_scan_sees_every_kind_of_import():
    # the scanner itself: a relative, an absolute, a function-level and a from-package import of a module
    assert {"adaaug.evaluate.labels", "adaaug.corruptions", "adaaug.evaluate.sets"} <= imports("adaaug.evaluate.metrics")
    assert "adaaug.runtime.progress" in imports("adaaug.evaluate.metrics")  # imported inside a function
    assert "adaaug.experiments.bench_measure" in imports("adaaug.experiments.bench_suite")  # from . import x as y
    assert "adaaug.paper" in imports("adaaug.augment.augmix")  # from .. import paper
    assert _package("adaaug.transform") == "core" and _package("adaaug.backbones.edsr") == "core"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_higher_layer_or_a_peer(module):
    bad = [m for m in sorted(imports(module)) if _package(m) != _package(module) and _rank(m) >= _rank(module)]
    assert not bad, f"{module} (layer {_package(module)}) imports {bad}: move the shared code down a layer"


def test_no_import_cycles():
    graph = {m: imports(m) & set(MODULES) for m in MODULES if _package(m) != "protocol"}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles: " + "; ".join(" → ".join(c) for c in cycles)


def test_importing_a_layer_loads_no_higher_layer():
    # at run time too: import every module of a layer with no adaaug module loaded, list what else got imported.
    # One interpreter for all layers (torch is imported once): before each layer, every adaaug module is
    # dropped from sys.modules, so each layer starts as in a fresh interpreter as far as adaaug is concerned.
    layers = ("augment", "data", "runtime", "corruptions", "evaluate", "train")
    code = ("import importlib, json, sys\n"
            "loaded = {}\n"
            "for layer, mods in json.loads(sys.argv[1]).items():\n"
            "    for m in [m for m in sys.modules if m == 'adaaug' or m.startswith('adaaug.')]: del sys.modules[m]\n"
            "    for m in mods: importlib.import_module(m)\n"
            "    loaded[layer] = sorted(m for m in sys.modules if m.startswith('adaaug'))\n"
            "print(json.dumps(loaded))")
    mods = {layer: [m for m in MODULES if _package(m) == layer] for layer in layers}
    out = subprocess.run([sys.executable, "-c", code, json.dumps(mods)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = json.loads(out.stdout.splitlines()[-1])
    assert sorted(loaded) == sorted(layers)
    for layer in layers:
        assert set(mods[layer]) <= set(loaded[layer])
        higher = [m for m in loaded[layer] if m != "adaaug" and _package(m) != layer and _rank(m) >= LAYERS[layer]]
        assert not higher, f"importing adaaug.{layer} loaded {higher}"


def test_modules_stay_small():
    big = {m: n for m, p in MODULES.items() if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines (split them by concern): {big}"


def test_every_layer_package_says_what_it_may_import():
    for layer in ("augment", "data", "runtime", "corruptions", "evaluate", "train", "experiments", "cli"):
        doc = getattr(__import__(f"adaaug.{layer}", fromlist=["_"]), "__doc__") or ""
        assert "Layer:" in doc, f"adaaug.{layer} has no 'Layer:' line in its docstring"


def test_every_import_inside_the_package_resolves():
    # imports inside functions only run when the function does: check each named object exists now
    missing = []
    for module in MODULES:
        if _package(module) == "protocol":
            continue
        for target, names in _from_imports(module):
            imported = importlib.import_module(target)
            missing += [f"{module}: from {target} import {n}" for n in names
                        if not hasattr(imported, n) and f"{target}.{n}" not in MODULES]
    assert not missing, missing
