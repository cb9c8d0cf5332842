"""Input checks shared by the transforms: clear errors instead of silent wrong answers."""
from __future__ import annotations

import numbers

import torch


def check_images(images: object, *, channels: int | None = None, multiple_of: int = 1, min_size: int = 1,
                 name: str = "images") -> None:
    """Raise ``TypeError``/``ValueError`` unless ``images`` is a finite N×C×H×W tensor in [0, 1] (or uint8)."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"{name} must be N×C×H×W (4 dimensions), got shape {tuple(images.shape)}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise TypeError(f"{name} must be a float tensor in [0, 1] or uint8, got dtype {images.dtype}")
    if channels is not None and images.shape[1] != channels:
        raise ValueError(f"{name} have {images.shape[1]} channels; the backbone takes {channels}")
    h, w = images.shape[-2:]
    if images.shape[0] and (h % multiple_of or w % multiple_of):
        raise ValueError(f"{name} are {h}×{w}; the backbone needs H and W divisible by {multiple_of}")
    if images.shape[0] and min(h, w) < min_size:
        raise ValueError(f"{name} are {h}×{w}; need at least {min_size}×{min_size} (SSIM's 11×11 window)")
    if images.is_floating_point() and images.numel():
        # one device→host transfer for all three value checks
        finite, lo, hi = torch.stack([torch.isfinite(images).all().double(), *(v.double() for v in
                                                                              images.aminmax())]).tolist()
        if not finite:
            raise ValueError(f"{name} contain NaN or Inf values")
        if lo < 0 or hi > 1:
            raise ValueError(f"float {name} must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]; "
                             f"divide uint8 data by 255 or pass the uint8 tensor itself")


def check_labels(labels: object, n: int, device: torch.device) -> tuple[int, int] | None:
    """Raise unless ``labels`` is an integer tensor of shape ``(n,)`` with values ≥ 0 on ``device``.

    Any integer dtype is accepted (cast to int64 by the caller); float, complex and bool
    labels raise ``TypeError``. Returns ``(min, max)`` of the labels as Python ints (one
    device→host transfer), or ``None`` for an empty batch; the upper bound needs the
    classifier's number of outputs and is checked with :func:`check_label_range`.
    """
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor of class indices, got {type(labels).__name__}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor of class indices (any integer dtype), got dtype "
                        f"{labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match the images, got {tuple(labels.shape)}")
    if labels.device != device:
        raise ValueError(f"labels are on {labels.device} but images are on {device}")
    if not n:
        return None
    lo, hi = (int(v) for v in torch.stack(list(labels.aminmax())).tolist())
    if lo < 0:
        raise ValueError(f"labels must be class indices ≥ 0, got minimum {lo}")
    return lo, hi


def check_label_range(labels: torch.Tensor | int | None, num_classes: int) -> None:
    """Raise when a label is not a valid index into the classifier's ``num_classes`` logits.

    ``labels``: the labels, or their maximum as an int (no device→host transfer then);
    ``None`` (an empty batch) passes.
    """
    if labels is None or (isinstance(labels, torch.Tensor) and not labels.numel()):
        return
    top = int(labels.max()) if isinstance(labels, torch.Tensor) else int(labels)
    if top >= num_classes:
        raise ValueError(f"label {top} is out of range for a classifier with {num_classes} outputs "
                         f"(labels must lie in [0, {num_classes - 1}])")


def check_positive(value: object, name: str, *, allow_zero: bool = False, integer: bool = False) -> None:
    """Raise unless ``value`` is a (positive / non-negative) real number (integer when asked)."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"{name} must be {'an int' if integer else 'a number'}, got {type(value).__name__}")
    if value < 0 or (value == 0 and not allow_zero) or value != value:
        raise ValueError(f"{name} must be {'≥ 0' if allow_zero else '> 0'}, got {value}")
