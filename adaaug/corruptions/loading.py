"""Reading ``make-c``'s source images: an image set or a data spec, a seeded subset, resized when asked
(:func:`resize_center_crop`, as torchvision's ``Resize`` + ``CenterCrop``)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def resize_center_crop(image: np.ndarray, size: int, crop: int | None = None) -> np.ndarray:
    """Resize a uint8 ``H×W×3`` image's shorter side to ``size`` and keep its centre ``crop×crop``.

    As torchvision's ``Resize(size)`` then ``CenterCrop(crop)`` on a PIL image: the longer side becomes
    ``int(size·long/short)``, Pillow's bilinear filter (antialiased when shrinking), the crop's offsets
    rounded half to even. ``crop`` defaults to ``size``. Returns uint8 ``crop×crop×3``.
    """
    from PIL import Image

    crop = size if crop is None else crop
    h, w = image.shape[:2]
    short, long = (h, w) if h <= w else (w, h)
    new_long = int(size * long / short)
    new_h, new_w = (size, new_long) if h <= w else (new_long, size)
    if (new_h, new_w) != (h, w):
        image = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    top, left = int(round((new_h - crop) / 2.0)), int(round((new_w - crop) / 2.0))
    return np.ascontiguousarray(image[top:top + crop, left:left + crop])


def _decode_resized(spec: str, resize: int, crop: int | None, limit: int | None, seed: int, skip_bad: bool):
    """The folder's images (the seeded ``limit`` subset), decoded and resized one at a time (mixed sizes)."""
    import torch

    from ..data.images import BadImageError, ImageSet, decode_image, list_image_folder, report_skipped, subset_indices

    files, labels, classes = list_image_folder(spec)
    arrays, kept, skipped = [], [], []
    for i in subset_indices(len(files), limit, seed).tolist():
        try:
            arrays.append(resize_center_crop(decode_image(files[i]), resize, crop))
        except BadImageError:
            if not skip_bad:
                raise
            skipped.append(str(Path(files[i]).relative_to(spec)))
            continue
        kept.append(labels[i])
    report_skipped(spec, skipped)
    if not arrays:
        return ImageSet(torch.zeros(0, 3, crop or resize, crop or resize, dtype=torch.uint8),
                        torch.zeros(0, dtype=torch.int64), classes, len(skipped), tuple(skipped))
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return ImageSet(images, torch.tensor(kept, dtype=torch.int64), classes, len(skipped), tuple(skipped))


def load_source(source, resize: int | None, crop: int | None, limit: int | None, seed: int,
                skip_bad: bool = False):
    """``(ImageSet, spec)``: the source's images (the seeded ``limit`` subset), resized when asked;
    ``skip_bad`` leaves out files that cannot be decoded (named on stderr and in the image set)."""
    import torch

    from ..data.images import ImageSet, MixedSizesError, load_images

    if isinstance(source, ImageSet):
        data, spec = source, "<ImageSet>"
    elif isinstance(source, (str, os.PathLike)):
        spec = str(source)
        if resize is not None and not spec.startswith("cifar10:"):  # decode one file at a time: mixed sizes
            return _decode_resized(spec, resize, crop, limit, seed, skip_bad), spec
        try:
            data = load_images(spec, train=False, skip_bad=skip_bad)
        except MixedSizesError as err:
            raise ValueError(f"images under {err.root} have different sizes ({err.sizes()}): pass resize=N "
                             f"(--resize N) to resize each image's shorter side to N and keep its centre N×N "
                             f"(e.g. --resize 224; ImageNet-C: --resize 256 --crop 224)") from None
    else:
        raise TypeError(f"source must be an ImageSet or a data spec string, got {type(source).__name__}")
    data = data.subset(limit, seed)
    if resize is not None and len(data):
        arrays = [resize_center_crop(img, resize, crop) for img in data.images.permute(0, 2, 3, 1).numpy()]
        data = ImageSet(torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous(), data.labels,
                        data.classes, data.skipped, data.skipped_files)
    return data, spec
