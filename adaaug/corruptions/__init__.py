"""The 19 common corruptions of Hendrycks & Dietterich (ICLR 2019), batched and seeded, and -C sets.

Layer: imports the core, :mod:`adaaug.data` and :mod:`adaaug.runtime` only; :mod:`adaaug.evaluate`,
:mod:`adaaug.experiments` and the command line build on it. :func:`make_c`
(:mod:`adaaug.corruptions.dataset`, the ``adaaug make-c`` command) writes a whole benchmark in the
CIFAR-10-C file format and loads on first use.

``corrupt(images, name, severity, params=..., rng=...)`` (:mod:`.catalog`) maps a uint8 batch ``N×H×W×3`` (values
0..255) to a corrupted uint8 batch of the same shape. One implementation of each corruption
(:mod:`.noise`, :mod:`.blur`, :mod:`.weather`, :mod:`.digital`, helpers in :mod:`._common`) reads
one of two severity tables (:mod:`.tables`):

- ``params="cifar"``: :data:`CIFAR10_C`, from ``make_cifar_c.py`` of github.com/hendrycks/robustness
  (``ImageNet-C/create_c/``), set for 32×32 images;
- ``params="imagenet"``: :data:`IMAGENET_C`, from ``make_imagenet_c.py`` (the same values as the
  ``imagecorruptions`` package), set for 224×224 images.

Most corruptions need the ``protocol`` extra (SciPy, scikit-image, OpenCV: ``pip install "adaaug[protocol]"``);
the ``imagecorruptions`` package is not needed. The algorithms are those of the reference generators, written here
batched over images and driven by a ``numpy.random.Generator``; the generators differ from each
other only in their tables, in frost's texture scale, and in the image side they hard-code, which is
generalised to ``H×W`` here as ``imagecorruptions`` does. Where the references use ImageMagick (motion
blur, the streaks of snow), its motion blur is emulated as ``imagecorruptions`` does. Where
``imagecorruptions`` departs from ``make_imagenet_c.py``, ImageNet-C's generator is followed: elastic
transform (the affine warp plus displacement field of the released sets, not imagecorruptions'
rewrite), pixelate (box filter up and down, not nearest-neighbour up) and frost (an uncropped
photograph when the image fits inside it; larger images get the photograph enlarged as
``imagecorruptions`` enlarges it, so frost takes any size with ImageNet-C severities; with CIFAR-10-C
severities, whose photographs are shrunk to a fifth, at most :func:`frost_max_size`, 62×104).

Outputs are truncated to uint8 as the reference scripts do (``np.uint8``), except the
ImageMagick-produced layers (motion blur, the snow streaks), which ImageMagick rounds. Agreement with
the references is tested in ``tests/corruptions/test_corruptions_reference.py``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach
from .catalog import ALL, BENCHMARK, EXTRA, MIN_SIZE, corrupt
from .tables import CIFAR10_C, FROST_SCALE, IMAGENET_C, IMAGENET_C_OWN, TABLES
from .weather import frost_max_size

__all__ = ["ALL", "BENCHMARK", "EXTRA", "CIFAR10_C", "IMAGENET_C", "IMAGENET_C_OWN", "TABLES", "FROST_SCALE",
           "corrupt", "frost_max_size", "MIN_SIZE", "make_c"]

# make_c (and the rest of the command) load on first access: ``adaaug.corruptions.make_c``
__getattr__, _dir, _ = attach(__name__, __path__, {"make_c": "dataset"})


def __dir__() -> list[str]:
    return sorted(set(__all__) | set(_dir()))


if TYPE_CHECKING:  # pragma: no cover  (for type checkers and IDEs; at run time make_c loads lazily)
    from .dataset import make_c
