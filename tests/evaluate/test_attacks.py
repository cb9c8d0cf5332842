"""ℓp attacks (adaaug.evaluate.attacks) on linear classifiers, whose exact robust accuracy is known in closed form.

For logits W·x + b on x with room to move (the ε-ball inside [0, 1]), an example of label y can be
misclassified within radius ε iff some class j has margin (w_y − w_j)·x + b_y − b_j below ε‖w_y − w_j‖_q
(q = 1 for ℓ∞, q = 2 for ℓ2). The data are drawn so that no example's margin lies within 20% of its
threshold: a correct attack then gets exactly the closed-form robust accuracy.
"""
from __future__ import annotations

import copy
import sys

import pytest
import torch
from torch import nn

from adaaug.evaluate.attacks import evaluate_attacks, pgd_fooled, robust_accuracy

SIZE = 8  # 3×8×8 images keep the attacks on linear models fast


def _linear(classes: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, classes))
    with torch.no_grad():
        net[1].weight.normal_()
        net[1].bias.zero_()
    return net.eval()


def _exact_case(net: nn.Module, norm: str, n: int = 12, seed: int = 1):
    """Images, their predicted labels, a radius ε (the median distance to the decision boundary) and which
    examples are robust at ε (bool); examples whose distance lies within 20% of ε are left out."""
    w, b = net[1].weight.detach().double(), net[1].bias.detach().double()
    q = 1 if norm == "Linf" else 2  # the dual norm's
    g = torch.Generator().manual_seed(seed)
    x = 0.25 + 0.5 * torch.rand(4 * n, 3 * SIZE * SIZE, generator=g, dtype=torch.float64)
    logits = x @ w.T + b
    y = logits.argmax(1)
    dist = torch.stack([min((logits[i, y[i]] - logits[i, j]) / (w[y[i]] - w[j]).norm(p=q)
                            for j in range(len(b)) if j != y[i]) for i in range(len(x))])
    eps = float(dist.median())
    keep = ((dist < 0.8 * eps) | (dist > 1.25 * eps)).nonzero().flatten()[:n]
    x, dist = x[keep].float().view(-1, 3, SIZE, SIZE), dist[keep]
    robust = dist > eps
    assert len(x) == n and 0 < robust.sum() < n, "the case must hold both robust and non-robust examples"
    assert norm == "L2" or eps < 0.25, "the ℓ∞ ball must lie inside [0, 1]"
    with torch.no_grad():
        assert torch.equal(net(x).argmax(1), y[keep])
    return x, y[keep], eps, robust


def _snapshot(model: nn.Module):
    return ([(p, p.detach().clone(), p.requires_grad, p.grad, None if p.grad is None else p.grad.clone())
             for p in model.parameters()],
            {k: v.clone() for k, v in model.state_dict().items()}, [m.training for m in model.modules()])


def _assert_untouched(model: nn.Module, snap) -> None:
    params, state, modes = snap
    for (p, value, flag, grad, grad_value), now in zip(params, model.parameters(), strict=True):
        assert now is p and torch.equal(p, value) and p.requires_grad == flag
        assert p.grad is grad and (grad is None or torch.equal(p.grad, grad_value))
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert [m.training for m in model.modules()] == modes


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_pgd_reaches_the_exact_robust_accuracy_of_a_binary_linear_model(norm):
    # two classes: the cross-entropy's gradient points along w_y − w_j everywhere, so PGD must find the optimum
    net = _linear(2)
    x, y, eps, robust = _exact_case(net, norm)
    exact = 100.0 * robust.float().mean().item()
    acc = robust_accuracy(net, x, y, norm=norm, eps=eps, method="pgd", steps=20, restarts=1, batch_size=5)
    assert acc == pytest.approx(exact)


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_pgd_stays_inside_the_ball_and_the_box(norm):
    net = _linear(2)
    x, y, eps, robust = _exact_case(net, norm)
    seen = []

    class Recorder(nn.Module):
        def forward(self, images):
            seen.append(images.detach().clone())
            return net(images)

    fooled = pgd_fooled(Recorder(), x, y, norm=norm, eps=eps, steps=5, generator=torch.Generator().manual_seed(0))
    assert len(seen) == 6 and fooled.dtype == torch.bool and fooled.shape == (len(x),)
    for adv in seen:
        d = (adv - x).flatten(1)
        size = d.abs().amax(1) if norm == "Linf" else d.norm(dim=1)
        assert (size <= eps * (1 + 1e-5)).all() and adv.min() >= 0 and adv.max() <= 1
    assert torch.equal(~fooled, robust)  # example by example


@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_autoattack_fools_every_example_closer_than_eps_to_a_boundary(norm):
    # fast: APGD finds them all, so FAB-T and Square (which only attack survivors) never run
    net = _linear(5)
    x, y, eps, robust = _exact_case(net, norm)
    acc = robust_accuracy(net, x[~robust], y[~robust], norm=norm, eps=eps, method="autoattack", batch_size=8)
    assert acc == 0.0


def test_autoattack_runs_a_chosen_subset_of_its_attacks():
    net = _linear(5)
    x, y, eps, robust = _exact_case(net, "L2")
    acc = robust_accuracy(net, x[~robust], y[~robust], norm="L2", eps=eps, attacks=("apgd-ce", "apgd-t"))
    assert acc == 0.0
    three = _linear(3)  # APGD-CE alone needs no fourth class
    assert robust_accuracy(three, x, three(x).argmax(1), norm="Linf", eps=0.5, attacks=("apgd-ce",)) == 0.0
    with pytest.raises(ValueError, match="attacks must name one or more of"):
        robust_accuracy(net, x, y, norm="L2", eps=eps, attacks=("pgd",))


@pytest.mark.slow  # Square's 5000 queries on the robust examples: ~15 s per norm on one core
@pytest.mark.parametrize("norm", ["Linf", "L2"])
def test_autoattack_reaches_the_exact_robust_accuracy_of_a_multiclass_linear_model(norm):
    net = _linear(5)
    x, y, eps, robust = _exact_case(net, norm)
    net[1].weight.grad = torch.zeros_like(net[1].weight)
    snap = _snapshot(net)
    acc = robust_accuracy(net, x, y, norm=norm, eps=eps, method="autoattack", batch_size=8)
    assert acc == pytest.approx(100.0 * robust.float().mean().item())
    _assert_untouched(net, snap)  # FAB-T backpropagates: the parameters' .grad must stay as they were


def test_attacks_leave_the_model_and_the_global_rng_as_found():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(3 * SIZE * SIZE), nn.Linear(3 * SIZE * SIZE, 5),
                        nn.Dropout(0.5))
    with torch.no_grad():
        net[1].running_mean.uniform_(0.4, 0.6)
        net[2].weight.mul_(30)
    net[2].bias.requires_grad_(False)
    net[2].weight.grad = torch.ones_like(net[2].weight)
    net.train()
    net[1].eval()  # mixed modes: each must come back as it was; BatchNorm's statistics must not move
    x = torch.rand(6, 3, SIZE, SIZE)
    snap = _snapshot(net)
    with torch.no_grad():
        y = copy.deepcopy(net).eval()(x).argmax(1)
    rng = torch.get_rng_state()
    for method in ("pgd", "autoattack"):
        acc = robust_accuracy(net, x, y, norm="Linf", eps=8 / 255, method=method, steps=3, restarts=2)
        assert 0.0 <= acc < 100.0
        _assert_untouched(net, snap)
        assert torch.equal(torch.get_rng_state(), rng)
    res = evaluate_attacks(net, x, y, method="pgd", steps=2, restarts=1, linf=(1 / 255,), l2=(0.5,))
    assert res["clean_accuracy"] == 100.0 and set(res["Linf"]) == {"0.00392157"} and set(res["L2"]) == {"0.5"}
    _assert_untouched(net, snap)


def test_seed_fixes_the_result_and_a_debuggers_tracer_survives():
    net = _linear(5)
    x, y, eps, _ = _exact_case(net, "Linf", n=6)
    runs = {robust_accuracy(net, x, y, norm="Linf", eps=eps, method="pgd", steps=1, restarts=1, seed=3)
            for _ in range(2)}
    assert len(runs) == 1

    def tracer(frame, event, arg):
        return None

    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        robust_accuracy(net, x, y, norm="Linf", eps=0.5, method="autoattack")
        assert sys.gettrace() is tracer
    finally:
        sys.settrace(old)


def test_bad_arguments_name_the_problem(monkeypatch):
    net = _linear(3)
    x = torch.rand(4, 3, SIZE, SIZE)
    y = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="norm must be 'Linf' or 'L2'"):
        robust_accuracy(net, x, y, norm="L1", eps=0.1)
    with pytest.raises(ValueError, match="method must be"):
        robust_accuracy(net, x, y, norm="L2", eps=0.1, method="fgsm")
    with pytest.raises(ValueError, match="version must be"):
        robust_accuracy(net, x, y, norm="L2", eps=0.1, version="fast")
    with pytest.raises(ValueError, match="eps must be positive"):
        robust_accuracy(net, x, y, norm="L2", eps=0.0, method="pgd")
    with pytest.raises(ValueError, match=r"needs 4 to 3 classes.*method='pgd'"):
        robust_accuracy(net, x, y, norm="L2", eps=0.1)
    with pytest.raises(ValueError, match="n_classes=7"):
        robust_accuracy(_linear(5), x, y, norm="L2", eps=0.1, n_classes=7)
    monkeypatch.setitem(sys.modules, "pyautoattack", None)
    with pytest.raises(ImportError, match=r"adaaug\[protocol\]"):
        robust_accuracy(_linear(5), x, y, norm="L2", eps=0.1)
    assert robust_accuracy(net, x, y, norm="L2", eps=0.1, method="pgd", steps=1, restarts=1) >= 0.0  # no extra


def test_pgd_names_a_classifier_that_stops_the_gradient():
    class Detached(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3 * SIZE * SIZE, 4)

        def forward(self, images):
            with torch.no_grad():
                return self.fc(images.flatten(1))

    net = Detached()
    x = torch.rand(2, 3, SIZE, SIZE)
    with pytest.raises(RuntimeError, match="PGD needs the gradient.*'fc'"):
        robust_accuracy(net, x, net(x).argmax(1), norm="Linf", eps=0.1, method="pgd", steps=1, restarts=1)


def test_labels_the_model_does_not_have_are_refused_not_scored():
    """A label ≥ the model's outputs would count as a miss on every image: a wrong number, so it is refused."""
    net = _linear(3)
    x = torch.rand(4, 3, SIZE, SIZE)
    with pytest.raises(ValueError, match=r"label 7 is out of range for a classifier with 3 outputs"):
        robust_accuracy(net, x, torch.tensor([0, 1, 7, 2]), norm="Linf", eps=1 / 255, method="pgd", steps=1,
                        restarts=1)
    with pytest.raises(ValueError, match=r"returns one output per image: its argmax is always class 0"):
        robust_accuracy(_linear(1), x, torch.tensor([0, 1, 1, 0]), norm="Linf", eps=1 / 255, method="pgd", steps=1,
                        restarts=1)
    with pytest.raises(TypeError, match="integer class indices"):
        robust_accuracy(net, x, torch.tensor([0.0, 1.0, 2.0, 0.0]), norm="Linf", eps=1 / 255, method="pgd")
    # a list of ints is taken as labels, the same as the tensor
    kw = dict(norm="Linf", eps=2 / 255, method="pgd", steps=3, restarts=1)
    assert robust_accuracy(net, x, [0, 1, 2, 0], **kw) == robust_accuracy(net, x, torch.tensor([0, 1, 2, 0]), **kw)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_a_classifier_in_another_dtype_gets_its_input_in_that_dtype(dtype):
    net = _linear(2)
    x, y, eps, robust = _exact_case(net, "Linf")
    exact = 100.0 * robust.float().mean().item()
    acc = robust_accuracy(net.to(dtype), x, y, norm="Linf", eps=eps, method="pgd", steps=20, restarts=1)
    if dtype == torch.float64:
        assert acc == pytest.approx(exact)  # the exact case holds in float64 too
    else:
        assert 0 <= acc <= 100
    assert next(net.parameters()).dtype == dtype  # the model is not converted


def test_half_precision_images_a_rounding_error_above_one_are_clamped():
    net = _linear(2)
    x, y, eps, _ = _exact_case(net, "Linf")
    half = x.half()
    above = half.clone()
    above[0, 0, 0, 0] = 1 + torch.finfo(torch.float16).eps
    kw = dict(norm="Linf", eps=eps, method="pgd", steps=5, restarts=1)
    clamped = above.clamp(0, 1)
    assert robust_accuracy(net, above, y, **kw) == robust_accuracy(net, clamped, y, **kw)
