"""Digital corruptions: contrast, elastic transform, pixelate, JPEG, saturate (see :mod:`.noise`)."""
from __future__ import annotations

import io
from typing import Any

import numpy as np

from ._common import blur, pil_each


def contrast(x: np.ndarray, c: float, rng: Any) -> np.ndarray:
    """Scale each image's deviation from its per-channel mean by ``c``."""
    means = x.mean(axis=(1, 2), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def elastic_transform(x: np.ndarray, c: tuple, rng: Any) -> np.ndarray:
    """``c = (alpha, sigma, affine)`` as fractions of ``min(H, W)``: a random affine warp (corners moved by up
    to ``affine``, OpenCV, reflected border), then a smooth random displacement field (uniform noise
    blurred by ``sigma``, scaled by ``alpha``), sampled bilinearly (scipy, reflected border)."""
    import cv2
    from scipy.ndimage import map_coordinates

    x = x.astype(np.float32)
    n, h, w = x.shape[:3]
    alpha, sigma, affine = (v * min(h, w) for v in c)
    centre = np.float32((h, w)) // 2
    size = min(h, w) // 3
    pts1 = np.float32([centre + size, [centre[0] + size, centre[1] - size], centre - size])
    warped = np.empty_like(x)
    for i in range(n):
        pts2 = pts1 + rng.uniform(-affine, affine, size=pts1.shape).astype(np.float32)
        m = cv2.getAffineTransform(pts1, pts2)
        warped[i] = cv2.warpAffine(x[i], m, (w, h), borderMode=cv2.BORDER_REFLECT_101)
    dx = (blur(rng.uniform(-1, 1, size=(n, h, w)), sigma, mode="reflect", truncate=3) * alpha).astype(np.float32)
    dy = (blur(rng.uniform(-1, 1, size=(n, h, w)), sigma, mode="reflect", truncate=3) * alpha).astype(np.float32)
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    out = np.empty(x.shape, dtype=np.float64)
    for i in range(n):  # one image at a time: the coordinate arrays of a whole batch are large
        coords = np.stack([yy + dy[i], xx + dx[i]]).astype(np.float64)
        for ch in range(x.shape[3]):
            out[i, ..., ch] = map_coordinates(warped[i, ..., ch], coords, order=1, mode="reflect")
    return np.clip(out, 0, 1) * 255


def pixelate(x: np.ndarray, c: float, rng: Any) -> np.ndarray:
    """Box-downsample to ``int(c·W)×int(c·H)`` and box-upsample back (Pillow), as both generators do."""
    from PIL import Image

    h, w = x.shape[1:3]
    return pil_each(x, lambda im: im.resize((int(w * c), int(h * c)), Image.BOX).resize((w, h), Image.BOX))


def jpeg_compression(x: np.ndarray, c: int, rng: Any) -> np.ndarray:
    """Pillow JPEG at quality ``c``."""
    from PIL import Image

    def jpeg(im: Any) -> Any:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=c)
        return Image.open(buf).convert("RGB")

    return pil_each(x, jpeg)


def saturate(x: np.ndarray, c: tuple, rng: Any) -> np.ndarray:
    """``c = (scale, shift)`` of the HSV saturation channel (skimage's HSV conversion)."""
    from skimage.color import hsv2rgb, rgb2hsv

    hsv = rgb2hsv(x)
    hsv[..., 1] = np.clip(hsv[..., 1] * c[0] + c[1], 0, 1)
    return np.clip(hsv2rgb(hsv), 0, 1) * 255
