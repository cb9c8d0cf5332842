"""AdversarialAugment: Algorithm 1 of Calian et al. (ICLR 2022), batched per example.

For a batch of images x with labels y, every example n gets its own perturbation
δ⁽ⁿ⁾ of the corruption network's weights φ, found by projected sign-gradient
ascent on the classifier's loss, and the output is x' = c_{φ+δ⁽ⁿ⁾}(x), pulled
back by the SSIM line search (App. F) when it is too far from x.

Per-example weights are batched over nano-batches of ``chunk_size`` examples
(App. B.1): the backbone runs with one weight set per example (convolutions as one
grouped convolution, other layers under ``torch.func.vmap`` + ``functional_call``;
:mod:`adaaug.per_example`), the classifier runs once per nano-batch on the stacked
outputs, and one ``torch.autograd.grad`` returns all per-example
gradients (δ⁽ⁿ⁾ reaches only example n). Memory grows with ``chunk_size``, not
with the batch.

The classifier is left exactly as found: its parameters, buffers, ``.grad`` and
the train/eval flag of every submodule. The inner maximisation runs it in eval
mode, because (1) in train mode BatchNorm normalises with batch statistics, which
couples the examples of a nano-batch, so the gradient for δ⁽ⁿ⁾ would no longer be
example n's own, and the result would depend on ``chunk_size``; (2) train mode
would update BatchNorm's running statistics M times per step on corrupted
intermediates. Gradients are taken with respect to δ only; ``.grad`` of the
classifier's parameters is never written.

Host synchronisation: the inputs are validated once per call (two small device→host
transfers), δ⁰ is drawn on the images' device (:mod:`adaaug.counter_rng`), and the M-step
loop has no ``.item()``/``.tolist()``/``bool(tensor)``: it queues its work without waiting.
The SSIM line search, after the loop, checks once per nano-batch whether any image
needs pulling back.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import paper
from .batch_io import called_by_v2_container, check_not_per_sample, unpack
from .classifier_checks import (check_live_classifier, classifier_logits, describe, evaluated, gradient_error,
                                input_dtype)
from .corruptor import Corruptor as _Corruptor
from .corruptor import make_corruptors
from .line_search import pull_back
from .perturb import Blocks, example_seeds, project_, random_init, relative_norms, sign_step_
from .validation import check_images, check_label_range, check_labels, check_positive


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
OutputFn = Callable[[Any], torch.Tensor]


@dataclass
class AdAInfo:
    """Per-example diagnostics of one call (``return_info=True``); every tensor has N rows.

    Attributes:
        loss: classifier loss on the returned images.
        ssim: SSIM(x, x') of the returned images.
        gamma: line-search γ (1 where the threshold was already met or the search is off).
        backbone: name of the backbone that corrupted each example.
        relative_norms: per backbone, ``N × blocks`` ‖δ_i‖₂/‖φ_i‖₂ (NaN rows for examples
            another backbone served); column order in ``block_names``.
        block_names: per backbone, the parameter block names.
    """

    loss: torch.Tensor
    ssim: torch.Tensor
    gamma: torch.Tensor
    backbone: list[str]
    relative_norms: dict[str, torch.Tensor] = field(default_factory=dict)
    block_names: dict[str, list[str]] = field(default_factory=dict)


class AdversarialAugment(nn.Module):
    """AdversarialAugment (AdA): adversarially perturbed image-to-image networks as augmentation.

    Args:
        model: the classifier being trained; takes [0, 1] images (put normalisation
            inside the model) and returns logits ``N × classes`` (see ``output_fn`` for
            models that return more). Its output must be differentiable with respect to its
            input (no ``torch.no_grad()``/``.detach()`` inside ``forward``; a ``RuntimeError``
            names the submodule that stops the gradient otherwise). Never modified and never
            a registered submodule of the transform (it is not in ``state_dict()`` or
            ``parameters()``, and ``.to()``/``.train()``/``.eval()`` on the transform leave it
            alone); a ``DistributedDataParallel`` wrapper is unwrapped to its ``.module``.
            Copies of the transform (``pickle``, ``copy.deepcopy``, ``torch.save``) leave it behind
            (a snapshot would not follow training); set ``copy.model = model`` to use a copy. AdA
            runs in the training step, on the live model: a call inside a ``DataLoader`` worker
            (a ``collate_fn`` or dataset transform with ``num_workers > 0``) raises ``RuntimeError``.
        backbone: a registered name (``"edsr"``, ``"cae"``, ``"vqvae"``, ``"unet"``, your
            own), an ``nn.Module`` mapping [0, 1] images to one float tensor of the same shape
            (anything else raises naming the module; tied weights are one block; random ops
            draw per example from torch's global RNG; docs/backbones.md), a list of
            these, or ``"all"`` for the paper's four. With several, each serves an equal
            share of every batch (App. E.4), examples assigned at random; when the batch
            does not divide evenly, which backbones serve one example more is drawn too,
            so every backbone has the same expected share at every batch size.
        nu: relative radius ν: ‖δ_i‖₂ ≤ ν‖φ_i‖₂ per block (0.015, EDSR on CIFAR-10); a
            float or a ``{backbone name: ν}`` dict.
        steps: M, sign-gradient ascent steps (10 CIFAR-10, 3 ImageNet); 0 keeps the random init.
        step_size: η; ``None`` = ¼ of the median per-block radius of each backbone (App. E.4).
        step_scale: multiplies η (10/3 in the ImageNet protocol).
        ssim_threshold: t, the largest SSIM distance 1 − SSIM(x, x') kept by the line
            search (App. F: 0.3 CIFAR-10, 0.7 ImageNet); ``None`` turns the search off.
        chunk_size: examples per nano-batch (App. B.1: 8 CIFAR-10, 1 ImageNet).
        loss_fn: ``loss_fn(logits, labels)`` → per-example losses ``N`` (or their
            sum/mean: the sign step is unchanged by a positive scale). Default cross-entropy,
            which needs logits ``N × classes`` and integer labels in [0, classes). With a
            ``loss_fn`` of your own, the labels are any tensor with N rows on the images'
            device (integer labels are cast to int64, others passed as they are: soft labels,
            float 0/1 targets for a one-logit binary classifier) and the logits any tensor
            with N rows; the label-range check belongs to the default loss only.
        output_fn: ``output_fn(model_output)`` → logits, for classifiers that return more
            than a tensor, e.g. ``lambda out: out[0]`` for ``(logits, features)`` or
            ``lambda out: out.logits``. Default ``None``: the model must return a tensor;
            anything else raises ``TypeError`` naming the classifier and what it returned.
        weights: for backbones given by name: a tag (``"cifar10"``, adaaug's; ``"deepaugment"``,
            the publishers' EDSR and CAE that the paper uses, downloaded once into adaaug's cache), a
            file (``.safetensors``, or a published ``.pt``/``.state`` checkpoint), ``None`` for
            untrained networks (tests), or one per backbone, ``{"edsr": "deepaugment", "vqvae": path}``
            (:func:`adaaug.weights.load_backbone`). A tag that cannot be found raises
            ``FileNotFoundError`` saying where adaaug looked and how to get or train the weights.
        generator: default ``torch.Generator`` for the random init and backbone
            assignment (a call's ``generator=`` overrides it); ``None`` uses torch's
            global RNG.

    Call ``ada(images, labels)`` with images ``N×C×H×W`` float in [0, 1] (or uint8,
    returned as uint8; float values within a rounding error of the range, 1e-4 or one float16/
    bfloat16 ulp, are clamped: :data:`adaaug.validation.RANGE_TOLERANCE`) and labels ``N`` of
    any integer dtype in [0, classes) (any ``N``-row tensor with a ``loss_fn``); returns the
    corrupted images, same shape, dtype and device (plus :class:`AdAInfo` with
    ``return_info=True``). The batch may also come as ``(images, labels)``, a dict or,
    inside a torchvision v2 container, as v2's positional inputs; it is then returned in
    the same structure with the labels untouched (:mod:`adaaug.batch_io`). AdA is a batch
    transform: a single C×H×W image raises ``ValueError``.

    Precision: δ, the projection and the SSIM line search run in float32 (float64 when both
    the images and the classifier are float64). The classifier gets its input in its own
    parameter dtype (a float16/bfloat16 classifier works) and runs under the caller's
    ``torch.autocast`` if there is one; so does the backbone, whose perturbed weights φ + δ
    are formed in float32. Under ``torch.inference_mode()`` the call raises ``RuntimeError``
    (the inner loop needs gradients); under ``torch.no_grad()`` it works.
    """

    def __init__(self, model: nn.Module, backbone: str | nn.Module | Sequence[str | nn.Module] = "edsr",
                 nu: float | dict[str, float] = paper.NU_EDSR_CIFAR10, steps: int = paper.CIFAR10_STEPS,
                 step_size: float | None = None, step_scale: float = 1.0,
                 ssim_threshold: float | None = paper.CIFAR10_SSIM_THRESHOLD,
                 chunk_size: int = paper.CIFAR10_NANO_BATCH, loss_fn: LossFn | None = None,
                 weights: str | dict | None = "cifar10", generator: torch.Generator | None = None,
                 output_fn: OutputFn | None = None) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        check_positive(steps, "steps", allow_zero=True, integer=True)
        check_positive(chunk_size, "chunk_size", integer=True)
        check_positive(step_scale, "step_scale")
        if step_size is not None:
            check_positive(step_size, "step_size")
        if ssim_threshold is not None:
            check_positive(ssim_threshold, "ssim_threshold")
            if ssim_threshold > 1:
                raise ValueError(f"ssim_threshold is an SSIM distance in (0, 1], got {ssim_threshold}")
        if loss_fn is not None and not callable(loss_fn):
            raise TypeError("loss_fn must be callable as loss_fn(logits, labels)")
        if output_fn is not None and not callable(output_fn):
            raise TypeError("output_fn must be callable as output_fn(model_output) -> logits")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self.model = model
        self.steps, self.chunk_size, self.ssim_threshold = int(steps), int(chunk_size), ssim_threshold
        self.loss_fn, self.output_fn = loss_fn, output_fn
        self.generator = generator
        self.corruptors = make_corruptors(backbone, nu, step_size, step_scale, weights)

    def __setattr__(self, name: str, value) -> None:
        if name == "model":  # used, not owned: never a registered submodule (state_dict, .to(), .train())
            if value is not None and not isinstance(value, nn.Module):
                raise TypeError(f"model must be an nn.Module, got {type(value).__name__}")
            self.__dict__[name] = value.module if isinstance(value, nn.parallel.DistributedDataParallel) else value
        else:
            super().__setattr__(name, value)

    def __getstate__(self) -> dict:
        """Copies (``pickle``, ``copy.deepcopy``, ``torch.save``) leave the classifier behind: a snapshot of it
        would not follow the live model being trained. Give the copy a classifier with ``copy.model = model``."""
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        return {**state, "model": None}

    # ---- presets -------------------------------------------------------------------------
    @classmethod
    def cifar10(cls, model: nn.Module, **overrides) -> "AdversarialAugment":
        """The CIFAR-10 protocol (App. E.4): EDSR (CIFAR-10 weights), ν 0.015, 10 steps, t 0.3, nano-batch 8."""
        kwargs = dict(backbone="edsr", nu=paper.NU_EDSR_CIFAR10, steps=paper.CIFAR10_STEPS,
                      ssim_threshold=paper.CIFAR10_SSIM_THRESHOLD, chunk_size=paper.CIFAR10_NANO_BATCH,
                      weights="cifar10")
        return cls(model, **{**kwargs, **overrides})

    @classmethod
    def imagenet(cls, model: nn.Module, **overrides) -> "AdversarialAugment":
        """The ImageNet protocol (App. E.4): EDSR, 3 steps, η × 10/3, t 0.7, nano-batch 1.

        EDSR (and the CAE with ``backbone="cae"``) carry DeepAugment's pre-trained weights, as in the
        paper (App. E.6): tag ``"deepaugment"``, downloaded and checked on first use
        (``FileNotFoundError`` with the URL and ``adaaug convert-weights`` when offline). The paper
        trained its VQ-VAE and U-Net on ImageNet: train them with ``adaaug train-backbone`` and pass
        ``weights={"edsr": "deepaugment", "cae": "deepaugment", "vqvae": file, "unet": file}`` with
        ``backbone="all"``. ``weights=`` (a tag, a file or such a dict) overrides.
        """
        kwargs = dict(backbone="edsr", nu=paper.NU_EDSR_CIFAR10, steps=paper.IMAGENET_STEPS,
                      step_scale=paper.IMAGENET_STEP_SCALE, ssim_threshold=paper.IMAGENET_SSIM_THRESHOLD,
                      chunk_size=paper.IMAGENET_NANO_BATCH, weights="deepaugment")
        return cls(model, **{**kwargs, **overrides})

    # ---- the transform --------------------------------------------------------------------
    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.loss_fn is None:
            return F.cross_entropy(logits, labels, reduction="none")
        loss = self.loss_fn(logits, labels)
        if not isinstance(loss, torch.Tensor) or loss.shape not in {(), (labels.shape[0],)}:
            raise ValueError(f"loss_fn must return a scalar or per-example losses of shape ({labels.shape[0]},), "
                             f"got {getattr(loss, 'shape', type(loss).__name__)}")
        return loss

    def _per_example_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = self._loss(logits, labels)
        if loss.dim() == 1:
            return loss
        return torch.stack([self._loss(logits[i:i + 1], labels[i:i + 1]) for i in range(len(labels))])

    def _logits(self, images: torch.Tensor, model_dtype: torch.dtype, max_label: int | None) -> torch.Tensor:
        """The classifier on ``images``, given in its own dtype; half-precision logits come back as float32.

        ``max_label`` (the batch's largest label, a host int): checked against the number of
        logits, without a device→host transfer.
        """
        out = self.model(images if images.dtype == model_dtype else images.to(model_dtype))
        logits = classifier_logits(out, len(images), self.model, self.output_fn, default_loss=self.loss_fn is None)
        if max_label is not None and self.loss_fn is None:
            check_label_range(max_label, logits.shape[-1])
        return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits

    def _maximise(self, c: _Corruptor, x: torch.Tensor, y: torch.Tensor, delta: Blocks,
                  model_dtype: torch.dtype | None = None,
                  max_label: int | None = None) -> tuple[torch.Tensor, Blocks]:
        """Algorithm 1, steps 2–3, on one nano-batch: M projected sign steps, then x' = c_{φ+δ}(x).

        ``x``: ``n×C×H×W`` in the compute dtype; ``y``: int64 ``n``; ``delta``: δ⁰ in the compute
        dtype. The loop has no device→host synchronisation: it queues M steps.
        """
        model_dtype = model_dtype or x.dtype
        params, buffers, radii = c.state(x.device, x.dtype)
        for _ in range(self.steps):
            leaves = {k: d.requires_grad_(True) for k, d in delta.items()}
            with torch.enable_grad():
                try:
                    logits = self._logits(c.corrupt(x, leaves, params, buffers).to(x.dtype), model_dtype,
                                          max_label)
                    max_label = None  # checked once
                    grads = torch.autograd.grad(self._loss(logits, y).sum(), list(leaves.values()),
                                                allow_unused=True)
                    if all(g is None for g in grads):
                        raise RuntimeError("the perturbations have not been used in the graph")
                except RuntimeError as err:
                    raise gradient_error(err, self.model, x.to(model_dtype), self.output_fn, c.name) from err
            # a block the backbone's forward does not use has no gradient: its δ stays where it is
            grads = [g if g is not None else torch.zeros_like(d) for g, d in zip(grads, leaves.values())]
            delta = {k: d.detach() for k, d in leaves.items()}
            delta = project_(sign_step_(delta, dict(zip(delta, grads)), c.step_size), radii)
        with torch.no_grad():
            return c.corrupt(x, delta, params, buffers).to(x.dtype), delta

    def _validate(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[tuple[int, int] | None, bool]:
        """Check the call's inputs; returns the labels' (min, max) (``None`` for an empty batch or a
        ``loss_fn`` of the user's) and whether the images need clamping (one device→host transfer each)."""
        channels = {c.in_channels for c in self.corruptors if c.in_channels is not None}
        multiple = max(c.multiple_of for c in self.corruptors)
        owner = (f"backbone {self.corruptors[0].name!r}" if len(self.corruptors) == 1 else
                 "backbones " + ", ".join(repr(c.name) for c in self.corruptors))
        clamp = check_images(images, channels=next(iter(channels)) if len(channels) == 1 else None,
                             multiple_of=multiple, min_size=11 if self.ssim_threshold is not None else 1, owner=owner)
        if self.loss_fn is None:
            label_range = check_labels(labels, images.shape[0], images.device)
        else:  # any labels the user's loss takes: only one row per image, on the images' device
            if not isinstance(labels, torch.Tensor) or labels.dim() == 0 or labels.shape[0] != images.shape[0]:
                raise ValueError(f"labels must be a tensor with one row per image ({images.shape[0]}), got "
                                 f"{describe(labels)}")
            if labels.device != images.device:
                raise ValueError(f"labels are on {labels.device} but images are on {images.device}; move them "
                                 f"with labels.to(images.device)")
            label_range = None
        p = next(iter(self.model.parameters()), None)
        if p is not None and p.device != images.device:
            raise ValueError(f"images are on {images.device} but the classifier is on {p.device}; put both on one "
                             f"device (images.to(device) or model.to(device))")
        return label_range, clamp

    def _assign(self, n: int, generator: torch.Generator | None) -> list[torch.Tensor]:
        """Example indices (CPU, sorted) served by each backbone: equal shares of a random permutation;
        the ``n mod B`` larger shares go to a random rotation of the backbones, so that every backbone's
        expected share is n/B for every n (App. E.4)."""
        b = len(self.corruptors)
        if b == 1:
            return [torch.arange(n)]
        source = generator.device if generator is not None else torch.device("cpu")
        order = torch.randperm(n, generator=generator, device=source).cpu()
        shift = int(torch.randint(b, (1,), generator=generator, device=source))
        parts = torch.tensor_split(order, b)  # the first n mod b parts are one longer
        return [parts[(i - shift) % b].sort().values for i in range(b)]

    def __call__(self, *inputs, generator: torch.Generator | None = None, return_info: bool = False):
        """Corrupt a batch: ``ada(images, labels)`` → images; ``ada((images, labels))`` / ``ada(dict)`` → the
        same structure; inside a torchvision v2 container ``(images, labels)`` (see :mod:`adaaug.batch_io`)."""
        return self._structured_call(inputs, len(inputs) != 2 or called_by_v2_container(), generator, return_info)

    def forward(self, *inputs, generator: torch.Generator | None = None, return_info: bool = False):
        """torchvision v2's convention: the batch back in the structure it came in (a tuple for ``*inputs``)."""
        return self._structured_call(inputs, True, generator, return_info)

    def _structured_call(self, inputs: tuple, structured: bool, generator: torch.Generator | None, return_info: bool):
        batch = unpack(inputs, structured=structured)
        out, info = self._run(batch.images, batch.labels, generator, return_info)
        result = batch.repack(out)
        return (result, info) if return_info else result

    def _run(self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None,
             return_info: bool) -> tuple[torch.Tensor, AdAInfo | None]:
        if torch.is_inference_mode_enabled():
            raise RuntimeError("AdversarialAugment needs gradients (its inner loop differentiates the classifier's "
                               "loss with respect to the backbone's weight perturbation) but was called under "
                               "torch.inference_mode(); call it outside inference_mode (torch.no_grad() is fine)")
        check_not_per_sample(images)
        check_live_classifier(self.model)
        label_range, clamp = self._validate(images, labels)
        max_label = label_range[1] if label_range is not None else None
        if not (labels.is_floating_point() or labels.is_complex()):
            labels = labels.to(torch.int64)
        generator = generator if generator is not None else self.generator
        n, device = images.shape[0], images.device
        model_dtype = input_dtype(self.model)
        compute = torch.float64 if images.dtype == model_dtype == torch.float64 else torch.float32
        model_dtype = model_dtype or compute
        x = images.to(compute) / 255 if images.dtype == torch.uint8 else images.to(compute)
        x = x.clamp(0, 1) if clamp else x  # a rounding error outside [0, 1] (out of place: the images are the user's)
        x = x if type(x) is torch.Tensor else x.as_subclass(torch.Tensor)  # a tv_tensors.Image is rewrapped later
        x = x.clone() if x.is_inference() else x  # inference tensors cannot be saved for backward
        out = x.clone()
        gamma = torch.ones(n, device=device, dtype=compute)  # every entry is set per nano-batch
        similarity = torch.ones(n, device=device, dtype=compute)
        names = [""] * n
        norms: dict[str, torch.Tensor] = {}
        # eval mode inside (the class docstring says why); modes and buffers as found afterwards
        with evaluated(self.model), evaluated(*(c.module for c in self.corruptors), buffers=False):
            for c, share in zip(self.corruptors, self._assign(n, generator)):
                if not len(share):
                    continue
                params, _, radii = c.state(device, compute)
                idx = share.to(device, non_blocking=True)
                seeds = example_seeds(len(share), generator, device)  # δ⁰ of example k from seeds[k]
                rel = torch.full((n, len(params)), float("nan"), device=device) if return_info else None
                for s in range(0, len(share), self.chunk_size):
                    sel = idx[s:s + self.chunk_size]
                    delta0 = random_init(params, radii, seeds[s:s + self.chunk_size])
                    x_adv, d = self._maximise(c, x[sel], labels[sel], delta0, model_dtype,
                                              max_label if self.steps else None)
                    if self.steps:
                        max_label = None  # checked against the classifier's outputs at its first forward
                    # line search per nano-batch too, so that memory stays bounded by chunk_size
                    out[sel], gamma[sel], similarity[sel] = pull_back(x[sel], x_adv, self.ssim_threshold, return_info)
                    if rel is not None:  # diagnostics only: one more pass over δ
                        rel[sel] = relative_norms(d, params).float()
                for i in share.tolist():
                    names[i] = c.name
                if rel is not None:
                    norms[c.name] = rel
            if return_info:
                with torch.no_grad():
                    loss = (self._per_example_loss(self._logits(out, model_dtype, max_label), labels) if n
                            else torch.zeros(0, device=device))
        result = out.mul(255).round_().to(torch.uint8) if images.dtype == torch.uint8 else out.to(images.dtype)
        if not return_info:
            return result, None
        info = AdAInfo(loss=loss.detach(), ssim=similarity, gamma=gamma, backbone=names, relative_norms=norms,
                       block_names={c.name: c.block_names for c in self.corruptors})
        return result, info

    def __repr__(self) -> str:
        bbs = ", ".join(f"{c.name}(ν={c.nu:g}, η={c.step_size:.3g}, {getattr(c, 'weights_source', '?')})"
                        for c in self.corruptors)
        return (f"{type(self).__name__}(backbones=[{bbs}], steps={self.steps}, "
                f"ssim_threshold={self.ssim_threshold}, chunk_size={self.chunk_size})")

