"""`import adaaug` alone reaches every documented name, and stays light."""
from __future__ import annotations

import subprocess
import sys

import pytest

import adaaug

# every name the README and docs/usage.md reach through `import adaaug` (attribute paths)
DOCUMENTED = ["models.normalized", "models.build_classifier", "AdversarialAugment", "AdAInfo", "load_backbone",
              "load_classifier", "register_backbone", "available_backbones", "build_backbone", "ssim_line_search",
              "AugMix", "DeepAugment", "jsd_loss", "augment.compose.AugmentationPipeline", "backbones.EDSR",
              "weights.export_weights", "train.config.TrainConfig", "perturb.random_init",
              "line_search.ssim", "paper.NU_EDSR_CIFAR10", "counter_rng.normals", "batch_io.unpack"]

HEAVY = ("matplotlib", "pyautoattack", "imagecorruptions", "scipy", "skimage", "cv2", "nbclient", "piq",
         "huggingface_hub", "torchvision", "torch")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_every_documented_name_works_after_import_adaaug_alone():
    # a fresh interpreter, so that no earlier test has imported a submodule already; the quick start's
    # adaaug.models.normalized(net) is called, not only looked up
    code = ("import adaaug\nfrom functools import reduce\n"
            f"for path in {DOCUMENTED!r}:\n"
            "    assert reduce(getattr, path.split('.'), adaaug) is not None, path\n"
            "import torch\nnet = adaaug.models.normalized(torch.nn.Conv2d(3, 4, 1))\n"
            "print(tuple(net(torch.rand(1, 3, 2, 2)).shape))")
    result = _run(code)
    assert result.stdout.strip() == "(1, 4, 2, 2)", result.stderr[-2000:]


def test_import_adaaug_imports_nothing_heavy():
    result = _run(f"import sys, adaaug\nprint([m for m in {HEAVY!r} if m in sys.modules])")
    assert result.stdout.strip() == "[]", result.stderr[-2000:]


def test_subpackages_stay_light_too():
    # reaching a subpackage imports that package, not the optional dependencies of its siblings
    result = _run("import sys, adaaug\n"
                  "adaaug.augment; adaaug.corruptions; adaaug.evaluate; adaaug.train; adaaug.data; adaaug.runtime\n"
                  "print([m for m in ('matplotlib', 'pyautoattack', 'imagecorruptions', 'cv2') if m in sys.modules])")
    assert result.stdout.strip() == "[]", result.stderr[-2000:]


def test_unknown_names_still_raise():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        adaaug.nope
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        adaaug.protocol.nope
    for package in (adaaug.corruptions, adaaug.evaluate, adaaug.train, adaaug.data, adaaug.runtime):
        with pytest.raises(AttributeError, match="has no attribute 'nope'"):
            package.nope
    assert "models" in dir(adaaug) and "AdversarialAugment" in dir(adaaug)
