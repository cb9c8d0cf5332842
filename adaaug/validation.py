"""Input checks shared by the transforms: clear errors instead of silent wrong answers."""
from __future__ import annotations

import numbers

import torch


RANGE_TOLERANCE = 1e-4
"""How far outside [0, 1] a float image may lie and still be accepted (then clamped): rounding error, not data.

Blurs and resamplings (``v2.GaussianBlur``, bicubic ``v2.Resize``) turn a white area into 1.0000002;
a normalise/denormalise round trip does the same. 1e-4 covers such sums of float32 rounding errors
with a wide margin and is 40× smaller than one uint8 level (1/255), so real out-of-range data (a
missing ``/255``, a normalised tensor, a bicubic overshoot at an edge) is still refused. float16 and
bfloat16 images get one unit in the last place at 1.0 instead when that is larger (9.8e-4, 7.8e-3).
"""


def range_tolerance(dtype: torch.dtype) -> float:
    """:data:`RANGE_TOLERANCE`, or the dtype's machine epsilon when larger (float16, bfloat16)."""
    return max(RANGE_TOLERANCE, torch.finfo(dtype).eps) if dtype.is_floating_point else 0.0


def channel_hint(shape: tuple[int, ...], expected: int, *, own_backbone: bool = True) -> str:
    """What to do when images of ``shape`` (N×C×H×W) have another channel count than a network's ``expected``.

    ``own_backbone``: whether a backbone of the user's may be passed instead (AdA: yes; DeepAugment: no).
    """
    got = shape[1]
    if shape[-1] == expected and got != expected:
        return (f"; they look channels-last (N×H×W×C, shape {tuple(shape)}): pass images.permute(0, 3, 1, 2) "
                f"(or v2.ToImage per image)")
    if got == 1 and expected == 3:
        return ("; for grayscale images repeat the channel (images.expand(-1, 3, -1, -1))" +
                (" and, if the classifier takes one channel, average the three back at its input, or pass a "
                 "backbone of your own that takes one channel" if own_backbone else ""))
    if got == 4 and expected == 3:
        return "; drop the alpha channel (images[:, :3])"
    if got == 3 and expected == 1:
        return "; convert to grayscale first (torchvision.transforms.v2.Grayscale)"
    return ""


def check_images(images: object, *, channels: int | None = None, multiple_of: int = 1, min_size: int = 1,
                 name: str = "images", owner: str = "the backbone", min_reason: str | None = None) -> bool:
    """Raise ``TypeError``/``ValueError`` unless ``images`` is a finite N×C×H×W tensor in [0, 1] (or uint8).

    Float values within :func:`range_tolerance` of [0, 1] (rounding error) are accepted: the return
    value is ``True`` when some lie outside [0, 1], and the caller must then use
    ``images.clamp(0, 1)`` (out of place: the tensor is the user's). ``owner`` names the network
    whose ``channels``/``multiple_of`` are checked, for the messages; ``min_reason`` says why ``min_size``
    (default: SSIM's window in AdA's line search).
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"{name} must be N×C×H×W (4 dimensions), got shape {tuple(images.shape)}")
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise TypeError(f"{name} must be a float tensor in [0, 1] or uint8, got dtype {images.dtype}")
    if channels is not None and images.shape[1] != channels:
        verb = "take" if owner.startswith("backbones ") else "takes"
        hint = channel_hint(tuple(images.shape), channels, own_backbone="DeepAugment" not in owner)
        raise ValueError(f"{name} have {images.shape[1]} channel{'s' * (images.shape[1] != 1)} but {owner} {verb} "
                         f"{channels} channels{hint}")
    h, w = images.shape[-2:]
    if images.shape[0] and (h % multiple_of or w % multiple_of):
        raise ValueError(f"{name} are {h}×{w}; {owner} needs H and W divisible by {multiple_of} (pad or crop them)")
    if images.shape[0] and min(h, w) < min_size:
        raise ValueError(f"{name} are {h}×{w}; need at least {min_size}×{min_size} " + (
            min_reason or "for SSIM's 11×11 window (the line search; ssim_threshold=None turns it off)"))
    if not images.is_floating_point() or not images.numel():
        return False
    # one device→host transfer for all three value checks
    finite, lo, hi = torch.stack([torch.isfinite(images).all().double(), *(v.double() for v in
                                                                          images.aminmax())]).tolist()
    if not finite:
        raise ValueError(f"{name} contain NaN or Inf values")
    tol = range_tolerance(images.dtype)
    if lo < -tol or hi > 1 + tol:
        digits = 17 if images.dtype == torch.float64 else 9  # enough to tell the value from the tolerance
        raise ValueError(f"float {name} must lie in [0, 1] (up to a rounding error of {tol:.2g}), got values in "
                         f"[{lo:.{digits}g}, {hi:.{digits}g}]; divide uint8 data by 255 (or pass the uint8 tensor itself), undo "
                         f"a normalisation (adaaug models normalise inside), or clamp with {name}.clamp(0, 1)")
    return lo < 0 or hi > 1


def in_unit_range(images: torch.Tensor, **checks) -> torch.Tensor:
    """:func:`check_images`, then ``images`` clamped to [0, 1] if a rounding error put them outside (a new tensor;
    the input is returned as is otherwise)."""
    return images.clamp(0, 1) if check_images(images, **checks) else images


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
        raise ValueError(f"labels are on {labels.device} but images are on {device}; move them with "
                         f"labels.to(images.device)")
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
