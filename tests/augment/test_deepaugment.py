"""DeepAugment: every operation acts, outputs stay finite in [0, 1], draws are per example and seeded."""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from adaaug.augment import deepaugment_ops as O
from adaaug.augment.deepaugment import DeepAugment
from adaaug.backbones import CAE, EDSR

OFF = {"edsr": dict(ops=(), head_ops=("none",), block_ops=("none",)), "cae": dict(ops=(), latent_ops=())}


@pytest.fixture(scope="module")
def nets() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {"edsr": EDSR().eval(), "cae": CAE().eval()}


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _check_range(y: torch.Tensor) -> None:
    assert torch.isfinite(y).all()
    assert y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("kind", ["edsr", "cae"])
def test_without_distortions_it_is_the_backbone(nets, images, kind, monkeypatch):
    da = DeepAugment(nets[kind], generator=_gen(), **OFF[kind])
    net = nets[kind]
    if kind == "cae":  # binarisation draws u ~ U(0, 1): with u = 1/2 it is sign(z), the eval-mode CAE
        real = O.rand
        monkeypatch.setattr(O, "rand", lambda shape, g, like: torch.full(shape, 0.5) if len(shape) == 4 and
                            shape[1] == 32 else real(shape, g, like))
    if kind == "edsr":  # upsampler: super-resolve x itself, clamp the image, resize back (antialiased bilinear)
        high = net.super_resolve(images).clamp(0, 1)
        assert high.shape[-2:] == (64, 64)
        expected = F.interpolate(high, size=(32, 32), mode="bilinear", align_corners=False, antialias=True)
    else:
        expected = net(images).clamp(0, 1)
    torch.testing.assert_close(da(images), expected, rtol=0, atol=1e-6)


def test_cae_binarises_stochastically_like_deepaugments_network(nets, images):
    """P(+1) = (1 + z)/2 per latent value: two generators give two codes, and the images differ."""
    net = nets["cae"]
    da = DeepAugment(net, **OFF["cae"])
    seen = []
    real = O.rand

    def spy(shape, g, like):
        u = real(shape, g, like)
        if len(shape) == 4 and shape[1] == 32:
            seen.append(u)
        return u

    import unittest.mock as mock
    with mock.patch.object(O, "rand", spy):
        a = da(images, generator=_gen(1))
        b = da(images, generator=_gen(2))
    assert len(seen) == 2 and not torch.equal(a, b)
    with torch.no_grad():
        z = net.encode(images)
        code = torch.where(seen[0] < (1 + z) / 2, 1.0, -1.0)
        torch.testing.assert_close(a, net.decode(code), rtol=0, atol=1e-6)


def test_edsr_x4_distorts_and_without_distortions_is_the_backbone(images):
    """DeepAugment's own EDSR is the ×4 network: both upsamplers run, weights come back unchanged."""
    torch.manual_seed(3)
    net = EDSR(scale=4).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = images[:2, :, :12, :12]
    high = net.super_resolve(x).clamp(0, 1)
    assert high.shape[-2:] == (48, 48)
    expected = F.interpolate(high, size=(12, 12), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(DeepAugment(net, generator=_gen(), **OFF["edsr"])(x), expected, rtol=0, atol=1e-6)
    y = DeepAugment(net, generator=_gen())(x)
    assert y.shape == x.shape and not torch.allclose(y, expected)
    _check_range(y)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_edsr_runs_as_an_upsampler_on_odd_sizes(nets):
    """No downsampling first: any H, W works, and the output keeps the input's size."""
    x = torch.rand(2, 3, 15, 21, generator=_gen(4))
    y = DeepAugment(nets["edsr"], generator=_gen(), **OFF["edsr"])(x)
    expected = F.interpolate(nets["edsr"].super_resolve(x).clamp(0, 1), size=(15, 21), mode="bilinear",
                             align_corners=False, antialias=True)
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-6)


WEIGHT_CASES = [("edsr", op) for op in O.EDSR_WEIGHT_OPS] + [("cae", op) for op in O.CAE_WEIGHT_OPS]


@pytest.mark.parametrize("kind,op", WEIGHT_CASES, ids=[f"{k}-{o}" for k, o in WEIGHT_CASES])
def test_each_weight_operation_changes_the_output(nets, images, kind, op):
    x = images[:2]
    plain = DeepAugment(nets[kind], **OFF[kind])(x)
    da = DeepAugment(nets[kind], generator=_gen(), **{**OFF[kind], "ops": (op,), "num_ops": 1})
    y = da(x)
    _check_range(y)
    assert (y - plain).abs().amax(dim=(1, 2, 3)).min() > 1e-6, f"{op} left an example unchanged"


ACT_CASES = ([("edsr", "head_ops", op) for op in O.EDSR_HEAD_OPS if op != "none"]
             + [("edsr", "block_ops", op) for op in O.EDSR_BLOCK_OPS if op != "none"]
             + [("cae", "latent_ops", op) for op in O.CAE_LATENT_OPS])


@pytest.mark.parametrize("kind,where,op", ACT_CASES, ids=[f"{k}-{w}-{o}" for k, w, o in ACT_CASES])
def test_each_activation_operation_changes_the_output(nets, images, kind, where, op):
    x = images[:2]
    plain = DeepAugment(nets[kind], **OFF[kind])(x)
    y = DeepAugment(nets[kind], generator=_gen(), **{**OFF[kind], where: (op,)})(x)
    _check_range(y)
    assert (y - plain).abs().amax(dim=(1, 2, 3)).min() > 1e-6, f"{op} left an example unchanged"


@pytest.mark.parametrize("name", sorted(O.PRIMITIVES))
def test_each_weight_primitive_keeps_shapes_and_changes_weights(name):
    w = torch.randn(4, 8, 8, 3, 3, generator=_gen(2))
    b = torch.randn(4, 8, generator=_gen(3))
    w2, b2 = O.PRIMITIVES[name](w.clone(), b.clone(), _gen())
    assert w2.shape == w.shape and (b2 is None or b2.shape == b.shape)
    assert torch.isfinite(w2).all()
    assert ((w2 - w).flatten(1).abs().amax(1) > 0).all(), f"{name} left a row unchanged"


def test_multiplicative_noise_is_symmetric_around_one():
    """The reference's ``2 * rand_like(W - 1)`` factor is always ≥ 1; ours straddles 1."""
    w = torch.ones(64, 4, 4, 3, 3)
    w2, _ = O.PRIMITIVES["mult_noise"](w, None, _gen())
    factor = w2 / w
    assert (factor < 1).float().mean() > 0.3 and (factor > 1).float().mean() > 0.3
    assert abs(factor.mean().item() - 1) < 0.05


def test_filter_bank_dirichlet_and_keep_max():
    w = torch.randn(2, 4, 4, 3, 3, generator=_gen(4))
    kept, _ = O.PRIMITIVES["keep_max"](w, None, None)
    assert ((kept != 0).flatten(-2).sum(-1) == 1).all()
    assert torch.equal(kept.abs().flatten(-2).amax(-1), w.abs().flatten(-2).amax(-1))


@pytest.mark.parametrize("kind", ["edsr", "cae"])
def test_draws_differ_per_example(nets, kind):
    x = torch.rand(1, 3, 32, 32, generator=_gen(5)).expand(4, -1, -1, -1).contiguous()
    y = DeepAugment(nets[kind], generator=_gen())(x)
    _check_range(y)
    for i, j in itertools.combinations(range(4), 2):
        assert not torch.equal(y[i], y[j]), f"examples {i} and {j} got the same distortion"


@pytest.mark.parametrize("kind", ["edsr", "cae"])
def test_seed_reproduces_bitwise_and_other_seeds_differ(nets, images, kind):
    a = DeepAugment(nets[kind], generator=_gen(7))(images)
    b = DeepAugment(nets[kind], generator=_gen(7))(images)
    c = DeepAugment(nets[kind], generator=_gen(8))(images)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_call_generator_overrides_and_uint8_round_trip(nets, images):
    da = DeepAugment(nets["edsr"], generator=_gen(1))
    u8 = (images * 255).round().to(torch.uint8)
    y = da(u8, generator=_gen(9))
    assert y.dtype == torch.uint8 and y.shape == u8.shape
    assert torch.equal(y, DeepAugment(nets["edsr"])(u8, generator=_gen(9)))


def test_chunking_runs_every_example(nets, images):
    y = DeepAugment(nets["cae"], generator=_gen(), chunk_size=2)(images)
    assert y.shape == images.shape
    _check_range(y)


def test_skipped_blocks_are_chained():
    """EDSR with 8 blocks: 'skip_blocks' must equal one of the chained forwards without 1–3 of blocks 5–7."""
    torch.manual_seed(3)
    net = EDSR(num_blocks=8, features=8).eval()
    x = torch.rand(1, 3, 16, 16, generator=_gen(6))
    y = DeepAugment(net, generator=_gen(), ops=(), head_ops=("none",), block_ops=("skip_blocks",))(x)

    def chained(skip: set[int]) -> torch.Tensor:
        h = net.head(x - net.rgb_mean)
        r = h
        for i, block in enumerate(net.body):
            r = r if i in skip else block(r)
        r = net.body_tail(r) + h
        high = (net.tail(F.pixel_shuffle(net.upsample(r), 2)) + net.rgb_mean).clamp(0, 1)
        return F.interpolate(high, size=(16, 16), mode="bilinear", align_corners=False, antialias=True)

    candidates = [chained(set(s)) for k in (1, 2, 3) for s in itertools.combinations((5, 6, 7), k)]
    assert min((y - c).abs().max().item() for c in candidates) < 1e-6
    assert (y - chained(set())).abs().max() > 1e-6


def test_empty_batch(nets):
    x = torch.zeros(0, 3, 32, 32)
    assert DeepAugment(nets["edsr"])(x).shape == (0, 3, 32, 32)


@pytest.mark.parametrize("bad,err,match", [
    (torch.rand(3, 32, 32), ValueError, "4 dimensions"),
    (torch.full((1, 3, 32, 32), float("nan")), ValueError, "NaN"),
    (torch.rand(1, 1, 32, 32), ValueError, "channels"),
    (torch.rand(1, 3, 30, 30), ValueError, "divisible by 4"),
    (torch.rand(1, 3, 32, 32) * 2, ValueError, r"\[0, 1\]"),
    (torch.randint(0, 9, (1, 3, 32, 32)), TypeError, "dtype"),
    ([[0.0]], TypeError, "torch.Tensor"),
])
def test_bad_input_raises(nets, bad, err, match):
    with pytest.raises(err, match=match):
        DeepAugment(nets["cae"])(bad)


def test_bad_configuration_raises(nets):
    with pytest.raises(ValueError, match="unknown weight operations"):
        DeepAugment(nets["edsr"], ops=("negate", "melt"))
    with pytest.raises(ValueError, match="unknown head_ops"):
        DeepAugment(nets["edsr"], head_ops=("swirl",))
    with pytest.raises(ValueError, match="latent_ops apply to the CAE"):
        DeepAugment(nets["edsr"], latent_ops=("scale",))
    with pytest.raises(ValueError, match="'edsr' or 'cae'"):
        DeepAugment("unet", weights=None)
    with pytest.raises(TypeError, match="generator"):
        DeepAugment(nets["cae"], generator=0)
    with pytest.raises(ValueError, match="at least 5 residual blocks"):
        DeepAugment(EDSR(num_blocks=3, features=4))
    with pytest.raises(TypeError, match="list or tuple"):
        DeepAugment(nets["cae"], ops="negate")


def test_default_share_of_processed_samples_matches_the_reference():
    """Hendrycks et al. train on clean ∪ copies (EDSR, CAE): a uniformly drawn sample is processed k/(k+1)."""
    from fractions import Fraction

    from adaaug import paper
    from adaaug.augment.compose import AugmentationPipeline
    from adaaug.train.config import TrainConfig

    for k in (1, 2, 3):  # enumerate one clean set of 6 images and k processed copies of it
        pool = [False] * 6 + [True] * (6 * k)
        assert paper.deepaugment_share(k) == pytest.approx(float(Fraction(sum(pool), len(pool))))
    assert paper.DEEPAUGMENT_PROBABILITY == pytest.approx(2 / 3)
    assert TrainConfig(deepaugment_data=["edsr-copy", "cae-copy"]).deepaugment_share == pytest.approx(2 / 3)
    assert TrainConfig(deepaugment_data="one-copy").deepaugment_share == pytest.approx(1 / 2)
    assert TrainConfig(deepaugment_data="one-copy", deepaugment_prob=0.3).deepaugment_share == 0.3
    pipe = AugmentationPipeline(torch.nn.Identity(), "deepaugment")
    assert pipe.source.prob == pytest.approx(2 / 3)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_a_users_backbone_in_another_dtype_is_refused_with_the_fix(dtype):
    from adaaug.backbones import build_backbone

    module = build_backbone("cae").to(dtype)
    with pytest.raises(TypeError, match=rf"holds {dtype} weights: pass backbone.float\(\)"):
        DeepAugment(module)
    assert next(module.parameters()).dtype == dtype  # the user's module is not converted behind their back
