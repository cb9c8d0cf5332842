"""Standard augmentation and the App. E.5 pipeline: per-example draws, stage order, views, loss, errors."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from adaaug import paper
from adaaug.augment.compose import METHODS, AugmentationPipeline, standard_augment
from adaaug.augment.jsd import jsd_loss

FAST_ADA = {"steps": 1, "chunk_size": 4}


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _pipeline(net, method: str, **kw) -> AugmentationPipeline:
    return AugmentationPipeline(net, method, weights=None, generator=_gen(), ada_kwargs=FAST_ADA, **kw)


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(1)
    return torch.rand(4, 3, 32, 32, generator=g), torch.randint(0, 10, (4,), generator=g)


# ---- standard augmentation ---------------------------------------------------------------------
def test_cifar10_is_a_padded_crop_with_flip_drawn_per_example():
    x = torch.rand(1, 3, 8, 8, generator=_gen(2)).expand(12, -1, -1, -1).contiguous()
    y = standard_augment(x, "cifar10", _gen())
    assert y.shape == x.shape and y.dtype == x.dtype
    padded = F.pad(x[0], (4, 4, 4, 4))
    crops = {(t, l, f): padded[:, t:t + 8, l:l + 8].flip(-1) if f else padded[:, t:t + 8, l:l + 8]
             for t in range(9) for l in range(9) for f in (False, True)}
    found = [next((k for k, c in crops.items() if torch.equal(c, yi)), None) for yi in y]
    assert all(k is not None for k in found), "an output is not a crop of the zero-padded image"
    assert len(set(found)) > 6, "draws are not independent per example"
    assert {k[2] for k in found} == {False, True}


def test_imagenet_preset_random_resized_crop_to_128():
    x = torch.rand(1, 3, 160, 200, generator=_gen(3)).expand(5, -1, -1, -1).contiguous()
    y = standard_augment(x, "imagenet", _gen())
    assert y.shape == (5, 3, paper.IMAGENET_TRAIN_SIZE, paper.IMAGENET_TRAIN_SIZE)
    assert y.min() >= 0 and y.max() <= 1
    for i, j in itertools.combinations(range(5), 2):
        assert not torch.equal(y[i], y[j])
    u8 = (x * 255).round().to(torch.uint8)
    assert standard_augment(u8, "imagenet", _gen()).dtype == torch.uint8
    # a crop of a constant image is that constant
    flat = torch.full((2, 3, 150, 150), 0.25)
    torch.testing.assert_close(standard_augment(flat, "imagenet", _gen()), torch.full((2, 3, 128, 128), 0.25))


def test_imagenet_crop_matches_resizing_the_cropped_image():
    from adaaug.augment.compose import _resized_crop_boxes

    x = torch.rand(6, 3, 150, 200, generator=_gen(7))
    y = standard_augment(x, "imagenet", _gen(8))
    boxes = _resized_crop_boxes(6, 150, 200, _gen(8))
    for i in range(6):
        t, l, h, w = (int(b[i]) for b in boxes)
        ref = F.interpolate(x[i:i + 1, :, t:t + h, l:l + w], size=(128, 128), mode="bilinear", align_corners=False)
        err = min((y[i] - ref[0]).abs().max(), (y[i] - ref[0].flip(-1)).abs().max())
        assert err < 1e-4, f"example {i}: crop box ({t}, {l}, {h}, {w}) resampled wrongly"


def test_standard_augment_is_seeded():
    x = torch.rand(4, 3, 32, 32, generator=_gen(4))
    for preset in ("cifar10", "imagenet"):
        assert torch.equal(standard_augment(x, preset, _gen(5)), standard_augment(x, preset, _gen(5)))
    assert not torch.equal(standard_augment(x, "cifar10", _gen(5)), standard_augment(x, "cifar10", _gen(6)))


def test_standard_augment_bad_input():
    with pytest.raises(ValueError, match="unknown preset"):
        standard_augment(torch.rand(1, 3, 8, 8), "svhn")
    with pytest.raises(ValueError, match="4 dimensions"):
        standard_augment(torch.rand(3, 8, 8), "cifar10")
    with pytest.raises(ValueError, match="NaN"):
        standard_augment(torch.full((1, 3, 8, 8), float("nan")), "cifar10")


# ---- the pipeline ------------------------------------------------------------------------------
class _Recorder:
    def __init__(self, name: str, fn, log: list[str]) -> None:
        self.name, self.fn, self.log = name, fn, log

    def __call__(self, *args):
        self.log.append(self.name)
        return self.fn(*args)


def test_stages_run_in_the_order_of_appendix_e5(tiny_net, batch):
    x, y = batch
    p = _pipeline(tiny_net, "ada+augmix+deepaugment")
    assert [k for k, _ in p.stages] == ["source", "standard", "ada", "augmix"]
    log: list[str] = []
    for name in ("source", "standard", "ada", "augmix"):
        setattr(p, name, _Recorder(name, getattr(p, name), log))
    views = p(x, y, deepaugment_images=torch.rand_like(x))
    assert log == ["source", "standard", "ada", "augmix"]
    assert len(views) == 3 and all(v.shape == x.shape and v.dtype == torch.float32 for v in views)


def test_augmix_views_are_built_from_the_post_ada_image(tiny_net, batch):
    x, y = batch
    p = _pipeline(tiny_net, "ada+augmix")
    seen: list[torch.Tensor] = []
    ada = p.ada
    p.ada = lambda t, labels: seen.append(ada(t, labels)) or seen[-1]
    views = p(x, y)
    assert torch.equal(views[0], seen[0])
    assert not torch.equal(views[1], seen[0]) and not torch.equal(views[1], views[2])


@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs(tiny_net, batch, method):
    x, y = batch
    p = _pipeline(tiny_net, method)
    views = p(x, y, deepaugment_images=torch.rand_like(x) if "deepaugment" in method else None)
    assert len(views) == (3 if "augmix" in method else 1)
    for v in views:
        assert v.shape == x.shape and v.dtype == torch.float32
        assert torch.isfinite(v).all() and v.min() >= 0 and v.max() <= 1
    names = [k for k, _ in p.stages]
    assert ("ada" in names) == ("ada" in method.split("+"))
    assert ("augmix" in names) == ("augmix" in method) and ("source" in names) == ("deepaugment" in method)


def test_jsd_false_gives_one_augmix_view(tiny_net, batch):
    x, y = batch
    views = _pipeline(tiny_net, "augmix", jsd=False)(x, y)
    assert len(views) == 1


def test_deepaugment_source_probability(tiny_net, batch):
    x, y = batch
    da = torch.rand_like(x)
    for prob, expected in ((1.0, da), (0.0, x)):
        p = _pipeline(tiny_net, "deepaugment", deepaugment_prob=prob)
        p.standard = lambda t: t
        assert torch.equal(p(x, y, deepaugment_images=da)[0], expected)
    p = _pipeline(tiny_net, "deepaugment", deepaugment_prob=0.5)
    p.standard = lambda t: t
    big_x, big_da = torch.zeros(64, 3, 4, 4), torch.ones(64, 3, 4, 4)
    picked = p(big_x, torch.zeros(64, dtype=torch.long), deepaugment_images=big_da)[0][:, 0, 0, 0]
    assert 10 < picked.sum() < 54


def test_uint8_images_and_copies(tiny_net, batch):
    x, y = batch
    u8 = (x * 255).round().to(torch.uint8)
    views = _pipeline(tiny_net, "deepaugment")(u8, y, deepaugment_images=u8)
    assert views[0].dtype == torch.float32 and views[0].max() <= 1


def test_loss_is_cross_entropy_plus_jsd(tiny_net, batch):
    x, y = batch
    p = _pipeline(tiny_net, "augmix")
    logits = [tiny_net(v) for v in p(x, y)]
    expected = F.cross_entropy(logits[0], y) + jsd_loss(*logits)
    torch.testing.assert_close(p.loss(logits, y), expected)
    assert jsd_loss(*logits).item() > 0
    torch.testing.assert_close(p.loss(logits[:1], y), F.cross_entropy(logits[0], y))
    with pytest.raises(TypeError, match="list of 1 or 3"):
        p.loss(logits[0], y)


def test_pipeline_bad_input(tiny_net, batch):
    x, y = batch
    with pytest.raises(ValueError, match="unknown method 'cutmix'"):
        AugmentationPipeline(tiny_net, "cutmix")
    with pytest.raises(ValueError, match="unknown method"):
        AugmentationPipeline(tiny_net, "deepaugment+ada")  # not the canonical order
    with pytest.raises(ValueError, match="unknown preset"):
        AugmentationPipeline(tiny_net, "nominal", preset="mnist")
    with pytest.raises(ValueError, match="deepaugment_prob"):
        AugmentationPipeline(tiny_net, "deepaugment", deepaugment_prob=1.5)
    with pytest.raises(TypeError, match="ada_kwargs"):
        AugmentationPipeline(tiny_net, "ada", ada_kwargs=3)
    p = _pipeline(tiny_net, "deepaugment")
    with pytest.raises(ValueError, match="needs deepaugment_images"):
        p(x, y)
    with pytest.raises(ValueError, match="must match images"):
        p(x, y, deepaugment_images=x[:2])
    with pytest.raises(ValueError, match="NaN"):
        p(x, y, deepaugment_images=torch.full_like(x, float("nan")))
    nominal = _pipeline(tiny_net, "nominal")
    with pytest.raises(ValueError, match="4 dimensions"):
        nominal(x[0], y)
    with pytest.raises(ValueError, match="NaN"):
        nominal(torch.full_like(x, float("nan")), y)
    with pytest.raises(ValueError, match="labels must have shape"):
        nominal(x, y[:2])
    with pytest.raises(TypeError, match="integer"):
        nominal(x, y.float())


def test_imagenet_preset_asks_for_the_published_weights_by_default(tiny_net):
    """The pipeline leaves the weights tag to the AdA preset: no silent use of the CIFAR-10 networks; the
    ImageNet preset's EDSR is DeepAugment's (the tests never download: the message says how to get it)."""
    with pytest.raises(FileNotFoundError, match="'edsr'/'deepaugment'.*adaaug convert-weights edsr"):
        AugmentationPipeline(tiny_net, "ada", preset="imagenet")
    pipe = AugmentationPipeline(tiny_net, "ada", preset="cifar10")  # the packaged tag
    assert pipe.ada is not None


def test_standard_stage_can_be_left_to_the_data_source(tiny_net):
    x = torch.rand(4, 3, 32, 32)
    y = torch.randint(0, 10, (4,))
    pipe = AugmentationPipeline(tiny_net, "nominal", standard=False, generator=_gen())
    assert [name for name, _ in pipe.stages] == []
    assert torch.equal(pipe(x, y)[0], x)
    assert [name for name, _ in AugmentationPipeline(tiny_net, "nominal").stages] == ["standard"]
