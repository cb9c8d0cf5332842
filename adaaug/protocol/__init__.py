"""Deprecated: adaaug 0.2's ``adaaug.protocol`` modules, kept as aliases of their 0.3 homes until 0.4.

0.3 split the protocol by what a user comes to do: :mod:`adaaug.corruptions` (the -C benchmark,
``make_c``), :mod:`adaaug.evaluate`, :mod:`adaaug.train`, :mod:`adaaug.experiments`, with
:mod:`adaaug.data` and :mod:`adaaug.runtime` beneath them (the table is in CHANGELOG.md). Importing
``adaaug.protocol.<old>`` still works: it emits one ``DeprecationWarning`` naming the new module and
gives a module whose names are read from there (the same objects). Patching an old alias does not
patch the new module: patch the new module. These aliases are removed in 0.4.0.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os
import sys
import types
import warnings

#: old module (under ``adaaug.protocol``) -> the new modules its names are read from, in order.
MOVED: dict[str, tuple[str, ...]] = {
    "corruptions": ("adaaug.corruptions",),
    **{f"corruptions.{m}": (f"adaaug.corruptions.{m}",)
       for m in ("_common", "noise", "blur", "weather", "digital", "tables")},
    "make_c": ("adaaug.corruptions.dataset",),
    "evaluate": ("adaaug.evaluate.metrics", "adaaug.evaluate.command", "adaaug.evaluate.report"),
    "eval_cli": ("adaaug.evaluate.options",),
    "eval_data": ("adaaug.evaluate.sets",),
    "eval_labels": ("adaaug.evaluate.labels",),
    "eval_report": ("adaaug.evaluate.report",),
    "attacks": ("adaaug.evaluate.attacks",),
    "param_noise": ("adaaug.evaluate.param_noise",),
    "train": ("adaaug.train.loop",),
    "train_cli": ("adaaug.train.options",),
    "train_config": ("adaaug.train.config",),
    "config_checks": ("adaaug.train.checks",),
    "train_data": ("adaaug.train.training_data",),
    "data_sources": ("adaaug.train.sources",),
    "checkpoint": ("adaaug.train.checkpoint",),
    "distributed": ("adaaug.train.distributed",),
    "train_backbone": ("adaaug.train.backbone",),
    "deepaugment_data": ("adaaug.train.deepaugment_data",),
    "data": ("adaaug.data.images",),
    "cache": ("adaaug.data.cache",),
    "devices": ("adaaug.runtime.devices",),
    "progress": ("adaaug.runtime.progress",),
    "demo": ("adaaug.experiments.demo",),
    "finetune": ("adaaug.experiments.finetune",),
    "finetune_cli": ("adaaug.experiments.finetune_options",),
    "finetune_report": ("adaaug.experiments.finetune_report",),
    "mini": ("adaaug.experiments.mini",),
    "mini_report": ("adaaug.experiments.mini_report",),
    "gpu_compare": ("adaaug.experiments.gpu_compare",),
    "fast_recipe": ("adaaug.experiments.fast_recipe",),
    "bench": ("adaaug.experiments.bench", "adaaug.experiments.bench_measure"),
    "bench_suite": ("adaaug.experiments.bench_suite",),
    "publish": ("adaaug.cli.publish",),
}

REMOVED_IN = "0.4.0"


def _public(module: types.ModuleType) -> list[str]:
    """What ``from module import *`` gives: its ``__all__``, else its names without a leading underscore."""
    names = getattr(module, "__all__", None)
    return list(names) if names is not None else [n for n in vars(module) if not n.startswith("_")]


class _MovedModule(types.ModuleType):
    """``adaaug.protocol.<old>``: reads each name from the first of its new modules that defines it."""

    def __getattr__(self, name: str):
        if name == "__all__":  # star imports and pydoc: the new modules' public names, in order
            return list(dict.fromkeys(n for t in self.__targets__ for n in _public(importlib.import_module(t))))
        if name.startswith("__"):
            raise AttributeError(name)
        for target in self.__targets__:
            module = importlib.import_module(target)
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"module {self.__name__!r} (moved to {_where(self.__targets__)}) has no attribute "
                             f"{name!r}")

    def __dir__(self) -> list[str]:
        return sorted(set(self.__all__))


def _where(targets: tuple[str, ...]) -> str:
    return targets[0] if len(targets) == 1 else ", ".join(targets[:-1]) + " and " + targets[-1]


def _message(old: str, targets: tuple[str, ...]) -> str:
    return (f"{old} is deprecated: it moved to {_where(targets)}; import from there "
            f"(the alias goes in adaaug {REMOVED_IN})")


def _caller_stacklevel() -> int:
    """``stacklevel`` of the importer: the first frame outside this module (``warnings`` itself skips the
    import machinery's frames when it counts levels, so they are not counted here either)."""
    frame, level = sys._getframe(2), 1  # the frame above the caller of warnings.warn
    skipped = {os.path.normcase(__file__), os.path.normcase(importlib.__file__)}
    while frame is not None:
        name = frame.f_code.co_filename
        if not ("importlib" in name and "_bootstrap" in name):
            level += 1
            if os.path.normcase(name) not in skipped:
                break
        frame = frame.f_back
    return level


class _Loader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        old = spec.name[len(__name__) + 1:]
        targets = MOVED[old]
        warnings.warn(_message(spec.name, targets), DeprecationWarning, stacklevel=_caller_stacklevel())
        module = _MovedModule(spec.name, f"Deprecated alias of {', '.join(targets)}.")
        module.__targets__ = targets
        if any(k.startswith(old + ".") for k in MOVED):
            module.__path__ = []  # a package: its old submodules are aliases too
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass

    def get_code(self, fullname: str) -> types.CodeType:
        """``python -m adaaug.protocol.<old>``: warn, then run the new module as ``__main__``."""
        targets = MOVED[fullname[len(__name__) + 1:]]
        source = (f"import runpy, warnings\nwarnings.warn({_message(fullname, targets)!r}, DeprecationWarning)\n"
                  f"runpy.run_module({targets[0]!r}, run_name='__main__', alter_sys=True)\n")
        return compile(source, f"<deprecated alias {fullname}>", "exec")


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith(__name__ + ".") and fullname[len(__name__) + 1:] in MOVED:
            return importlib.machinery.ModuleSpec(fullname, _Loader(), is_package=False)
        return None


if not any(isinstance(f, _Finder) for f in sys.meta_path):
    sys.meta_path.insert(0, _Finder())


def __getattr__(name: str):
    if name in MOVED:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(k for k in MOVED if "." not in k)


__all__: list[str] = []  # ``from adaaug.protocol import *`` gives nothing, as in 0.2
