"""DeepAugment (Hendrycks et al., ICCV 2021), batched, one independent draw per example.

An image is passed through an image-to-image network (EDSR or the CAE) whose weights
and activations are distorted at random (Hendrycks et al., "The Many Faces of Robustness"; used by the
AdA paper as a pre-processed copy of the training set, App. E.5):

* **weight distortions**: ``num_ops`` operations per example (3 for EDSR, 1 for the
  CAE, drawn with repetition from ``ops``), each applied to one or more randomly chosen
  conv layers (EDSR: the 32 residual-block convs; CAE: residual-block convs and the
  3×3 decoder convs, 80% of the draws in the decoder);
* **activation distortions**: EDSR, one operation after the head conv and one after
  the fifth residual block; CAE, one operation on the binarised latent code (binarised
  stochastically, +1 with probability (1 + z)/2, as DeepAugment's CAE does; AdA instead runs
  the CAE in eval mode, sign(z), so that its corruption is a function of δ alone).

Every example draws its own distortions (the reference redraws the weights for only
~5% of images). Per-example weights are swapped into the backbone
(:func:`adaaug._reparam.swapped`, which puts the backbone's own Parameters back afterwards,
tied weights included) under ``vmap`` over chunks of ``chunk_size`` examples: only
the layers some example of the chunk distorted get per-example copies, the others
stay shared. All weight draws are planned for the whole batch first, and examples are
chunked in the order of the layers they distort, so that a chunk needs few
per-example layers (the CAE, with one operation per example, gains most). Activation
operations run outside ``vmap`` on the whole chunk, grouped by operation, with
per-example masks and permutations. The operations themselves are in
:mod:`adaaug.augment.deepaugment_ops`.

The output is clamped to [0, 1] (NaN/Inf from extreme distortions are mapped to 0/1
first, so it is always finite). Images keep their size. EDSR runs as an upsampler, as in
the reference (which super-resolves the clean image and resizes the result for
training): the distorted network super-resolves ``x`` itself ×2, and the result is
resized back to ``H×W`` with the antialiased bilinear kernel (the ``edsr`` backbone's
construction, :mod:`adaaug.backbones.edsr`). The CAE needs H, W divisible by 4.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import torch
from torch import nn
from torch.func import vmap

from .. import paper
from .._reparam import TensorSlots, swapped
from ..backbones.cae import CAE
from ..backbones.cae import MIN_SIZE as CAE_MIN_SIZE
from ..backbones.edsr import EDSR
from ..validation import check_positive, in_unit_range
from . import deepaugment_ops as ops_mod
from .deepaugment_ops import Layout


def _edsr_layout(model: EDSR) -> Layout:
    nb = len(model.body)
    layers = tuple(f"body.{i}.conv{j}" for i in range(nb) for j in (1, 2))
    return Layout(layers, torch.full((len(layers),), 1 / len(layers)), tuple((2 * i, 2 * i + 1) for i in range(nb)),
                  torch.full((nb,), 1 / nb))


def _cae_layout(model: CAE) -> Layout:
    enc = [f"enc_blocks.{i}.conv{j}" for i in range(len(model.enc_blocks)) for j in (1, 2)]
    dec = ["dec1", *(f"dec_blocks.{i}.conv{j}" for i in range(len(model.dec_blocks)) for j in (1, 2)), "dec2", "dec3"]
    share = paper.DEEPAUGMENT_CAE_DECODER_SHARE
    probs = torch.tensor([(1 - share) / len(enc)] * len(enc) + [share / len(dec)] * len(dec), dtype=torch.float64)
    layers = tuple(enc + dec)
    blocks = tuple((layers.index(f"{part}.{i}.conv1"), layers.index(f"{part}.{i}.conv2"))
                   for part, n in (("enc_blocks", len(model.enc_blocks)), ("dec_blocks", len(model.dec_blocks)))
                   for i in range(n))
    n_enc = len(model.enc_blocks)
    bprobs = torch.tensor([(1 - share) / n_enc] * n_enc + [share / len(model.dec_blocks)] * len(model.dec_blocks),
                          dtype=torch.float64)
    return Layout(layers, probs, blocks, bprobs)


def _check_names(names: object, table: Sequence[str], what: str) -> tuple[str, ...]:
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise TypeError(f"{what} must be a list or tuple of operation names, got {type(names).__name__}")
    bad = [n for n in names if n not in table]
    if bad:
        raise ValueError(f"unknown {what} {bad}; known: {', '.join(table)}")
    return tuple(names)


class DeepAugment:
    """DeepAugment image distortions with an independent draw per example.

    Args:
        backbone: ``"edsr"`` or ``"cae"`` (loaded with :func:`adaaug.weights.load_backbone`),
            or an :class:`~adaaug.backbones.EDSR` / :class:`~adaaug.backbones.CAE` instance
            (EDSR needs at least 5 residual blocks). An instance is left as found: its
            Parameters, values and train/eval mode are the same after every call (it runs in
            eval mode), and it must already be on the images' device. Layers that share one
            weight (``body[1] = body[0]``) share its distortions: an operation drawn for either
            name distorts that one tensor, seen by both.
        weights: for a named backbone: a tag, ``"cifar10"`` (adaaug's CIFAR-10 networks) or
            ``"deepaugment"`` (DeepAugment's own published EDSR ×4 and CAE, downloaded and checked once
            into adaaug's cache); a file (``.safetensors``, or the published ``edsr_baseline_x4.pt`` /
            ``model_final.state`` itself); ``None`` for a freshly initialised network (tests). See
            :func:`adaaug.weights.load_backbone`.
        generator: default ``torch.Generator`` (a call's ``generator=`` overrides it;
            ``None``: torch's global RNG). Draws happen on its device, so a CPU
            generator reproduces bitwise on CPU.
        ops: weight operations to draw from (names in ``deepaugment_ops.WEIGHT_OPS``);
            default all 20 for EDSR, the nine of ``CAE_WEIGHT_OPS`` for the CAE; ``()``
            turns weight distortions off.
        num_ops: weight operations per example (default 3 EDSR, 1 CAE).
        head_ops, block_ops: EDSR activation operations after the head conv / after the
            fifth residual block (default all, "none" included; ``("none",)`` turns one off).
        latent_ops: CAE latent operations (default all eight; ``()`` turns them off).
        chunk_size: examples per ``vmap`` chunk (memory ∝ chunk_size × distorted layers).

    ``da(x)``: ``x`` ``N×3×H×W``, float in [0, 1] or uint8 (any H, W for EDSR, multiples
    of 4 for the CAE) → distorted images, same shape, dtype and device, in [0, 1].
    """

    def __init__(self, backbone: str | nn.Module = "edsr", weights: str | os.PathLike | None = "cifar10",
                 generator: torch.Generator | None = None, *, ops: Sequence[str] | None = None,
                 num_ops: int | None = None, head_ops: Sequence[str] | None = None,
                 block_ops: Sequence[str] | None = None, latent_ops: Sequence[str] | None = None,
                 chunk_size: int = 16) -> None:
        if isinstance(backbone, str):
            if backbone not in ("edsr", "cae"):
                raise ValueError(f"DeepAugment backbone must be 'edsr' or 'cae', got {backbone!r}")
            from ..weights import load_backbone

            module = load_backbone(backbone, weights).eval().requires_grad_(False)
        elif isinstance(backbone, (EDSR, CAE)):
            module = backbone
            dtypes = {p.dtype for p in module.parameters()}
            if dtypes != {torch.float32}:
                raise TypeError(f"DeepAugment distorts its backbone's weights in float32, but this "
                                f"{type(module).__name__} holds {', '.join(sorted(map(str, dtypes)))} weights: pass "
                                f"backbone.float() (autocast around the call still runs it in lower precision)")
        else:
            raise TypeError(f"backbone must be 'edsr', 'cae' or an EDSR/CAE module, got {type(backbone).__name__}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        check_positive(chunk_size, "chunk_size", integer=True)
        self.kind = "edsr" if isinstance(module, EDSR) else "cae"
        if self.kind == "edsr" and len(module.body) < paper.DEEPAUGMENT_EDSR_ACTIVATION_BLOCK:
            raise ValueError(f"EDSR needs at least {paper.DEEPAUGMENT_EDSR_ACTIVATION_BLOCK} residual blocks for "
                             f"DeepAugment, got {len(module.body)}")
        self.module = module
        self._owned = isinstance(backbone, str)  # loaded here: free to move to the images' device
        self.layout = _edsr_layout(module) if self.kind == "edsr" else _cae_layout(module)
        default_ops = ops_mod.EDSR_WEIGHT_OPS if self.kind == "edsr" else ops_mod.CAE_WEIGHT_OPS
        self.ops = _check_names(default_ops if ops is None else ops, tuple(ops_mod.WEIGHT_OPS), "weight operations")
        default_num = paper.DEEPAUGMENT_EDSR_NUM_OPS if self.kind == "edsr" else paper.DEEPAUGMENT_CAE_NUM_OPS
        num_ops = default_num if num_ops is None else num_ops
        check_positive(num_ops, "num_ops", allow_zero=True, integer=True)
        self.num_ops = int(num_ops)
        if self.kind == "edsr":
            if latent_ops is not None:
                raise ValueError("latent_ops apply to the CAE backbone; use head_ops / block_ops for EDSR")
            self.head_ops = _check_names(tuple(ops_mod.EDSR_HEAD_OPS) if head_ops is None else head_ops,
                                         tuple(ops_mod.EDSR_HEAD_OPS), "head_ops")
            self.block_ops = _check_names(tuple(ops_mod.EDSR_BLOCK_OPS) if block_ops is None else block_ops,
                                          tuple(ops_mod.EDSR_BLOCK_OPS), "block_ops")
            self.latent_ops: tuple[str, ...] = ()
        else:
            if head_ops is not None or block_ops is not None:
                raise ValueError("head_ops / block_ops apply to the EDSR backbone; use latent_ops for the CAE")
            self.latent_ops = _check_names(tuple(ops_mod.CAE_LATENT_OPS) if latent_ops is None else latent_ops,
                                           tuple(ops_mod.CAE_LATENT_OPS), "latent_ops")
            self.head_ops = self.block_ops = ()
        self.chunk_size = int(chunk_size)
        self.generator = generator

    # ---- distortions ---------------------------------------------------------------------------
    def _plan(self, n: int, g: torch.Generator | None) -> list[list[tuple[str, torch.Tensor, torch.Tensor]]]:
        """Weight-distortion draws for the whole batch: per draw, ``[(primitive, layer, example), ...]``.

        ``layer`` and ``example`` are index tensors of equal length; within one draw an
        (example, layer) pair occurs at most once.
        """
        plan = []
        for _ in range(self.num_ops if self.ops else 0):
            choice = ops_mod.randint(len(self.ops), (n,), g)
            entries = []
            for k, name in enumerate(self.ops):
                ex = (choice == k).nonzero().squeeze(1)
                if ex.numel():
                    expansion = ops_mod.WEIGHT_OPS[name](self.layout, ex.numel(), g)
                    entries += [(prim, layer, ex) for prim, layer in expansion]
            plan.append(entries)
        return plan

    @staticmethod
    def _order(plan: list[list[tuple[str, torch.Tensor, torch.Tensor]]], n: int) -> torch.Tensor:
        """Examples sorted by the set of layers they distort, so a chunk needs per-example copies of few layers."""
        touched: list[set[int]] = [set() for _ in range(n)]
        for entries in plan:
            for _, layer, ex in entries:
                for e, li in zip(ex.tolist(), layer.tolist()):
                    touched[e].add(li)
        return torch.tensor(sorted(range(n), key=lambda i: sorted(touched[i])), dtype=torch.long)

    def _weight_distortions(self, plan: list[list[tuple[str, torch.Tensor, torch.Tensor]]], pos: torch.Tensor,
                            start: int, m: int, g: torch.Generator | None) -> dict[str, torch.Tensor]:
        """Per-example weights ``{param name: m×shape}`` of the chunk ``pos ∈ [start, start + m)``.

        Only layers that some example of the chunk distorts get per-example copies.
        """
        slots = TensorSlots(self.module)
        params = slots.params
        # a layer reached under another name (tied weights) distorts the one shared tensor
        canonical = {alias: name for name, names in slots.aliases.items() for alias in names}
        device = next(iter(params.values())).device
        pe: dict[str, torch.Tensor] = {}
        for entries in plan:
            for prim, layer, ex in entries:
                local = pos[ex] - start
                inside = (local >= 0) & (local < m)
                if not bool(inside.any()):
                    continue
                layer, local = layer[inside], local[inside]
                for li in layer.unique().tolist():
                    rows = local[layer == li].to(device)
                    wk = canonical[f"{self.layout.layers[li]}.weight"]
                    bk = canonical.get(f"{self.layout.layers[li]}.bias", "")
                    for key in (wk, bk):
                        if key not in pe and key in params:
                            pe[key] = params[key].detach().unsqueeze(0).repeat(m, *([1] * params[key].dim()))
                    w, b = ops_mod.PRIMITIVES[prim](pe[wk][rows], pe[bk][rows] if bk in pe else None, g)
                    pe[wk][rows] = w
                    if b is not None:
                        pe[bk][rows] = b
        return pe

    def _segment(self, fn: Callable[..., torch.Tensor], pe: dict[str, torch.Tensor],
                 *xs: torch.Tensor) -> torch.Tensor:
        """``fn(backbone, *xs)`` with example ``i`` using its own weights ``pe[·][i]`` (vmap)."""
        if not pe:
            return fn(self.module, *xs)
        slots = TensorSlots(self.module)

        def one(p: dict[str, torch.Tensor], *xi: torch.Tensor) -> torch.Tensor:
            with swapped(slots, p):
                return fn(self.module, *(t.unsqueeze(0) for t in xi)).squeeze(0)

        return vmap(one)(pe, *xs)

    def _draw(self, names: tuple[str, ...], m: int, g: torch.Generator | None) -> torch.Tensor:
        return ops_mod.randint(len(names), (m,), g) if names else torch.full((m,), -1, dtype=torch.long)

    def _edsr(self, x: torch.Tensor, pe: dict[str, torch.Tensor], g: torch.Generator | None) -> torch.Tensor:
        model: EDSR = self.module  # type: ignore[assignment]
        m, a = x.shape[0], paper.DEEPAUGMENT_EDSR_ACTIVATION_BLOCK
        h = self._segment(lambda mod, t: mod.head(t), pe, x - model.rgb_mean)
        h = ops_mod.apply_activation_ops(h, self._draw(self.head_ops, m, g), self.head_ops, ops_mod.EDSR_HEAD_OPS, g)

        def first(mod: EDSR, r: torch.Tensor) -> torch.Tensor:
            for block in mod.body[:a]:
                r = block(r)
            return r

        r = self._segment(first, pe, h)
        choice = self._draw(self.block_ops, m, g)
        r = ops_mod.apply_activation_ops(r, choice, self.block_ops, ops_mod.EDSR_BLOCK_OPS, g)
        rest = len(model.body) - a
        keep = torch.ones(m, max(rest, 1), dtype=torch.bool)
        if "skip_blocks" in self.block_ops and rest:
            sel = (choice == self.block_ops.index("skip_blocks")).nonzero().squeeze(1)
            if sel.numel():
                count = ops_mod.randint(min(paper.DEEPAUGMENT_MAX_SKIPPED_BLOCKS, rest), (sel.numel(), 1), g) + 1
                ranks = torch.rand(sel.numel(), rest, generator=g, device=ops_mod._gdev(g)).argsort(1).argsort(1)
                keep[sel.cpu()] = (ranks >= count).cpu()
        keep = keep.to(x.device)

        def second(mod: EDSR, r: torch.Tensor, h: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
            for j, block in enumerate(mod.body[a:]):
                r = torch.where(keep[:, j].view(-1, 1, 1, 1), block(r), r)  # kept blocks chain
            return mod.upscale(mod.body_tail(r) + h)

        high = self._segment(second, pe, r, h, keep)  # m×3×(scale·H)×(scale·W)
        high = torch.nan_to_num(high, nan=0.0, posinf=1.0, neginf=0.0).clamp(0, 1)
        return model.downsample(high, size=tuple(x.shape[-2:]))

    def _cae(self, x: torch.Tensor, pe: dict[str, torch.Tensor], g: torch.Generator | None) -> torch.Tensor:
        m = x.shape[0]
        z = self._segment(lambda mod, t: mod.encode(t), pe, x)
        # stochastic, as DeepAugment's CAE always binarises: +1 with probability (1 + z)/2, from ``g``
        code = torch.where(ops_mod.rand(tuple(z.shape), g, z) < (1 + z) / 2, 1.0, -1.0).to(z.dtype)
        code = ops_mod.apply_activation_ops(code, self._draw(self.latent_ops, m, g), self.latent_ops,
                                            ops_mod.CAE_LATENT_OPS, g)
        return self._segment(lambda mod, c: mod.decode(c), pe, code)

    # ---- call ------------------------------------------------------------------------------------
    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Distort ``x`` (``N×3×H×W``, [0, 1] float or uint8); one independent draw per example."""
        x = in_unit_range(x, channels=3, multiple_of=1 if self.kind == "edsr" else 4, name="images",
                          min_size=1 if self.kind == "edsr" else CAE_MIN_SIZE, owner=f"DeepAugment's {self.kind.upper()}",
                          min_reason="for the CAE (its decoder's first conv is unpadded); resize or pad them")
        g = generator if generator is not None else self.generator
        if g is not None and not isinstance(g, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(g).__name__}")
        if x.shape[0] == 0:
            return x.clone()
        p = next(self.module.parameters())
        if p.device != x.device:
            if not self._owned:
                raise ValueError(f"images are on {x.device} but the DeepAugment backbone "
                                 f"({type(self.module).__name__}) is on {p.device}; move it with "
                                 f".to({str(x.device)!r}) before calling")
            self.module.to(x.device)
        xf = x.float() / 255 if x.dtype == torch.uint8 else x.to(torch.float32)
        n = x.shape[0]
        plan = self._plan(n, g)
        order = self._order(plan, n)
        pos = torch.empty_like(order)
        pos[order] = torch.arange(n)
        order = order.to(x.device)
        out = torch.empty_like(xf)
        modes = [(m, m.training) for m in self.module.modules()]
        try:
            self.module.eval()
            self._run(xf, out, plan, order, pos, g)
        finally:
            for m, mode in modes:
                m.training = mode
        if x.dtype == torch.uint8:
            return out.mul(255).round().to(torch.uint8)
        return out.to(x.dtype)

    @torch.no_grad()
    def _run(self, xf: torch.Tensor, out: torch.Tensor, plan: list, order: torch.Tensor, pos: torch.Tensor,
             g: torch.Generator | None) -> None:
        """Distort ``xf`` (float32, [0, 1]) chunk by chunk into ``out``, examples taken in ``order``."""
        for start in range(0, xf.shape[0], self.chunk_size):
            idx = order[start:start + self.chunk_size]
            pe = self._weight_distortions(plan, pos.to(ops_mod._gdev(g)), start, idx.numel(), g)
            chunk = xf[idx]
            y = self._edsr(chunk, pe, g) if self.kind == "edsr" else self._cae(chunk, pe, g)
            out[idx] = torch.nan_to_num(y, nan=0.0, posinf=1.0, neginf=0.0).clamp(0, 1)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(backbone={self.kind!r}, ops={len(self.ops)}, num_ops={self.num_ops}, "
                f"chunk_size={self.chunk_size})")
