"""How :class:`~adaaug.transform.AdversarialAugment` reads a batch and gives it back.

AdA needs the images and their labels together, so next to the plain call ``ada(images,
labels)`` it accepts the batch structures that torchvision's v2 transforms pass along:

- ``(images, labels)`` or ``[images, labels]`` (more entries after the labels pass through);
- a dict with the images under ``"image"``/``"images"``/``"img"``/``"input"``/``"x"`` (or the one
  ``tv_tensors.Image`` value) and the labels under ``"label"``/``"labels"``/``"target"``/
  ``"targets"``/``"y"``; every other entry passes through;
- several positional arguments ``images, labels, *rest`` (v2's ``transform(*inputs)``).

The result has the same structure, with the images replaced and everything else, the labels
included, the very objects that came in. Images given as a ``tv_tensors.Image`` come back as
one. A single example (a C×H×W image with a scalar label, as inside a ``Dataset``'s
per-sample transform) is refused with an error that says where AdA goes.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable

import torch

IMAGE_KEYS = ("image", "images", "img", "input", "x")
LABEL_KEYS = ("label", "labels", "target", "targets", "y")

PER_SAMPLE_MESSAGE = (
    "AdversarialAugment is a batch transform: it needs a batch of images N×C×H×W with their labels (N), "
    "because every example's corruption is chosen against the classifier's loss on its label. It got one "
    "image of shape {shape}. Do not put it in a Dataset's per-sample transform; apply it in the training "
    "loop to each batch from the DataLoader: x_adv = ada(x, y), or pipeline((x, y)) for a torchvision v2 "
    "pipeline that contains it")


@dataclass
class Unpacked:
    """The images and labels found in a call, and how to put the result back."""

    images: Any
    labels: Any
    repack: Callable[[torch.Tensor], Any]


def check_not_per_sample(images: Any) -> None:
    """Raise the batch-transform ``ValueError`` for a single C×H×W image or a PIL image."""
    if isinstance(images, torch.Tensor) and images.dim() == 3:
        raise ValueError(PER_SAMPLE_MESSAGE.format(shape=tuple(images.shape)))
    if type(images).__module__.split(".")[0] == "PIL":  # what a Dataset's transform receives
        raise ValueError(PER_SAMPLE_MESSAGE.format(shape=f"PIL {getattr(images, 'size', '')}"))


def _rewrap(like: Any) -> Callable[[torch.Tensor], Any]:
    """Give the output the tensor subclass of the input (``tv_tensors.Image`` stays one)."""
    if type(like) is torch.Tensor or not isinstance(like, torch.Tensor):
        return lambda out: out
    try:
        from torchvision import tv_tensors
    except ImportError:  # pragma: no cover - torchvision is a core dependency
        return lambda out: out
    if isinstance(like, tv_tensors.TVTensor):
        return lambda out: tv_tensors.wrap(out, like=like)
    return lambda out: out


def _from_dict(batch: dict) -> Unpacked:
    image_key = next((k for k in IMAGE_KEYS if k in batch), None)
    if image_key is None:
        try:
            from torchvision import tv_tensors
            found = [k for k, v in batch.items() if isinstance(v, tv_tensors.Image)]
        except ImportError:  # pragma: no cover
            found = []
        image_key = found[0] if len(found) == 1 else None
    label_key = next((k for k in LABEL_KEYS if k in batch), None)
    if image_key is None or label_key is None:
        raise ValueError(f"a dict batch needs the images under one of {list(IMAGE_KEYS)} (or one tv_tensors.Image "
                         f"value) and the labels under one of {list(LABEL_KEYS)}; got keys {list(batch)}")
    wrap = _rewrap(batch[image_key])

    def repack(out: torch.Tensor) -> dict:
        result = dict(batch)  # same keys, same order; a dict subclass comes back as a plain dict
        result[image_key] = wrap(out)
        return result
    return Unpacked(batch[image_key], batch[label_key], repack)


def _from_sequence(seq: tuple | list) -> Unpacked:
    if len(seq) < 2:
        raise ValueError(f"a batch given as a {type(seq).__name__} needs (images, labels, ...), got {len(seq)} "
                         f"entr{'y' if len(seq) == 1 else 'ies'}")
    wrap = _rewrap(seq[0])

    def repack(out: torch.Tensor):
        items = [wrap(out), *seq[1:]]
        return items if isinstance(seq, list) else tuple(items)
    return Unpacked(seq[0], seq[1], repack)


def unpack(inputs: tuple, *, structured: bool) -> Unpacked:
    """Find images and labels in the positional arguments of a call.

    Args:
        inputs: the positional arguments.
        structured: return v2's structure even for two positional arguments (a tuple
            ``(images, labels)``) instead of the images alone.
    """
    if len(inputs) == 1:
        (batch,) = inputs
        if isinstance(batch, dict):
            return _from_dict(batch)
        if isinstance(batch, (tuple, list)):
            return _from_sequence(batch)
        check_not_per_sample(batch)
        if isinstance(batch, torch.Tensor):
            raise ValueError("AdversarialAugment needs the labels with the images: call ada(images, labels), or pass "
                             "the batch as (images, labels) or {'image': images, 'label': labels}")
        raise TypeError(f"expected images and labels, or a batch as a tuple/list/dict; got {type(batch).__name__}")
    if len(inputs) == 2 and not structured:
        return Unpacked(inputs[0], inputs[1], _rewrap(inputs[0]))
    if len(inputs) >= 2:
        return _from_sequence(tuple(inputs))
    raise TypeError("AdversarialAugment needs images and labels: ada(images, labels)")


_CONTAINER_CODES: frozenset | None = None


def _container_codes() -> frozenset:
    """Code objects of the ``forward`` methods of torchvision's v2 containers (Compose, RandomApply, ...)."""
    global _CONTAINER_CODES
    if _CONTAINER_CODES is None:
        codes = set()
        try:
            from torchvision.transforms import v2
            for name in ("Compose", "RandomApply", "RandomChoice", "RandomOrder"):
                forward = getattr(getattr(v2, name, None), "forward", None)
                if forward is not None and hasattr(forward, "__code__"):
                    codes.add(forward.__code__)
        except ImportError:  # pragma: no cover
            pass
        _CONTAINER_CODES = frozenset(codes)
    return _CONTAINER_CODES


def called_by_v2_container(depth: int = 2) -> bool:
    """True when the caller ``depth`` frames up is the ``forward`` of a torchvision v2 container.

    Such a container calls ``transform(*inputs)`` and expects the same number of outputs
    back, so there ``ada(images, labels)`` returns ``(images', labels)`` (v2's convention),
    while a direct call returns the images alone.
    """
    if "torchvision.transforms.v2" not in sys.modules:
        return False
    frame = sys._getframe(depth)
    return frame is not None and frame.f_code in _container_codes()
