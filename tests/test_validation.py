"""Float images a rounding error outside [0, 1] are clamped by every path that takes images; real
out-of-range data is refused with the offending value printed in full; channel messages say what to do."""
from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from adaaug import AdversarialAugment
from adaaug.augment.augmix import AugMix
from adaaug.augment.compose import AugmentationPipeline, standard_augment
from adaaug.validation import RANGE_TOLERANCE, check_images, in_unit_range, range_tolerance


def white_blurred() -> torch.Tensor:
    """What torchvision makes of a white area: a Gaussian blur of ones lands a rounding error above 1."""
    x = torch.ones(4, 3, 32, 32)
    x[:, :, :16] = torch.rand(4, 3, 16, 32, generator=torch.Generator().manual_seed(0))
    return v2.GaussianBlur(9, sigma=1.3)(x)


def test_torchvision_really_leaves_the_range():
    x = white_blurred()
    assert 1 < x.max() <= 1 + RANGE_TOLERANCE  # the premise of the tolerance: rounding error, not data


def ada_run(net, x):
    torch.manual_seed(0)
    ada = AdversarialAugment(net, backbone="unet", weights=None, steps=1)
    return ada(x, torch.arange(4), generator=torch.Generator().manual_seed(0))


def augmix_run(net, x):
    return AugMix(generator=torch.Generator().manual_seed(0))(x)


def standard_run(net, x):
    return standard_augment(x, "cifar10", generator=torch.Generator().manual_seed(0))


def pipeline_run(net, x):
    torch.manual_seed(0)
    pipe = AugmentationPipeline(net, "ada+augmix", weights=None, generator=torch.Generator().manual_seed(0),
                                ada_kwargs={"steps": 1})
    return torch.cat(pipe(x, torch.arange(4)))


def attack_run(net, x):
    from adaaug.evaluate.attacks import robust_accuracy

    return torch.tensor(robust_accuracy(net, x, torch.arange(4), norm="Linf", eps=8 / 255, method="pgd", steps=2,
                                        restarts=1))


def deepaugment_run(net, x):
    from adaaug import DeepAugment

    return DeepAugment("cae", generator=torch.Generator().manual_seed(0))(x)


PATHS = [ada_run, augmix_run, standard_run, pipeline_run, attack_run, deepaugment_run]


@pytest.mark.parametrize("path", PATHS, ids=lambda f: f.__name__)
def test_rounding_error_is_clamped(tiny_net, path):
    x = white_blurred()
    got = path(tiny_net, x)
    expected = path(tiny_net, x.clamp(0, 1))
    assert torch.equal(got, expected)
    assert x.max() > 1  # the user's tensor is not clamped in place


@pytest.mark.parametrize("path", PATHS, ids=lambda f: f.__name__)
def test_out_of_range_data_is_refused_with_its_value(tiny_net, path):
    x = white_blurred().clamp(0, 1)
    x[0, 0, 0, 0] = 1.01
    with pytest.raises(ValueError, match=r"got values in \[[0-9.e-]+, 1.00999999\].*clamp\(0, 1\)"):
        path(tiny_net, x)


def test_tolerance_per_dtype():
    assert range_tolerance(torch.float32) == range_tolerance(torch.float64) == RANGE_TOLERANCE
    assert range_tolerance(torch.float16) == torch.finfo(torch.float16).eps
    half = torch.ones(1, 3, 4, 4, dtype=torch.float16) + torch.finfo(torch.float16).eps  # one ulp above 1
    assert half.max() > 1 and torch.equal(in_unit_range(half), torch.ones_like(half))
    with pytest.raises(ValueError):
        check_images(torch.full((1, 3, 4, 4), -2e-4))
    x = torch.rand(1, 3, 4, 4)
    assert in_unit_range(x) is x  # no copy when nothing needs clamping
    u8 = torch.full((1, 3, 4, 4), 255, dtype=torch.uint8)
    assert in_unit_range(u8) is u8


@pytest.mark.parametrize("channels, hint", [(1, r"images.expand\(-1, 3, -1, -1\)"), (4, r"images\[:, :3\]")])
def test_channel_messages_say_what_to_do(tiny_net, channels, hint):
    ada = AdversarialAugment(tiny_net, backbone="unet", weights=None, steps=1)
    with pytest.raises(ValueError, match=rf"images have {channels} channels? but backbone 'unet' takes 3 channels; .*"
                                         + hint):
        ada(torch.rand(2, channels, 32, 32), torch.zeros(2, dtype=torch.long))


def test_channels_last_and_grayscale_hints_fit_the_caller(tiny_net):
    ada = AdversarialAugment(tiny_net, backbone="unet", weights=None, steps=1)
    with pytest.raises(ValueError, match=r"look channels-last \(N×H×W×C, shape \(2, 32, 32, 3\)\): pass "
                                         r"images.permute\(0, 3, 1, 2\)"):
        ada(torch.rand(2, 32, 32, 3), torch.zeros(2, dtype=torch.long))
    from adaaug import DeepAugment

    with pytest.raises(ValueError, match=r"images have 1 channel but DeepAugment's CAE takes 3 channels; for "
                                         r"grayscale images repeat the channel \(images.expand\(-1, 3, -1, -1\)\)$"):
        DeepAugment("cae", weights=None)(torch.rand(2, 1, 32, 32))
    two = AdversarialAugment(tiny_net, backbone=["unet", "cae"], weights=None, steps=1)
    with pytest.raises(ValueError, match="backbones 'unet', 'cae' take 3 channels"):
        two(torch.rand(2, 1, 32, 32), torch.zeros(2, dtype=torch.long))


def test_float64_values_print_with_enough_digits():
    x = torch.full((1, 3, 4, 4), 1 + 1.0000001e-4, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"\[1.00010000001, 1.00010000001\]"):
        check_images(x)
