"""Every ``--option`` that the package's messages, docstrings and docs recommend exists where they recommend it.

The scan reads every string literal of ``adaaug/**/*.py`` (messages, help texts, docstrings; not the flag
names that ``add_argument`` defines) and README.md and docs/*.md. An option that follows ``adaaug <command>``
in the same string (or line of a doc) must exist on that command; any other option of a module's strings
must exist on each command that runs that module's code (:data:`MODULE_COMMANDS`, checked against the import
graph); an option in a doc line that names no command must exist on some command. A module that names an
option and is missing from the table fails the test, so a new message is checked too.
"""
from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

import pytest

from adaaug import cli

ROOT = Path(__file__).resolve().parents[1]
OPTION = re.compile(r"(?<![\w-])--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)(?![\w-])")
COMMAND = re.compile(r"\badaaug (" + "|".join(sorted(map(re.escape, cli._COMMANDS), key=len, reverse=True))
                     + r")(?![\w-])")
# programs other than adaaug that docs show with their own options: what follows them is theirs
FOREIGN = re.compile(r"\b(?:python3? (?!-m adaaug)|pip3? |bash |sh |pytest|git |torchrun|huggingface-cli)")
CODE_SPAN = re.compile(r"``.*?``|`[^`\n]*`")
# options of other programs that docs name in prose
OTHER_PROGRAMS = {"--no-deps": "pip", "--index-url": "pip"}
ALL, ANY = "all commands", "any command"

#: module → the commands that run its code and so print its messages (ALL: each command; ANY: a module shared
#: by several commands whose text speaks of options of some of them, each checked to exist on one).
MODULE_COMMANDS: dict[str, tuple[str, ...] | str] = {
    "cli/__init__.py": ALL,
    "cli/convert.py": ("convert-weights",),
    "cli/publish.py": ("publish-weights",),
    "corruptions/dataset.py": ("make-c",),
    "corruptions/loading.py": ("make-c",),
    "data/images.py": ("train", "make-c", "eval"),  # the others get BadImageError's message without the advice
    "evaluate/attacks.py": ("eval",),
    "evaluate/c_checks.py": ("eval",),
    "evaluate/command.py": ("eval",),
    "evaluate/labels.py": ("eval",),
    "evaluate/options.py": ("eval",),
    "evaluate/report.py": ("eval",),
    "evaluate/sets.py": ("eval",),
    "evaluate/sources.py": ("eval",),
    "experiments/bench.py": ("bench",),
    "experiments/bench_measure.py": ("bench",),
    "experiments/bench_suite.py": ("bench",),
    "experiments/demo.py": ("demo",),
    "experiments/finetune.py": ("finetune",),
    "experiments/finetune_options.py": ("finetune",),
    "experiments/archives.py": ("mini-protocol", "finetune", "gpu-compare"),
    "experiments/gpu_compare.py": ("gpu-compare",),
    "experiments/mini.py": ("mini-protocol",),
    "runtime/__init__.py": ANY,
    "runtime/devices.py": ANY,
    "runtime/environment.py": ANY,
    "runtime/errors.py": ANY,
    "runtime/outdir.py": ANY,
    "runtime/progress.py": ANY,
    "runtime/provenance.py": ANY,
    "train/backbone.py": ("train-backbone",),
    "train/backbone_command.py": ("train-backbone",),
    "train/checkpoint.py": ("train",),
    "train/checks.py": ("train",),
    "train/config.py": ("train",),
    "train/deepaugment_data.py": ("deepaugment-data",),
    "train/loop.py": ("train",),
    "train/options.py": ("train",),
    "train/run_folder.py": ("train",),
    "train/sources.py": ("train",),
    "train/timing.py": ("train",),
    "train/training_data.py": ("train",),
    "published_weights.py": ANY,
    "weights.py": ANY,
}


@lru_cache(maxsize=None)
def options_of(command: str) -> frozenset[str]:
    parser = cli.command_parser(command)
    return frozenset(s for a in parser._actions for s in a.option_strings)


def _exists(option: str, where: tuple[str, ...] | str) -> bool:
    if where == ALL:
        return all(option in options_of(c) for c in cli._COMMANDS)
    if where == ANY:
        return option in {"--help", "--version"} or any(option in options_of(c) for c in cli._COMMANDS)
    return all(option in options_of(c) for c in where)


def attributed(text: str, home: tuple[str, ...] | str) -> list[tuple[str, tuple[str, ...] | str]]:
    """``(option, where it must exist)`` for each option of ``text``: the command named before it (inside a
    code span, ```adaaug make-c --resize N```, only up to the span's end), else ``home``; options after another
    program's name (``python script.py``, ``pip``, ``git``) are skipped."""
    spans = [m.span() for m in CODE_SPAN.finditer(text)]

    def scope_end(start: int) -> int:
        return next((end for lo, end in spans if lo <= start < end), len(text))

    marks = [(m.start(), scope_end(m.start()), (m.group(1),)) for m in COMMAND.finditer(text)]
    marks += [(m.start(), scope_end(m.start()), None) for m in FOREIGN.finditer(text)]
    marks.sort(key=lambda mark: mark[0])
    found = []
    for m in OPTION.finditer(text):
        option, owner = f"--{m.group(1)}", home
        for start, end, command in marks:
            if start < m.start() < end:
                owner = command
        if owner is not None and option not in OTHER_PROGRAMS:
            found.append((option, owner))
    return found


def _defined_flags(tree: ast.AST) -> set[int]:
    """ids of the string constants that ``add_argument(...)`` defines as flags (not advice)."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            ids.update(id(a) for a in node.args if isinstance(a, ast.Constant))
    return ids


def module_texts() -> list[tuple[str, int, str, bool]]:
    """``(module, line, text, argv)`` of every string literal naming an option (f-strings: their literal parts),
    and of every list or tuple of strings holding an option (``argv``: a command line for a subprocess)."""
    out = []
    for path in sorted((ROOT / "adaaug").rglob("*.py")):
        tree = ast.parse(path.read_text())
        defined = _defined_flags(tree)
        parts = set()  # string elements of list and tuple literals: read as one command line
        for node in ast.walk(tree):
            if isinstance(node, (ast.List, ast.Tuple)):
                words = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
                if any(OPTION.fullmatch(w) for w in words):
                    parts.update(id(e) for e in node.elts)
                    # an argument list for a subprocess: its options belong to the command it names, else to some
                    out.append((str(path.relative_to(ROOT / "adaaug")), node.lineno, " ".join(words), True))
        for node in ast.walk(tree):
            if id(node) in parts:
                continue
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in defined:
                text = node.value
            else:
                continue
            if OPTION.search(text):
                out.append((str(path.relative_to(ROOT / "adaaug")), node.lineno, text, False))
    return out


def doc_lines() -> list[tuple[str, int, str]]:
    """``(page, line, text)`` of README.md and docs/*.md, a shell line continued with ``\\`` joined to the next."""
    out = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        lines = page.read_text().splitlines()
        i = 0
        while i < len(lines):
            start, text = i, lines[i]
            while text.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text.rstrip()[:-1] + " " + lines[i]
            out.append((page.name, start + 1, text))
            i += 1
    return out


def test_the_scan_sees_the_reported_advice():
    """The scan finds the advice of the issue, and would have caught it before make-c and eval had the option."""
    texts = [t for m, _, t, _ in module_texts() if m == "data/images.py"]
    assert any("--skip-bad-images" in t for t in texts)
    assert attributed("then run adaaug eval --cifar-c OUT (or adaaug make-c --resize N)", ()) == [
        ("--cifar-c", ("eval",)), ("--resize", ("make-c",))]
    assert attributed("python benchmarks/x.py --seeds 0 then adaaug train --out R", ()) == [("--out", ("train",))]
    assert attributed("a ``adaaug make-c --workers N`` run; then --budget-s", ("gpu-compare",)) == [
        ("--workers", ("make-c",)), ("--budget-s", ("gpu-compare",))]
    assert not _exists("--skip-bad-images", ("deepaugment-data",))


def test_every_module_that_names_options_is_mapped_to_its_commands():
    modules = {m for m, _, _, _ in module_texts()}
    assert modules <= set(MODULE_COMMANDS), sorted(modules - set(MODULE_COMMANDS))
    for commands in MODULE_COMMANDS.values():
        assert commands in (ALL, ANY) or set(commands) <= set(cli._COMMANDS), commands


@pytest.mark.parametrize("module", sorted(m for m, c in MODULE_COMMANDS.items() if c not in (ALL, ANY)))
def test_the_table_matches_the_import_graph(module):
    """Each listed command's module imports the module (directly or through others), so it can raise its
    messages."""
    import importlib

    name = "adaaug." + module.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
    for command in MODULE_COMMANDS[module]:
        assert name in _reachable(cli._COMMANDS[command][0]), (module, command)


@lru_cache(maxsize=None)
def _reachable(start: str) -> frozenset[str]:
    """Modules of adaaug that ``start`` imports, transitively (imports inside functions included)."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = ROOT / (name.replace(".", "/") + ".py")
        if not path.is_file():
            path = ROOT / name.replace(".", "/") / "__init__.py"
        if not path.is_file():
            continue
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
                if base.startswith("adaaug"):
                    todo.append(base)
                    todo += [f"{base}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.startswith("adaaug")]
    return frozenset(seen)


def test_every_option_a_message_names_exists_on_its_command():
    missing = []
    for module, line, text, argv in module_texts():
        for option, where in attributed(text, ANY if argv else MODULE_COMMANDS.get(module, ANY)):
            if not _exists(option, where):
                missing.append(f"adaaug/{module}:{line}: {option} (on {where})")
    assert not missing, "\n".join(missing)


def test_every_option_the_docs_name_exists_on_its_command():
    missing = []
    for page, line, text in doc_lines():
        for option, where in attributed(text, ANY):
            if not _exists(option, where):
                missing.append(f"{page}:{line}: {option} (on {where})")
    assert not missing, "\n".join(missing)
