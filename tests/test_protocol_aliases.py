"""adaaug 0.2's ``adaaug.protocol.*`` import paths keep working in 0.3 (until 0.4.0), each with one
DeprecationWarning naming the new module and attributed to the importing line, and give the very same
objects as the new paths."""
from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

from adaaug.protocol import MOVED

#: names that 0.2's README, docs, notebooks and tests imported from the old paths (what users copied)
USED_IN_0_2 = {
    "corruptions": ["ALL", "BENCHMARK", "EXTRA", "CIFAR10_C", "IMAGENET_C", "corrupt", "frost_max_size"],
    "corruptions.weather": ["frost_textures"],
    "make_c": ["make_c", "resize_center_crop", "resolve_params"],
    "evaluate": ["accuracy", "alexnet_errors", "evaluate_corruptions", "evaluate_shift", "load_model",
                 "load_model_and_classes", "markdown_report", "mce"],
    "eval_data": ["ArraySource", "CorruptionDir", "open_image_set"],
    "param_noise": ["NoisyPredictor", "evaluate_param_noise"],
    "attacks": ["robust_accuracy", "evaluate_attacks", "pgd_fooled", "preserved_state"],
    "train": ["train", "WarmupCosine", "center_crop", "add_arguments"],
    "train_config": ["TrainConfig", "ConfigError", "ConfigTypeError"],
    "train_data": ["load_training_data", "check_image_sizes"],
    "checkpoint": ["load_checkpoint"],
    "data": ["ImageSet", "BadImageError", "load_images", "load_image_folder", "decode_image", "list_image_folder"],
    "devices": ["check_device", "resolve_checked"],
    "progress": ["StepClock"],
    "demo": ["load_samples", "run_demo", "figure", "main"],
    "finetune": ["FinetuneConfig", "finetune", "run_grid", "paired", "row_name", "HEADLINE", "main"],
    "mini": ["MiniConfig", "estimate_seconds"],
    "mini_report": ["report"],
    "gpu_compare": ["CompareConfig", "file_tag", "plan", "run"],
    "fast_recipe": ["Recipe", "ResNet9", "cutout"],
    "bench": ["median_time", "run", "add_arguments", "main"],
}


def _import_old(old: str):
    sys.modules.pop(f"adaaug.protocol.{old}", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(f"adaaug.protocol.{old}")
    return module, [w for w in caught if issubclass(w.category, DeprecationWarning)]


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_old_path_imports_and_warns_with_the_new_one(old):
    module, warned = _import_old(old)
    assert len(warned) == 1, [str(w.message) for w in warned]
    message = str(warned[0].message)
    assert f"adaaug.protocol.{old} is deprecated" in message and MOVED[old][0] in message and "0.4.0" in message
    assert warned[0].filename == __file__  # attributed to the importing line, not to importlib
    for target in MOVED[old]:
        importlib.import_module(target)  # every new home exists


@pytest.mark.parametrize("old", sorted(USED_IN_0_2))
def test_names_users_imported_are_the_same_objects(old):
    module, _ = _import_old(old)
    for name in USED_IN_0_2[old]:
        new = next(importlib.import_module(t) for t in MOVED[old] if hasattr(importlib.import_module(t), name))
        assert getattr(module, name) is getattr(new, name), (old, name)


def test_from_imports_of_old_modules_work():
    # the three import forms 0.2's notebooks and tests used, in a fresh interpreter, warnings as errors
    # except ours (so that nothing else they import warns)
    code = ("import warnings\nwarnings.simplefilter('error')\n"
            "warnings.filterwarnings('ignore', message='adaaug.protocol', category=DeprecationWarning)\n"
            "from adaaug.protocol.corruptions import ALL, corrupt\n"
            "from adaaug.protocol import make_c as M\n"
            "import adaaug.protocol.corruptions.weather as W\n"
            "import adaaug\n"
            "assert adaaug.protocol.train_config.TrainConfig is adaaug.train.TrainConfig\n"
            "assert M.make_c is adaaug.corruptions.make_c and corrupt is adaaug.corruptions.corrupt\n"
            "print(len(ALL), W.frost_textures.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["19", "adaaug.corruptions.weather"], out.stderr[-2000:]


def test_unknown_old_names_fail_clearly():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("adaaug.protocol.nope")
    module, _ = _import_old("evaluate")
    with pytest.raises(AttributeError, match="moved to adaaug.evaluate.metrics"):
        module.no_such_name


def test_star_imports_of_old_modules_give_the_new_modules_public_names():
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        exec("from adaaug.protocol.evaluate import *\nfrom adaaug.protocol.train_config import *", namespace)
    import adaaug.evaluate.command as command
    import adaaug.evaluate.metrics as metrics
    import adaaug.train.config as config

    for module in (metrics, command, config):
        expected = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
        assert all(namespace[n] is getattr(module, n) for n in expected), module.__name__
    assert "load_model" in namespace and "accuracy" in namespace and "TrainConfig" in namespace


@pytest.mark.parametrize("argv, prog", [(["-m", "adaaug.protocol.finetune", "--help"], "adaaug.experiments.finetune"),
                                        (["-m", "adaaug.cli", "--help"], "adaaug [-h] [--version]")])
def test_python_dash_m_still_runs_the_old_module_paths(argv, prog):
    out = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and prog in out.stdout, out.stderr[-2000:]
    if "protocol" in argv[1]:
        assert "adaaug.protocol.finetune is deprecated" in out.stderr and "adaaug.experiments.finetune" in out.stderr
