"""adaaug's corruptions against the reference generators.

- ImageNet-C severities against ``imagecorruptions`` 1.1.2 (ImageNet-C's generator, packaged; optional,
  skipped when missing): with the same random numbers (numpy's global RNG seen through ``GlobalRNG``)
  the outputs agree to within one grey level wherever both follow ``make_imagenet_c.py``.
- Where ``imagecorruptions`` departs from ``make_imagenet_c.py`` (elastic transform, frost on images that
  fit inside the photographs, snow's layer trimming), a per-image transcription of the generator's steps
  written here is the reference, and ``imagecorruptions`` is compared statistically or where it agrees.
- CIFAR-10-C: no packaged reference exists; the table is checked against ``make_cifar_c.py``'s numbers,
  and the CIFAR-specific steps (frost's shrunk photographs, elastic at 32×32) against transcriptions.

Fast tests use 64×64 (and 32×32) images; the 224×224 comparisons are ``slow``.
"""
from __future__ import annotations

import ast
import inspect

import numpy as np
import pytest

from adaaug.corruptions import ALL, CIFAR10_C, IMAGENET_C, corrupt

from _corruption_reference import GlobalRNG, psnr, reference, run_ours, run_reference, smooth_images

# Same random numbers, same algorithm: within one grey level (motion blur: ImageMagick rounds, the
# reference's emulation truncates; spatter, zoom blur: float rounding at a few pixels).
EXACT = ("gaussian_noise", "shot_noise", "speckle_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
         "fog", "brightness", "contrast", "saturate", "pixelate", "jpeg_compression", "gaussian_blur", "spatter")


def _max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


@pytest.mark.parametrize("name", EXACT)
def test_same_random_numbers_same_output_64px(name):
    image = smooth_images(1, 64, seed=3)[0]
    for severity in (1, 5):
        ref = run_reference(name, image, severity, seed=severity)
        ours = run_ours(name, image, severity, seed=severity)
        assert _max_diff(ref, ours) <= 1, (name, severity)
        assert _max_diff(ours, image) > 1, (name, severity)  # the corruption did something


@pytest.mark.slow
@pytest.mark.parametrize("name", EXACT)
def test_same_random_numbers_same_output_224px(name):
    image = smooth_images(1, 224, seed=4)[0]
    for severity in range(1, 6):
        assert _max_diff(run_reference(name, image, severity, 20 + severity),
                         run_ours(name, image, severity, 20 + severity)) <= 1, (name, severity)


@pytest.mark.slow
def test_snow_224px_agrees_away_from_the_border():
    """imagecorruptions motion-blurs the snow layer before trimming it to the image (make_imagenet_c.py, and
    adaaug, trim first), so the streaks differ within a blur length of the border only."""
    image = smooth_images(1, 224, seed=4)[0]
    for severity in range(1, 6):
        ref, ours = run_reference("snow", image, severity, severity), run_ours("snow", image, severity, severity)
        assert _max_diff(ref[30:-30, 30:-30], ours[30:-30, 30:-30]) <= 2, severity
        assert psnr(ref, ours) > 35, severity


def _impulse_fraction(out: np.ndarray, image: np.ndarray) -> float:
    return float(np.mean((out != image) & ((out == 0) | (out == 255))))


def test_impulse_noise_statistics():
    """The reference's salt and pepper draws from an unseeded generator: compare the fraction of values hit."""
    image = np.full((64, 64, 3), 128, np.uint8)
    for severity in (1, 5):
        amount = IMAGENET_C["impulse_noise"][severity - 1]
        ref = _impulse_fraction(run_reference("impulse_noise", image, severity, 0), image)
        ours = _impulse_fraction(corrupt(image[None], "impulse_noise", severity, params="imagenet",
                                         rng=np.random.default_rng(severity))[0], image)
        sd = np.sqrt(amount * (1 - amount) / image.size)
        assert abs(ours - amount) < 4 * sd and abs(ref - amount) < 4 * sd, (severity, ours, ref, amount)


def _frost_reference(image: np.ndarray, severity: int, seed: int, scale: float, table: dict) -> np.ndarray:
    """The generators' frost for one image: photograph k ~ U{0..4} read by OpenCV (BGR), resized by
    ``scale`` (CIFAR-10-C), a crop at uniform (top, left), RGB, blended; numpy's global RNG seeded."""
    import cv2
    from importlib import resources

    a, b = table["frost"][severity - 1]
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        k = np.random.randint(5)
        name = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")[k]
        path = resources.files("adaaug.corruptions") / "frost" / name
        tex = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
        if scale != 1:
            tex = cv2.resize(tex, (0, 0), fx=scale, fy=scale)
        h, w = image.shape[:2]
        top, left = np.random.randint(0, tex.shape[0] - h), np.random.randint(0, tex.shape[1] - w)
    finally:
        np.random.set_state(state)
    crop = tex[top:top + h, left:left + w][..., [2, 1, 0]]
    return np.uint8(np.clip(a * image.astype(np.float64) + b * crop, 0, 255))


@pytest.mark.parametrize("params, size, scale", [("imagenet", 224, 1.0), ("cifar", 32, 0.2), ("imagenet", 64, 1.0)])
def test_frost_matches_the_generators_crop(params, size, scale):
    table = {"imagenet": IMAGENET_C, "cifar": CIFAR10_C}[params]
    image = smooth_images(1, size, seed=1)[0]
    for severity in range(1, 6):
        ref = _frost_reference(image, severity, 7 * severity, scale, table)
        assert _max_diff(ref, run_ours("frost", image, severity, 7 * severity, params=params)) <= 1, severity


def test_frost_larger_than_the_photographs_matches_imagecorruptions():
    """Images larger than the photographs (ImageNet-C severities): the photograph enlarged as
    imagecorruptions does it, same crop draws."""
    image = smooth_images(1, 610, 905, seed=2)[0]  # above 600×900, the largest photograph
    for severity in (1, 5):
        assert _max_diff(run_reference("frost", image, severity, severity),
                         run_ours("frost", image, severity, severity)) <= 1, severity


def _elastic_reference(image: np.ndarray, alpha: float, sigma: float, affine: float, seed: int) -> np.ndarray:
    """The generators' elastic transform for one image (pixel parameters): random affine of three points,
    then a displacement field, sampled in 3-D (rows, columns, channel) as they do; global RNG seeded."""
    import cv2
    from scipy.ndimage import map_coordinates
    from skimage.filters import gaussian

    x = image.astype(np.float32) / 255.0
    h, w = x.shape[:2]
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        centre, third = np.float32((h, w)) // 2, min(h, w) // 3
        src = np.float32([centre + third, [centre[0] + third, centre[1] - third], centre - third])
        dst = src + np.random.uniform(-affine, affine, size=src.shape).astype(np.float32)
        x = cv2.warpAffine(x, cv2.getAffineTransform(src, dst), (w, h), borderMode=cv2.BORDER_REFLECT_101)
        fields = [(gaussian(np.random.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3) * alpha)
                  .astype(np.float32) for _ in range(2)]
    finally:
        np.random.set_state(state)
    cols, rows, chans = np.meshgrid(np.arange(w), np.arange(h), np.arange(3))
    coords = [(rows + fields[1][..., None]).ravel(), (cols + fields[0][..., None]).ravel(), chans.ravel()]
    out = map_coordinates(x, coords, order=1, mode="reflect").reshape(x.shape)
    return np.uint8(np.clip(out, 0, 1) * 255)


_MAKE_IMAGENET_C_ELASTIC = [(244 * 2, 244 * 0.7, 244 * 0.1), (244 * 2, 244 * 0.08, 244 * 0.2),
                            (244 * 0.05, 244 * 0.01, 244 * 0.02), (244 * 0.07, 244 * 0.01, 244 * 0.02),
                            (244 * 0.12, 244 * 0.01, 244 * 0.02)]  # pixels, for 224×224 images
_MAKE_CIFAR_C_ELASTIC = [(32 * 0, 32 * 0, 32 * 0.08), (32 * 0.05, 32 * 0.2, 32 * 0.07),
                         (32 * 0.08, 32 * 0.06, 32 * 0.06),
                         (32 * 0.1, 32 * 0.04, 32 * 0.05), (32 * 0.1, 32 * 0.03, 32 * 0.03)]


@pytest.mark.parametrize("params, size", [("cifar", 32), pytest.param("imagenet", 224, marks=pytest.mark.slow)])
def test_elastic_transform_matches_the_generator(params, size):
    pixels = {"cifar": _MAKE_CIFAR_C_ELASTIC, "imagenet": _MAKE_IMAGENET_C_ELASTIC}[params]
    image = smooth_images(1, size, seed=6)[0]
    for severity in range(1, 6):
        ref = _elastic_reference(image, *pixels[severity - 1], seed=severity)
        assert _max_diff(ref, run_ours("elastic_transform", image, severity, severity, params=params)) <= 1, severity


def test_elastic_table_is_the_generators_pixels_over_the_side():
    for table, pixels, side in ((IMAGENET_C, _MAKE_IMAGENET_C_ELASTIC, 224), (CIFAR10_C, _MAKE_CIFAR_C_ELASTIC, 32)):
        np.testing.assert_allclose(np.array(table["elastic_transform"]) * side, pixels, rtol=1e-12)


def _reference_tables() -> dict[str, list]:
    """The ``c = [...]`` severity list of each function in imagecorruptions' source (numpy calls evaluated)."""
    tree = ast.parse(inspect.getsource(reference()))
    out = {}
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef) and fn.name in ALL:
            for node in fn.body:
                if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "c":
                    value = node.value.value if isinstance(node.value, ast.Subscript) else node.value
                    out[fn.name] = eval(compile(ast.Expression(value), "<table>", "eval"), {"np": np})
    return out


def test_imagenet_table_is_imagecorruptions_table():
    ref = _reference_tables()
    assert set(ref) == set(ALL) - {"elastic_transform"}  # its elastic transform is rewritten (checked above)
    for name, values in ref.items():
        ours = IMAGENET_C[name]
        if name == "zoom_blur":
            for a, b in zip(ours, values):
                np.testing.assert_array_equal(np.arange(*a), b)
        else:
            assert [tuple(v) if isinstance(v, (tuple, list)) else v for v in values] == list(ours), name


def test_cifar_table_is_make_cifar_c():
    """CIFAR-10-C's numbers as ``make_cifar_c.py`` (github.com/hendrycks/robustness) writes them."""
    reference_numbers = {
        "gaussian_noise": [0.04, 0.06, .08, .09, .10], "shot_noise": [500, 250, 100, 75, 50],
        "impulse_noise": [.01, .02, .03, .05, .07], "speckle_noise": [.06, .1, .12, .16, .2],
        "gaussian_blur": [.4, .6, 0.7, .8, 1],
        "glass_blur": [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],
        "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
        "motion_blur": [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],
        "zoom_blur": [np.arange(1, 1.06, 0.01), np.arange(1, 1.11, 0.01), np.arange(1, 1.16, 0.01),
                      np.arange(1, 1.21, 0.01), np.arange(1, 1.26, 0.01)],
        "fog": [(.2, 3), (.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],
        "frost": [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],
        "snow": [(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
                 (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)],
        "spatter": [(0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
                    (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)],
        "contrast": [.75, .5, .4, .3, 0.15], "brightness": [.05, .1, .15, .2, .3],
        "saturate": [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)],
        "jpeg_compression": [80, 65, 58, 50, 40], "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],
    }
    assert set(reference_numbers) | {"elastic_transform"} == set(ALL) == set(CIFAR10_C)
    for name, values in reference_numbers.items():
        if name == "zoom_blur":
            for a, b in zip(CIFAR10_C[name], values):
                np.testing.assert_array_equal(np.arange(*a), b)
        else:
            assert list(CIFAR10_C[name]) == values, name


@pytest.mark.parametrize("name", ("snow", "frost"))
def test_departures_from_imagecorruptions_are_of_the_same_strength(name):
    """Where the steps differ a little (snow's trimming, frost's 1.1× enlarged photograph), the mean
    distortion (|corrupted − clean|, 64×64, 4 draws) of adaaug's output is within a factor of two of
    imagecorruptions'. (Its elastic transform is another algorithm, several times weaker at 64×64: the
    generator's is checked instead.)"""
    image = smooth_images(1, 64, seed=8)[0].astype(int)
    for severity in (1, 3, 5):
        ref = np.mean([np.abs(run_reference(name, image.astype(np.uint8), severity, s) - image).mean()
                       for s in range(4)])
        ours = np.mean([np.abs(run_ours(name, image.astype(np.uint8), severity, s) - image).mean()
                        for s in range(4)])
        assert 0.5 < ours / ref < 2, (name, severity, ours, ref)


def test_global_rng_view_draws_like_numpy():
    """The comparison helper itself: GlobalRNG gives numpy's global stream."""
    np.random.seed(0)
    a = GlobalRNG().integers(-2, 2, size=5), GlobalRNG().normal(size=3, loc=1, scale=2)
    np.random.seed(0)
    b = np.random.randint(-2, 2, 5), np.random.normal(1, 2, 3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_motion_blur_kernel_matches_the_emulation():
    """The batched kernel equals imagecorruptions' ImageMagick emulation for angles across the range."""
    from adaaug.corruptions._common import im_motion_blur

    image = smooth_images(1, 40, seed=2)[0].astype(np.float64)
    for angle in (-135.0, -90.0, -44.0, 0.0, 17.0, 45.0):
        ref = reference()._motion_blur(image, radius=6, sigma=2, angle=angle)
        ours = im_motion_blur(image[None], 6, 2, np.array([angle]))[0]
        np.testing.assert_allclose(ours, ref, atol=1e-9)
