"""The M-step loop queues its work: no device→host synchronisation inside it (issue: GPU readiness).

On the CPU every op that would copy a value to the host is counted while ``_maximise`` runs:
``aten._local_scalar_dense`` (behind ``.item()``, ``bool()``, ``int()``, ``float()``, Python ``if`` on a
tensor) through a dispatch mode, and ``Tensor.tolist`` / ``.numpy()`` / ``.cpu()`` through patches. On
CUDA, ``torch.cuda.set_sync_debug_mode("error")`` turns any synchronisation into an error.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import adaaug.transform as transform_module
from adaaug import AdversarialAugment
from adaaug.backbones import build_backbone


class HostTransfers(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def _spy_maximise(monkeypatch, record):
    original = AdversarialAugment._maximise

    def spy(self, *args, **kwargs):
        with record():
            return original(self, *args, **kwargs)
    monkeypatch.setattr(AdversarialAugment, "_maximise", spy)


def test_no_host_transfer_inside_the_loop_on_cpu(tiny_net, monkeypatch):
    calls: list[str] = []
    for name in ("tolist", "numpy", "cpu", "item"):
        original = getattr(torch.Tensor, name)

        def patched(self, *a, _name=name, _original=original, **k):
            if active:
                calls.append(_name)
            return _original(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, patched)
    active = False
    modes: list[HostTransfers] = []

    class record:
        def __enter__(self):
            nonlocal active
            active = True
            modes.append(HostTransfers())
            modes[-1].__enter__()

        def __exit__(self, *exc):
            nonlocal active
            active = False
            return modes[-1].__exit__(*exc)

    _spy_maximise(monkeypatch, record)
    x = torch.rand(6, 3, 32, 32)
    y = torch.randint(0, 10, (6,))
    ada = AdversarialAugment(tiny_net, backbone=build_backbone("unet"), steps=3, chunk_size=4)
    out = ada(x, y)
    assert len(modes) == 2  # two nano-batches went through the spy
    assert calls == [] and all(m.ops == [] for m in modes), (calls, [m.ops for m in modes])
    assert out.shape == x.shape


def test_the_counter_sees_a_sync(tiny_net, monkeypatch):
    # the same instruments catch a host transfer when there is one (the test above can fail)
    original = transform_module.project_

    def syncing_project(delta, radii):
        float(next(iter(delta.values())).norm())  # a host transfer, as a sloppy loop would do
        return original(delta, radii)
    monkeypatch.setattr(transform_module, "project_", syncing_project)
    mode = HostTransfers()
    ada = AdversarialAugment(tiny_net, backbone=build_backbone("unet"), steps=2)
    x, y = torch.rand(2, 3, 32, 32), torch.randint(0, 10, (2,))
    with mode:
        ada._maximise(ada.corruptors[0], x, y, {k: torch.zeros(2, *p.shape) for k, p in
                                               ada.corruptors[0].module.named_parameters()})
    assert len(mode.ops) == 2


def test_labels_are_range_checked_once_per_call(tiny_net, monkeypatch):
    checks = []
    original = transform_module.check_label_range
    monkeypatch.setattr(transform_module, "check_label_range", lambda *a: checks.append(a) or original(*a))
    ada = AdversarialAugment(tiny_net, backbone=build_backbone("unet"), steps=3, chunk_size=2)
    ada(torch.rand(6, 3, 32, 32), torch.randint(0, 10, (6,)), return_info=True)
    assert len(checks) == 1 and isinstance(checks[0][0], int)  # a host int: no transfer at check time
    with pytest.raises(ValueError, match="label 12 is out of range.*10 outputs"):
        ada(torch.rand(6, 3, 32, 32), torch.tensor([0, 1, 2, 3, 4, 12]))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_no_sync_inside_the_loop_on_cuda(tiny_net, monkeypatch):
    import contextlib

    @contextlib.contextmanager
    def record():
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode("default")
    _spy_maximise(monkeypatch, record)
    net = copy.deepcopy(tiny_net).cuda()
    x, y = torch.rand(6, 3, 32, 32, device="cuda"), torch.randint(0, 10, (6,), device="cuda")
    for backbone in ("unet", "edsr"):
        ada = AdversarialAugment(net, backbone=backbone, weights=None, steps=3, chunk_size=4)
        assert ada(x, y).shape == x.shape
