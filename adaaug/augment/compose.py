"""Training-time augmentation pipelines: AdA with its companion augmentations (App. E.5).

The order of App. E.5, per training batch:

1. **source**: per example, the clean sample or its DeepAugment-processed copy
   (probability ``deepaugment_prob``), when the method includes DeepAugment;
2. **standard** augmentation (:func:`standard_augment`): CIFAR-10 pad 4 + random
   crop + random flip; ImageNet random-resized crop to 128 + random flip;
3. **AdA** (:class:`adaaug.transform.AdversarialAugment`, SSIM line search included),
   when the method includes AdA;
4. **AugMix** last (with the JSD consistency triple when ``jsd=True``).

Every stage is a small callable attribute of :class:`AugmentationPipeline`
(``source``, ``standard``, ``ada``, ``augmix``; ``None`` when unused), listed in
order by :attr:`AugmentationPipeline.stages`.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .. import paper
from ..validation import check_labels, check_positive, in_unit_range

METHODS = ("nominal", "ada", "augmix", "deepaugment", "ada+augmix", "ada+deepaugment", "augmix+deepaugment",
           "ada+augmix+deepaugment")
PRESETS = ("cifar10", "imagenet")


def _gen_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _check_generator(generator: object) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def _check_preset(preset: object) -> None:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")


def _crop_flip(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, h: int,
               w: int) -> torch.Tensor:
    """Per-example crops ``x[n, :, top:top+h, left:left+w]`` (mirrored where ``flip``), one gather."""
    n, c = x.shape[:2]
    rows = top.view(n, 1) + torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device).expand(n, w)
    cols = torch.where(flip.view(n, 1), cols.flip(1), cols) + left.view(n, 1)
    return x[torch.arange(n, device=x.device).view(n, 1, 1, 1), torch.arange(c, device=x.device).view(1, c, 1, 1),
             rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]


def _resized_crop_boxes(n: int, height: int, width: int, generator: torch.Generator | None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """RandomResizedCrop boxes (top, left, h, w), float, one per example (torchvision's algorithm).

    Up to ``IMAGENET_CROP_ATTEMPTS`` draws of area fraction ~ U(scale) and log-uniform
    aspect ratio; the first that fits is kept, else the central crop with the ratio
    clamped to the allowed range (as torchvision does).
    """
    tries, dev = paper.IMAGENET_CROP_ATTEMPTS, _gen_device(generator)
    lo, hi = paper.IMAGENET_CROP_SCALE
    area = height * width * (lo + (hi - lo) * torch.rand(n, tries, generator=generator, device=dev,
                                                          dtype=torch.float64))
    log_r = (math.log(paper.IMAGENET_CROP_RATIO[0]), math.log(paper.IMAGENET_CROP_RATIO[1]))
    ratio = torch.exp(log_r[0] + (log_r[1] - log_r[0]) * torch.rand(n, tries, generator=generator, device=dev,
                                                                   dtype=torch.float64))
    cw = torch.sqrt(area * ratio).round()
    ch = torch.sqrt(area / ratio).round()
    ok = (cw > 0) & (ch > 0) & (cw <= width) & (ch <= height)
    u_top = torch.rand(n, tries, generator=generator, device=dev, dtype=torch.float64)
    u_left = torch.rand(n, tries, generator=generator, device=dev, dtype=torch.float64)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1, device=dev))
    # fallback: central crop, aspect ratio clamped to [ratio_min, ratio_max]
    in_ratio = width / height
    if in_ratio < paper.IMAGENET_CROP_RATIO[0]:
        fw, fh = width, round(width / paper.IMAGENET_CROP_RATIO[0])
    elif in_ratio > paper.IMAGENET_CROP_RATIO[1]:
        fh, fw = height, round(height * paper.IMAGENET_CROP_RATIO[1])
    else:
        fw, fh = width, height
    idx = first.clamp_min(0).view(n, 1)
    use = first >= 0
    cw = torch.where(use, cw.gather(1, idx).squeeze(1), torch.full((n,), float(fw), dtype=torch.float64, device=dev))
    ch = torch.where(use, ch.gather(1, idx).squeeze(1), torch.full((n,), float(fh), dtype=torch.float64, device=dev))
    top = torch.where(use, torch.floor(u_top.gather(1, idx).squeeze(1) * (height - ch + 1)), (height - ch) / 2)
    left = torch.where(use, torch.floor(u_left.gather(1, idx).squeeze(1) * (width - cw + 1)), (width - cw) / 2)
    return top.floor(), left.floor(), ch, cw


def standard_augment(x: torch.Tensor, preset: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """The standard augmentation of App. E.5, one independent draw per example, batched.

    Args:
        x: images ``N×C×H×W``, float in [0, 1] (or uint8).
        preset: ``"cifar10"``: zero-pad by 4 and take a random H×W crop (32×32 on
            CIFAR-10), then a random horizontal flip (p = 0.5). ``"imagenet"``: a
            random-resized crop with torchvision's ``RandomResizedCrop`` defaults
            (scale (0.08, 1), ratio (3/4, 4/3), 10 attempts then the central crop),
            resized bilinearly to 128×128 (as ``F.interpolate(crop, 128, mode="bilinear")``:
            no antialiasing when shrinking), then a random flip.
        generator: ``torch.Generator`` for the draws (``None``: torch's global RNG);
            the numbers are drawn on its device, so a CPU generator gives the same
            result on any device.

    Returns:
        ``N×C×H×W`` (cifar10) or ``N×C×128×128`` (imagenet), same dtype and device as ``x``.
    """
    x = in_unit_range(x, name="x")
    _check_preset(preset)
    _check_generator(generator)
    n, _, height, width = x.shape
    dev = _gen_device(generator)
    if preset == "cifar10":
        pad = paper.CIFAR10_PAD
        if n == 0:
            return x.clone()
        offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=dev).to(x.device)
        flip = (torch.rand(n, generator=generator, device=dev) < paper.FLIP_PROBABILITY).to(x.device)
        return _crop_flip(F.pad(x, (pad, pad, pad, pad)), offsets[0], offsets[1], flip, height, width)
    size = paper.IMAGENET_TRAIN_SIZE
    if n == 0:
        return x.new_zeros((0, x.shape[1], size, size))
    top, left, ch, cw = (t.to(x.device) for t in _resized_crop_boxes(n, height, width, generator))
    flip = (torch.rand(n, generator=generator, device=dev) < paper.FLIP_PROBABILITY).to(x.device)
    # output pixel centres mapped into the crop box, in grid_sample's [-1, 1] (align_corners=False) units
    t = (torch.arange(size, device=x.device, dtype=torch.float64) + 0.5) / size  # (0, 1) across the output
    t_x = torch.where(flip.view(n, 1), 1 - t, t)
    # sample inside the crop only (edge pixels replicated), as resizing the cropped image would
    px = torch.minimum(torch.maximum(left.view(n, 1) + t_x * cw.view(n, 1), left.view(n, 1) + 0.5),
                       (left + cw).view(n, 1) - 0.5)
    py = torch.minimum(torch.maximum(top.view(n, 1) + t * ch.view(n, 1), top.view(n, 1) + 0.5),
                       (top + ch).view(n, 1) - 0.5)
    gx, gy = px / width * 2 - 1, py / height * 2 - 1
    grid = torch.stack(torch.broadcast_tensors(gx.view(n, 1, size), gy.view(n, size, 1)), dim=-1)
    xf = x.float() / 255 if x.dtype == torch.uint8 else x
    out = F.grid_sample(xf, grid.to(xf.dtype), mode="bilinear", padding_mode="border", align_corners=False)
    if x.dtype == torch.uint8:
        return out.clamp(0, 1).mul(255).round().to(torch.uint8)
    return out.clamp(0, 1)


def _to_float(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255 if images.dtype == torch.uint8 else images.to(torch.float32)


class SourceSelect:
    """Stage 1: per example, the clean sample or its DeepAugment copy (probability ``prob``)."""

    def __init__(self, prob: float, generator: torch.Generator | None = None) -> None:
        check_positive(prob, "deepaugment_prob", allow_zero=True)
        if prob > 1:
            raise ValueError(f"deepaugment_prob must lie in [0, 1], got {prob}")
        self.prob, self.generator = float(prob), generator

    def __call__(self, clean: torch.Tensor, deepaugment_images: torch.Tensor) -> torch.Tensor:
        """``clean``, ``deepaugment_images``: float32 ``N×C×H×W`` → float32 ``N×C×H×W``."""
        n = clean.shape[0]
        pick = torch.rand(n, generator=self.generator, device=_gen_device(self.generator)) < self.prob
        return torch.where(pick.to(clean.device).view(n, 1, 1, 1), deepaugment_images, clean)


class StandardAugment:
    """Stage 2: :func:`standard_augment` bound to a preset and generator."""

    def __init__(self, preset: str, generator: torch.Generator | None = None) -> None:
        _check_preset(preset)
        self.preset, self.generator = preset, generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return standard_augment(x, self.preset, self.generator)


class AugMixViews:
    """Stage 4: AugMix last; ``[x, augmix(x), augmix(x)]`` with ``jsd``, else ``[augmix(x)]``."""

    def __init__(self, augmix: Callable[..., torch.Tensor], jsd: bool = True) -> None:
        self.augmix, self.jsd = augmix, bool(jsd)

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.jsd:
            return [x, self.augmix(x), self.augmix(x)]
        return [self.augmix(x)]


class AugmentationPipeline:
    """One of the paper's training augmentations (Table 1 rows; App. E.5 order).

    Args:
        model: the classifier being trained (used by AdA; may be any module otherwise).
        method: one of :data:`METHODS` (``"nominal"``, ``"ada"``, ``"augmix"``,
            ``"deepaugment"`` and their ``+`` combinations, in that canonical order).
        preset: ``"cifar10"`` or ``"imagenet"``: standard augmentation and the AdA
            protocol (``AdversarialAugment.cifar10`` / ``.imagenet``).
        backbone: AdA corruption network (passed to ``AdversarialAugment``).
        ada_kwargs: overrides for the AdA preset (e.g. ``steps``, ``nu``, ``chunk_size``).
        deepaugment_prob: probability of taking the DeepAugment copy of a sample (2/3: the share
            of processed samples when the clean set and the reference's two copies, EDSR and CAE,
            are concatenated, as in Hendrycks et al.; pass 0.5 for a single copy, the same rule).
        augmix_kwargs: arguments of :class:`adaaug.augment.augmix.AugMix`.
        jsd: with AugMix, return the clean/augmix/augmix triple for the JSD loss.
        generator: ``torch.Generator`` shared by every stage (``None``: global RNG).
        weights: AdA backbone weights: ``"preset"`` (the preset's own: ``cifar10``, or ``deepaugment``,
            the paper's published EDSR and CAE, for ``imagenet``), another tag, a weights file, one per
            backbone (a dict or ``"edsr=deepaugment,vqvae=FILE"``), or ``None`` (untrained, for tests).
        standard: run the standard-augmentation stage; ``False`` when the data source has already
            applied it (``adaaug train``'s streaming path does, per example, in its workers).

    ``pipeline(images, labels, deepaugment_images=None)`` returns a list of float32
    ``N×C×H'×W'`` views (H' = W' = 128 with the imagenet preset): ``[x]``, or with
    AugMix ``[x, augmix(x), augmix(x)]`` (``jsd=True``) / ``[augmix(x)]``.
    """

    def __init__(self, model: nn.Module, method: str = "nominal", *, preset: str = "cifar10",
                 backbone: str = "edsr", ada_kwargs: dict | None = None,
                 deepaugment_prob: float = paper.DEEPAUGMENT_PROBABILITY, augmix_kwargs: dict | None = None,
                 jsd: bool = True, generator: torch.Generator | None = None, weights: str | None = "preset",
                 standard: bool = True) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        _check_preset(preset)
        _check_generator(generator)
        for name, kw in (("ada_kwargs", ada_kwargs), ("augmix_kwargs", augmix_kwargs)):
            if kw is not None and not isinstance(kw, dict):
                raise TypeError(f"{name} must be a dict or None, got {type(kw).__name__}")
        parts = set(method.split("+"))
        self.method, self.preset, self.generator = method, preset, generator
        self.uses_deepaugment = "deepaugment" in parts
        self.source = SourceSelect(deepaugment_prob, generator) if self.uses_deepaugment else None
        self.standard = StandardAugment(preset, generator) if standard else None
        self.ada = None
        if "ada" in parts:
            from ..transform import AdversarialAugment

            factory = AdversarialAugment.cifar10 if preset == "cifar10" else AdversarialAugment.imagenet
            chosen = {} if weights == "preset" else {"weights": weights}  # the preset knows its dataset's tag
            self.ada = factory(model, **{"backbone": backbone, **chosen, "generator": generator, **(ada_kwargs or {})})
        self.augmix = None
        if "augmix" in parts:
            from .augmix import AugMix

            self.augmix = AugMixViews(AugMix(**{"generator": generator, **(augmix_kwargs or {})}), jsd=jsd)

    @property
    def stages(self) -> list[tuple[str, Callable]]:
        """The stages this method runs, in order, as ``(name, callable)``."""
        named = [("source", self.source), ("standard", self.standard), ("ada", self.ada), ("augmix", self.augmix)]
        return [(k, f) for k, f in named if f is not None]

    def __call__(self, images: torch.Tensor, labels: torch.Tensor,
                 deepaugment_images: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Augment a batch; see the class doc. ``images``: uint8 or float [0, 1] ``N×3×H×W``."""
        images = in_unit_range(images)
        check_labels(labels, images.shape[0], images.device)
        x = _to_float(images)
        if self.source is not None:
            if deepaugment_images is None:
                raise ValueError(f"method {self.method!r} needs deepaugment_images (the DeepAugment-processed "
                                 f"copies of the batch, e.g. from `adaaug deepaugment-data`), got None")
            deepaugment_images = in_unit_range(deepaugment_images, name="deepaugment_images")
            if deepaugment_images.shape != images.shape or deepaugment_images.device != images.device:
                raise ValueError(f"deepaugment_images must match images in shape and device: got "
                                 f"{tuple(deepaugment_images.shape)} on {deepaugment_images.device}, images are "
                                 f"{tuple(images.shape)} on {images.device}")
            x = self.source(x, _to_float(deepaugment_images))
        if self.standard is not None:
            x = self.standard(x)
        if self.ada is not None:
            x = self.ada(x, labels)
        views = self.augmix(x) if self.augmix is not None else [x]
        return [v.to(torch.float32) for v in views]

    def loss(self, logits: list[torch.Tensor] | tuple[torch.Tensor, ...], labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy on ``logits[0]`` (+ λ·JSD over the three views when there are three).

        ``logits``: one ``N×classes`` tensor per view returned by ``__call__``; λ =
        ``AUGMIX_JSD_LAMBDA`` (12, AugMix).
        """
        if isinstance(logits, torch.Tensor) or not isinstance(logits, (list, tuple)) or len(logits) not in (1, 3):
            raise TypeError("logits must be a list of 1 or 3 tensors (one per view returned by the pipeline)")
        loss = F.cross_entropy(logits[0], labels)
        if len(logits) == 3:
            from .jsd import jsd_loss

            loss = loss + jsd_loss(*logits, weight=paper.AUGMIX_JSD_LAMBDA)
        return loss

    def __repr__(self) -> str:
        stages = [k for k, _ in self.stages]
        return f"{type(self).__name__}(method={self.method!r}, preset={self.preset!r}, stages={stages})"
