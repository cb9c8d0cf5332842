"""Copies of an AdversarialAugment leave the classifier behind; AdA refuses to run on a stale classifier
(a copy, or a DataLoader worker's) and says where it belongs."""
from __future__ import annotations

import copy
import io
import pickle

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from adaaug import AdversarialAugment


def make(model):
    torch.manual_seed(0)
    return AdversarialAugment(model, backbone="unet", weights=None, steps=1)


def torch_save_load(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


COPIES = {"pickle": lambda a: pickle.loads(pickle.dumps(a)), "deepcopy": copy.deepcopy, "torch.save": torch_save_load}


@pytest.mark.parametrize("how", COPIES)
def test_copies_leave_the_classifier_behind(tiny_net, how):
    ada = make(tiny_net)
    twin = COPIES[how](ada)
    assert ada.model is tiny_net  # the original keeps it
    assert twin.model is None
    x, y = torch.rand(3, 3, 32, 32), torch.tensor([0, 1, 2])
    with pytest.raises(RuntimeError, match=r"is a copy .*`ada.model = model`"):
        twin(x, y)
    twin.model = tiny_net
    expected = ada(x, y, generator=torch.Generator().manual_seed(0))
    assert torch.equal(twin(x, y, generator=torch.Generator().manual_seed(0)), expected)


def test_pickled_size_does_not_grow_with_the_classifier(tiny_net):
    big = nn.Sequential(tiny_net, nn.Linear(10, 10), nn.Linear(10, 4096), nn.Linear(4096, 10))  # ~0.3 MB more
    assert len(pickle.dumps(make(big))) == len(pickle.dumps(make(tiny_net)))


def test_model_assignment_is_checked(tiny_net):
    ada = make(tiny_net)
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        ada.model = "resnet20"
    assert "model" not in dict(ada.named_children())


def test_call_inside_a_dataloader_worker_is_refused(tiny_net):
    ada = make(tiny_net)
    data = TensorDataset(torch.rand(4, 3, 32, 32), torch.arange(4))

    def collate(batch):
        x = torch.stack([b[0] for b in batch])
        y = torch.stack([b[1] for b in batch])
        return ada(x, y), y

    with pytest.raises(RuntimeError, match="inside a DataLoader worker process"):
        next(iter(DataLoader(data, batch_size=2, collate_fn=collate, num_workers=1)))
    x, _ = next(iter(DataLoader(data, batch_size=2, collate_fn=collate, num_workers=0)))  # in-process is fine
    assert x.shape == (2, 3, 32, 32)
