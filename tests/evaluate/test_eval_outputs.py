"""Evaluation and attacks on classifiers that do not return plain logits: a clear TypeError/ValueError naming
the classifier and the fix (wrap it), on every path that runs a user's model; the model is left as found."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import WithFeatures
from torch import nn

from adaaug.evaluate.sets import ArraySource
from adaaug.evaluate.metrics import accuracy


class Flat(WithFeatures):
    def forward(self, x):
        return self.net(x).flatten()


def source(n=6):
    rng = np.random.default_rng(0)
    return ArraySource(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n) % 3)


def predict_clean(model):
    return accuracy(model, source(), batch_size=4)


def predict_noisy(model):
    from adaaug.evaluate.param_noise import NoisyPredictor

    return accuracy(NoisyPredictor(model, 0.1, samples=2), source(), batch_size=4)


def attack(model):
    from adaaug.evaluate.attacks import robust_accuracy

    x = torch.from_numpy(source().images).permute(0, 3, 1, 2).float() / 255
    return robust_accuracy(model, x, torch.arange(6) % 3, norm="Linf", eps=1 / 255, method="pgd", steps=1,
                           restarts=1)


PATHS = [predict_clean, predict_noisy, attack]


@pytest.mark.parametrize("path", PATHS, ids=lambda f: f.__name__)
def test_tuple_output_is_refused_naming_the_fix(tiny_net, path):
    model = WithFeatures(tiny_net).train()
    before = [(p, p.detach().clone()) for p in model.parameters()]
    with pytest.raises(TypeError, match=r"classifier WithFeatures returned a tuple of 2 .*wrap the model"):
        path(model)
    assert model.training and all(p is q and torch.equal(p, v) for (p, v), q in zip(before, model.parameters()))


@pytest.mark.parametrize("path", PATHS, ids=lambda f: f.__name__)
def test_flat_output_is_refused(tiny_net, path):
    with pytest.raises(ValueError, match=r"classifier Flat returned shape \(\d+,\) for \d+ images; logits"):
        path(Flat(tiny_net))


@pytest.mark.parametrize("path", PATHS, ids=lambda f: f.__name__)
def test_a_wrapper_that_returns_the_logits_gives_the_plain_result(tiny_net, path):
    class Logits(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)[0]

    torch.manual_seed(0)
    expected = path(tiny_net)
    torch.manual_seed(0)
    assert path(Logits(WithFeatures(tiny_net))) == expected


def test_parameter_noise_matches_the_clean_sets_classes_by_name(tiny_net):
    """A clean set holding 2 of the model's classes, in another order: classes= maps them (as accuracy does)."""
    from adaaug.evaluate.metrics import accuracy
    from adaaug.evaluate.param_noise import evaluate_param_noise

    names = [f"c{i}" for i in range(10)]
    rng = np.random.default_rng(0)
    subset = ArraySource(rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8), np.arange(6) % 2, ["c7", "c2"])
    with pytest.raises(ValueError, match="classes="):
        evaluate_param_noise(tiny_net, subset, etas=(0.0,), samples=1)
    result = evaluate_param_noise(tiny_net, subset, etas=(0.0,), samples=1, classes=names)["results"]["0"]
    assert result["clean_n"] == 6
    assert result["clean_error"] == 100.0 - accuracy(tiny_net, subset, classes=names)  # η = 0 is the model
