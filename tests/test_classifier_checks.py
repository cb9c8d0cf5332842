"""What AdA accepts from a classifier: its output (``output_fn``, shapes, a user loss) and its gradient.

Each accepted case is compared with an independent reference run (the same generator, an equivalent
classifier or loss); each refused case checks the message names the classifier and the fix, and that
the classifier is left as found.
"""
from __future__ import annotations

import pytest
import torch
from conftest import WithFeatures
from torch import nn

from adaaug import AdversarialAugment
from adaaug.classifier_checks import classifier_logits, describe_gradient_break

KW = dict(backbone="unet", weights=None, steps=2, chunk_size=3)


def run(model, x, y, seed=0, **kw):
    torch.manual_seed(0)  # the same untrained backbone in every run
    return AdversarialAugment(model, **{**KW, **kw})(x, y, generator=torch.Generator().manual_seed(seed))


def state(model):
    return ([(p, p.detach().clone(), p.grad) for p in model.parameters()],
            [m.training for m in model.modules()])


def assert_unchanged(model, before):
    params, modes = before
    assert all(p is q for (p, _, _), q in zip(params, model.parameters()))
    assert all(torch.equal(p, v) and p.grad is g for p, v, g in params)
    assert [m.training for m in model.modules()] == modes


class AsDict(WithFeatures):
    def forward(self, x):
        return {"features": x.mean((2, 3)), "logits": self.net(x)}


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.rand(5, 3, 32, 32, generator=g), torch.tensor([0, 1, 2, 3, 4])


def test_tuple_output_is_refused_with_the_fix(tiny_net, batch):
    model = WithFeatures(tiny_net).train()
    before = state(model)
    with pytest.raises(TypeError, match=r"classifier WithFeatures returned a tuple of 2 \(Tensor 3×10, Tensor 3×3\)"
                                        r".*output_fn=lambda out: out\[0\]"):
        run(model, *batch)
    assert_unchanged(model, before)


def test_dict_output_hint_names_the_logits_key(tiny_net, batch):
    with pytest.raises(TypeError, match=r"output_fn=lambda out: out\['logits'\]"):
        run(AsDict(tiny_net), *batch)


@pytest.mark.parametrize("wrapper, output_fn", [(WithFeatures, lambda out: out[0]),
                                                (AsDict, lambda out: out["logits"])])
def test_output_fn_gives_the_plain_models_result(tiny_net, batch, wrapper, output_fn):
    expected = run(tiny_net, *batch)
    got = run(wrapper(tiny_net), *batch, output_fn=output_fn)
    assert torch.equal(got, expected)
    torch.manual_seed(0)
    ada = AdversarialAugment(wrapper(tiny_net), output_fn=output_fn, **KW)
    _, info = ada(*batch, return_info=True, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(info.loss, nn.functional.cross_entropy(tiny_net.eval()(got), batch[1],
                                                                      reduction="none"))
    assert info.loss.shape == (5,)


def test_output_fn_must_return_a_tensor(tiny_net, batch):
    with pytest.raises(TypeError, match="output_fn returned a tuple"):
        run(WithFeatures(tiny_net), *batch, output_fn=lambda out: out)
    with pytest.raises(TypeError, match="output_fn must be callable"):
        AdversarialAugment(tiny_net, output_fn="logits", **KW)


def test_outputs_that_are_not_n_by_classes(tiny_net, batch):
    three_d = nn.Sequential(tiny_net, nn.Unflatten(1, (2, 5)))
    with pytest.raises(ValueError, match=r"returned shape \(3, 2, 5\) for 3 images; logits 3 × classes"):
        run(three_d, *batch)
    pooled = nn.Sequential(tiny_net, nn.Flatten(0))  # 50 values, one row
    with pytest.raises(ValueError, match=r"returned shape \(30,\) for 3 images"):
        run(pooled, *batch)
    # with a loss of the user's, any shape with N rows is taken, other row counts are not
    with pytest.raises(ValueError, match="one row of outputs per image"):
        run(pooled, *batch, loss_fn=lambda lo, la: lo.sum())


class OneLogit(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)[:, :1]


class TwoLogits(OneLogit):
    """[0, z]: its cross-entropy equals the binary cross-entropy of the one logit z."""

    def forward(self, x):
        z = self.net(x)[:, :1]
        return torch.cat([torch.zeros_like(z), z], 1)


def bce(logits, labels):
    return nn.functional.binary_cross_entropy_with_logits(logits.squeeze(1), labels.float(), reduction="none")


@pytest.mark.parametrize("labels", [torch.tensor([0, 1, 1, 0, 1]), torch.tensor([0., 1., 1., 0., 1.])])
def test_binary_classifier_with_a_user_loss(tiny_net, batch, labels):
    """One logit + BCE on 0/1 labels is AdA on [0, z] with cross-entropy (the same loss, computed otherwise)."""
    x, _ = batch
    got = run(OneLogit(tiny_net), x, labels, loss_fn=bce)
    reference = run(TwoLogits(tiny_net), x, labels.long())
    torch.testing.assert_close(got, reference, atol=1e-5, rtol=0)
    assert not torch.equal(got, x)


def test_label_range_check_belongs_to_the_default_loss(tiny_net, batch):
    x, _ = batch
    with pytest.raises(ValueError, match=r"returns one output per image: its argmax is always class 0 and "
                                         r"cross-entropy over a single class is always 0 .*pass loss_fn="):
        run(OneLogit(tiny_net), x, torch.tensor([0, 0, 0, 0, 0]))  # in range, yet meaningless: refused
    with pytest.raises(ValueError, match="out of range for a classifier with 10 outputs"):
        run(tiny_net, x, torch.tensor([0, 1, 10, 0, 1]))
    # a hinge-style loss on ±1 labels: negative labels are the user's business
    hinge = lambda lo, la: torch.relu(1 - la.float() * lo.squeeze(1))  # noqa: E731
    assert run(OneLogit(tiny_net), x, torch.tensor([-1, 1, 1, -1, 1]), loss_fn=hinge).shape == x.shape
    with pytest.raises(ValueError, match=r"one row per image \(5\)"):
        run(OneLogit(tiny_net), x, torch.tensor([0, 1]), loss_fn=bce)


def test_soft_labels_reach_the_users_loss_unchanged(tiny_net, batch):
    x, y = batch
    seen = []

    def soft_ce(logits, target):
        seen.append(target)
        return -(target * logits.log_softmax(1)).sum(1)

    one_hot = nn.functional.one_hot(y, 10).float()
    got = run(tiny_net, x, one_hot, loss_fn=soft_ce)
    assert all(t.dtype == torch.float32 and t.shape[1] == 10 for t in seen)
    torch.testing.assert_close(got, run(tiny_net, x, y), atol=1e-5, rtol=0)


class NoGradInside(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.features, self.head = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4, 10)

    def forward(self, x):
        with torch.no_grad():
            h = self.features(x)
        return self.head(h.mean((2, 3)))


class DetachBetween(NoGradInside):
    def forward(self, x):
        return self.head(self.features(x).detach().mean((2, 3)))


class DetachedSubmodule(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Sequential(nn.Conv2d(3, 4, 3), _Detach())
        self.head = nn.Linear(4, 10)

    def forward(self, x):
        return self.head(self.inner(x).mean((2, 3)))


class _Detach(nn.Module):
    def forward(self, x):
        return x.detach()


@pytest.mark.parametrize("model, where", [
    (NoGradInside(None), r"submodule 'features' \(Conv2d\) returns an output without a gradient \(it ran under "
                         r"torch.no_grad\(\)\)"),
    (DetachBetween(None), r"DetachBetween.forward drops it outside its submodules"),
    (DetachedSubmodule(), r"submodule 'inner.1' \(_Detach\) returns an output without a gradient \(its output is "
                          r"detached"),
])
def test_classifier_that_stops_the_gradient_is_named(batch, model, where):
    model.train()
    before = state(model)
    with pytest.raises(RuntimeError, match=r"with respect to its input images, but classifier \w+ does not pass it: "
                                           + where):
        run(model, *batch)
    assert_unchanged(model, before)


def test_frozen_classifier_still_passes_the_gradient(tiny_net, batch):
    """requires_grad=False on every parameter is fine: the gradient needed is the input's."""
    expected = run(tiny_net, *batch)
    for p in tiny_net.parameters():
        p.requires_grad_(False)
    assert torch.equal(run(tiny_net, *batch), expected)
    assert describe_gradient_break(tiny_net, batch[0]) is None


class NoGradBackbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        with torch.no_grad():
            return torch.sigmoid(self.conv(x))


def test_backbone_that_stops_the_gradient_is_named(tiny_net, batch):
    with pytest.raises(RuntimeError, match=r"the weights of backbone 'NoGradBackbone', but its output does not depend"):
        AdversarialAugment(tiny_net, backbone=NoGradBackbone(), steps=1, ssim_threshold=None)(*batch)


def test_classifier_logits_checks_without_running_a_model(tiny_net):
    logits = torch.zeros(4, 10)
    assert classifier_logits(logits, 4, tiny_net) is logits
    assert classifier_logits((logits, None), 4, tiny_net, lambda o: o[0]) is logits
    with pytest.raises(TypeError, match="wrap the model"):
        classifier_logits([logits], 4, tiny_net, fix="wrap the model")


class UnusedLayer(nn.Module):
    """A backbone with a layer its forward never uses: that block gets no gradient, and stays at δ⁰."""

    def __init__(self):
        super().__init__()
        self.used, self.spare = nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return torch.sigmoid(self.used(x))


def test_a_backbone_block_without_gradient_keeps_its_start(tiny_net, batch):
    torch.manual_seed(0)
    backbone = UnusedLayer()
    zero = AdversarialAugment(tiny_net, backbone=backbone, steps=0, ssim_threshold=None)
    two = AdversarialAugment(tiny_net, backbone=backbone, steps=2, ssim_threshold=None)
    g = torch.Generator().manual_seed(0)
    _, start = zero(*batch, return_info=True, generator=g)
    g = torch.Generator().manual_seed(0)
    out, info = two(*batch, return_info=True, generator=g)
    cols = info.block_names["UnusedLayer"]
    spare = [cols.index("spare.weight"), cols.index("spare.bias")]
    used = cols.index("used.weight")
    norms, norms0 = info.relative_norms["UnusedLayer"], start.relative_norms["UnusedLayer"]
    assert torch.equal(norms[:, spare], norms0[:, spare])  # no gradient: δ unchanged
    assert not torch.equal(norms[:, used], norms0[:, used])  # the used layer moved
    assert not out.isnan().any()


def test_inference_mode_inside_the_classifier_is_named(batch):
    class Inference(NoGradInside):
        def forward(self, x):
            with torch.inference_mode():
                h = self.features(x)
            return self.head(h.clone().mean((2, 3)))

    with pytest.raises(RuntimeError, match=r"submodule 'features' \(Conv2d\) .*it ran under torch.inference_mode"):
        run(Inference(None), *batch)


class Counting(nn.Module):
    """Writes its own buffers in eval mode, and switches itself to train mode (BatchNorm statistics move)."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.fc = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 10)
        self.register_buffer("seen", torch.zeros(()))

    def forward(self, x):
        self.seen += len(x)
        self.train()
        return self.fc(self.bn(self.conv(x)).mean((2, 3)))


def _buffers(model):
    return [(b, b.clone()) for b in model.buffers()]


def test_buffers_a_forward_writes_are_restored_on_every_path(batch):
    from adaaug.evaluate.sets import ArraySource
    from adaaug.evaluate.metrics import accuracy
    from adaaug.evaluate.param_noise import NoisyPredictor

    x, y = batch
    source = ArraySource((x.permute(0, 2, 3, 1) * 255).byte().numpy(), y.numpy())
    for call in (lambda m: run(m, x, y), lambda m: accuracy(m, source), lambda m: NoisyPredictor(m, 0.1, samples=2)(source)):
        model = Counting().eval()
        before = _buffers(model)
        call(model)
        assert not model.training and not any(m.training for m in model.modules())
        assert all(b is q and torch.equal(b, v) for (b, v), q in zip(before, model.buffers()))


def test_a_users_graph_through_eval_mode_batchnorm_survives_a_call(tiny_net, batch):
    """Restoring the buffers does not bump their version: a graph that saved them still backpropagates."""
    x, y = batch
    tiny_net.eval()
    loss = nn.functional.cross_entropy(tiny_net(x), y)  # eval-mode BatchNorm saves its running statistics
    run(tiny_net, x, y)
    loss.backward()
    assert tiny_net.conv.weight.grad is not None
