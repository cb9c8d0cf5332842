"""Image sets on disk as uint8 tensors: ImageFolder trees and CIFAR-10, decoded once and cached.

:mod:`adaaug.data.images` reads ``<root>/<class>/<image>`` trees and ``cifar10:<root>`` into an
:class:`~adaaug.data.images.ImageSet`; :mod:`adaaug.data.cache` keeps decoded folders in a cache
directory outside the user's data. Every command that reads images goes through here.

Layer: imports nothing of adaaug's; :mod:`adaaug.corruptions`, :mod:`adaaug.evaluate`,
:mod:`adaaug.train` and :mod:`adaaug.experiments` build on it. Names load on first access.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, __path__, {
    name: "images" for name in ("ImageSet", "BadImageError", "MixedSizesError", "load_images", "load_image_folder",
                                "load_cifar10", "decode_image", "list_image_folder", "iterate_batches", "to_float")})

if TYPE_CHECKING:  # pragma: no cover  (for type checkers and IDEs; at run time the names load lazily)
    from .images import (BadImageError, ImageSet, MixedSizesError, decode_image, iterate_batches, list_image_folder,
                         load_cifar10, load_image_folder, load_images, to_float)
