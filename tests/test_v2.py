"""AdversarialAugment inside torchvision v2 pipelines: structures in, same structures out."""
from __future__ import annotations

import copy

import pytest
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from adaaug import AdAInfo, AdversarialAugment
from adaaug.backbones import build_backbone

torch.manual_seed(1)
UNET = build_backbone("unet")  # one fixed network: every _ada() below is the same transform


def _batch(n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def _ada(net, seed=0):
    return AdversarialAugment(net, backbone=UNET, steps=1,
                              generator=torch.Generator().manual_seed(seed))


def test_compose_before_and_after_on_a_tuple(tiny_net):
    x, y = _batch()
    pipe = v2.Compose([v2.RandomHorizontalFlip(p=1.0), _ada(tiny_net), v2.ToDtype(torch.float64)])
    out_x, out_y = pipe((x, y))
    expected = _ada(tiny_net)(x.flip(-1), y).double()  # the same steps by hand, same seed
    assert out_y is y  # labels untouched: the very object
    assert out_x.dtype == torch.float64 and torch.equal(out_x, expected)


def test_two_positional_inputs_follow_v2s_convention(tiny_net):
    x, y = _batch()
    pipe = v2.Compose([_ada(tiny_net), v2.RandomHorizontalFlip(p=1.0)])
    result = pipe(x, y)  # v2 calls transform(*inputs) and expects as many outputs back
    assert isinstance(result, tuple) and len(result) == 2
    assert result[1] is y
    assert torch.equal(result[0], _ada(tiny_net)(x, y).flip(-1))
    # called directly, ada(x, y) still returns the images alone, and return_info adds AdAInfo
    assert isinstance(_ada(tiny_net)(x, y), torch.Tensor)
    out, info = _ada(tiny_net)(x, y, return_info=True)
    assert isinstance(out, torch.Tensor) and isinstance(info, AdAInfo)


def test_dict_and_list_batches_keep_their_structure(tiny_net):
    x, y = _batch()
    meta = ["a", "b", "c", "d"]
    out = v2.Compose([_ada(tiny_net)])({"image": x, "label": y, "meta": meta})
    assert list(out) == ["image", "label", "meta"] and out["label"] is y and out["meta"] is meta
    assert torch.equal(out["image"], _ada(tiny_net)(x, y))
    as_list = _ada(tiny_net)([x, y])
    assert isinstance(as_list, list) and as_list[1] is y and torch.equal(as_list[0], out["image"])
    (pair, info) = _ada(tiny_net)((x, y), return_info=True)
    assert isinstance(pair, tuple) and torch.equal(pair[0], out["image"]) and info.loss.shape == (4,)
    targets = _ada(tiny_net)({"images": x, "targets": y})
    assert torch.equal(targets["images"], out["image"])


def test_tv_tensor_images_come_back_as_tv_tensors(tiny_net):
    x, y = _batch()
    out_x, out_y = v2.Compose([_ada(tiny_net), v2.RandomVerticalFlip(p=1.0)])((tv_tensors.Image(x), y))
    assert isinstance(out_x, tv_tensors.Image) and out_y is y
    assert torch.equal(out_x.as_subclass(torch.Tensor), _ada(tiny_net)(x, y).flip(-2))
    u8 = (x * 255).round().to(torch.uint8)
    out = v2.Compose([v2.ToDtype(torch.float32, scale=True), _ada(tiny_net)])({"image": tv_tensors.Image(u8),
                                                                                 "label": y})
    assert isinstance(out["image"], tv_tensors.Image) and out["image"].dtype == torch.float32


def test_random_apply_and_random_order_containers(tiny_net):
    x, y = _batch()
    out = v2.RandomApply([_ada(tiny_net)], p=1.0)(x, y)
    assert torch.equal(out[0], _ada(tiny_net)(x, y)) and out[1] is y
    out = v2.RandomOrder([_ada(tiny_net)])(x, y)
    assert torch.equal(out[0], _ada(tiny_net)(x, y)) and out[1] is y


def test_a_per_sample_call_says_ada_is_a_batch_transform(tiny_net):
    x, y = _batch()
    ada = _ada(tiny_net)
    for call in (lambda: ada(x[0], y[0]), lambda: ada(x[0], int(y[0])), lambda: v2.Compose([ada])(x[0], 3),
                 lambda: ada((x[0], 3)), lambda: ada({"image": x[0], "label": 3})):
        with pytest.raises(ValueError, match="batch transform.*training loop"):
            call()
    from PIL import Image

    pil = Image.new("RGB", (32, 32))
    for call in (lambda: ada(pil), lambda: ada(pil, 3), lambda: v2.Compose([v2.RandomHorizontalFlip(), ada])(pil)):
        with pytest.raises(ValueError, match="batch transform.*Dataset"):  # a Dataset's transform(img)
            call()
    with pytest.raises(ValueError, match="needs the labels"):
        ada(x)
    with pytest.raises(ValueError, match="got keys \\['pixels', 'label'\\]"):
        ada({"pixels": x, "label": y})


def test_the_classifier_is_not_a_submodule(tiny_net):
    ada = _ada(tiny_net)
    assert isinstance(ada, torch.nn.Module)
    assert ada.model is tiny_net
    assert ada.state_dict() == {} and list(ada.parameters()) == [] and list(ada.children()) == []
    tiny_net.train()
    ada.to(torch.float64).eval()
    assert all(p.dtype == torch.float32 for p in tiny_net.parameters())
    assert tiny_net.training and tiny_net.bn.training
    other = copy.deepcopy(tiny_net)
    ada.model = other  # reassigning does not register it either
    assert ada.state_dict() == {} and ada.model is other
    assert "AdversarialAugment(backbones=[UNet" in repr(v2.Compose([ada]))
