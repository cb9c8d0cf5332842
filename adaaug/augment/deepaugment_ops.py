"""DeepAugment's distortion operations (Hendrycks et al., ICCV 2021), batched over examples. Three kinds:

* **Weight primitives** (:data:`PRIMITIVES`): ``prim(w, b, g) -> (w, b)`` on a stack of
  one conv layer's kernels ``w: m×O×I×k×k`` and biases ``b: m×O`` (one row per example,
  every row with its own random draw).
* **Weight operations** (:data:`WEIGHT_OPS`), what an example draws: each expands, for
  ``m`` examples, into ``[(primitive, layer index per example), ...]``; e.g.
  ``flip_negate_next`` flips the first conv of a random residual block and negates
  the second one.
* **Activation operations** (:data:`EDSR_HEAD_OPS`, :data:`EDSR_BLOCK_OPS`,
  :data:`CAE_LATENT_OPS`): ``op(h, g) -> h`` on feature maps ``m×C×H×W``, with
  per-example masks, permutations or filter banks.

Random numbers come from a ``torch.Generator`` (``None``: torch's global RNG), drawn on
the generator's device and moved to the data's device, so CPU draws are reproducible
on any device. All constants live in :mod:`adaaug.paper`.

Departures from the authors' reference scripts (where those have defects): the
multiplicative noise is ``W·(1 + s·ε)`` with ε ~ U(−1, 1), symmetric around 1; skipped
residual blocks are skipped in a chain (handled by the caller); biases are only ever
taken from biases.

Readings of the description where it leaves details open (adaaug's choices): EDSR has
20 drawable operations (the reference's 17, with the layer/block variants listed
separately); "keep the largest tap" keeps the largest in magnitude; subsets of filters
are drawn without replacement per example; the uniform filter bank is U(0, 1)·U(0, 1)/6;
the one-hot bank shifts each channel by its own random offset and sign; the CAE latent
scale is ``3 + s·U(0, 2)`` with s a random sign; "flip along spatial axes" flips both;
skipped EDSR blocks are drawn among those after the fifth.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .. import paper
from .augmix import sample_dirichlet

Gen = torch.Generator | None
Primitive = Callable[[torch.Tensor, torch.Tensor | None, Gen], tuple[torch.Tensor, torch.Tensor | None]]


# ---- random helpers ---------------------------------------------------------------------------
def _gdev(g: Gen) -> torch.device:
    return g.device if g is not None else torch.device("cpu")


def rand(shape: tuple[int, ...], g: Gen, like: torch.Tensor) -> torch.Tensor:
    """U(0, 1) of ``shape`` drawn from ``g``, on ``like``'s device and float dtype."""
    return torch.rand(shape, generator=g, device=_gdev(g)).to(like.device, like.dtype)


def randint(high: int, shape: tuple[int, ...], g: Gen, device: torch.device | None = None) -> torch.Tensor:
    """Integers in [0, high) drawn from ``g`` (on ``device``, default the generator's)."""
    out = torch.randint(high, shape, generator=g, device=_gdev(g))
    return out if device is None else out.to(device)


def subset_mask(m: int, total: int, k: int, g: Gen, device: torch.device) -> torch.Tensor:
    """``m×total`` bool, exactly ``min(k, total)`` random True entries per row."""
    order = torch.rand(m, total, generator=g, device=_gdev(g)).argsort(dim=1)[:, :min(k, total)]
    mask = torch.zeros(m, total, dtype=torch.bool, device=_gdev(g))
    mask.scatter_(1, order, True)
    return mask.to(device)


def _rows(mask: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Broadcast an ``m×O`` filter mask over ``m×O×I×k×k`` weights."""
    return mask.view(*mask.shape, *([1] * (w.dim() - 2)))


# ---- weight primitives -----------------------------------------------------------------------
def _negate_subset(k_of: Callable[[int], int]) -> Primitive:
    def prim(w, b, g):
        mask = _rows(subset_mask(w.shape[0], w.shape[1], k_of(w.shape[1]), g, w.device), w)
        sign = 1 - 2 * mask.to(w.dtype)
        return w * sign, (b * sign.view(b.shape) if b is not None else None)
    return prim


def _zero_subset(w, b, g):
    mask = _rows(subset_mask(w.shape[0], w.shape[1], paper.DEEPAUGMENT_ZERO_FILTERS, g, w.device), w)
    return w.masked_fill(mask, 0), b


def _neg_gelu_subset(w, b, g):
    k = max(1, round(w.shape[1] * paper.DEEPAUGMENT_GELU_FRACTION))
    mask = _rows(subset_mask(w.shape[0], w.shape[1], k, g, w.device), w)
    return torch.where(mask, -F.gelu(w), w), b


_LAPLACIAN4 = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))
_LAPLACIAN8 = ((-1.0, -1.0, -1.0), (-1.0, 8.0, -1.0), (-1.0, -1.0, -1.0))


def _pattern(p: tuple) -> Primitive:
    def prim(w, b, g):
        if w.shape[-2:] != (3, 3):
            raise ValueError(f"the Laplacian pattern needs 3×3 kernels, got {tuple(w.shape[-2:])}")
        return w * torch.tensor(p, dtype=w.dtype, device=w.device), b
    return prim


def _mult_noise(w, b, g):
    s = paper.DEEPAUGMENT_MULT_NOISE_MAX * rand((w.shape[0],), g, w)
    eps = 2 * rand(tuple(w.shape), g, w) - 1
    return w * (1 + s.view(-1, *([1] * (w.dim() - 1))) * eps), b


def _add_noise(w, b, g):
    return w + paper.DEEPAUGMENT_ADD_NOISE * (2 * rand(tuple(w.shape), g, w) - 1), b


def _rot90(w, b, g):
    """Per example k ∈ {1, 2, 3} quarter turns, over the spatial axes or (out, in) when square."""
    m = w.shape[0]
    k = randint(3, (m,), g) + 1
    channel = torch.rand(m, generator=g, device=_gdev(g)) < 0.5
    if w.shape[1] != w.shape[2]:
        channel = torch.zeros_like(channel)
    out = w.clone()
    for kk in (1, 2, 3):
        for ch in (False, True):
            sel = ((k == kk) & (channel == ch)).to(w.device)
            if bool(sel.any()):
                out[sel] = torch.rot90(w[sel], kk, dims=(1, 2) if ch else (3, 4))
    return out, b


def _mask(kind: str) -> Primitive:
    def prim(w, b, g):
        u = rand(tuple(w.shape), g, w)
        q = paper.DEEPAUGMENT_MASK_PROBABILITY
        factor = torch.where(u < q, -1.0, 1.0) if kind == "rademacher" else (u < q).to(w.dtype)
        return w * factor.to(w.dtype), b
    return prim


def _filter_bank(w, b, g):
    """Convolve each example's kernel stack (``O`` images with ``I`` channels) with a random bank.

    Per example one of: one-hot ±1 taps (each channel shifted by a random offset and
    sign), uniform U(0, 1) noise × U(0, 1)/6, or Dirichlet(0.1) weights over the
    ``I×3×3`` taps of each output channel.
    """
    m, o, i = w.shape[:3]
    kind = randint(3, (m,), g)
    bank = torch.zeros(m, i, i, 9, dtype=torch.float64, device=_gdev(g))
    pos = randint(9, (m, i), g)
    sign = torch.where(torch.rand(m, i, generator=g, device=_gdev(g)) < 0.5, -1.0, 1.0).to(torch.float64)
    onehot = torch.zeros_like(bank)
    eye = torch.arange(i, device=_gdev(g))
    onehot[:, eye, eye, :] = F.one_hot(pos, 9).to(torch.float64) * sign.unsqueeze(-1)
    bank = torch.where((kind == 0).view(m, 1, 1, 1), onehot, bank)
    noise = torch.rand(m, i, i, 9, generator=g, device=_gdev(g), dtype=torch.float64)
    scale = torch.rand(m, 1, 1, 1, generator=g, device=_gdev(g), dtype=torch.float64)
    bank = torch.where((kind == 1).view(m, 1, 1, 1), noise * scale / paper.DEEPAUGMENT_BANK_NOISE_DIVISOR, bank)
    n_dir = int((kind == 2).sum())
    if n_dir:
        d = sample_dirichlet(paper.DEEPAUGMENT_BANK_DIRICHLET, (n_dir, i, i * 9), g).view(n_dir, i, i, 9)
        bank[kind == 2] = d
    bank = bank.view(m * i, i, 3, 3).to(w.device, w.dtype)
    kh, kw = w.shape[-2:]
    x = w.permute(1, 0, 2, 3, 4).reshape(o, m * i, kh, kw)
    y = F.conv2d(x, bank, padding=1, groups=m)
    return y.view(o, m, i, kh, kw).permute(1, 0, 2, 3, 4).contiguous(), b


def _keep_max(w, b, g):
    flat = w.flatten(-2)
    keep = F.one_hot(flat.abs().argmax(-1), flat.shape[-1]).to(w.dtype)
    return (flat * keep).view_as(w), b


PRIMITIVES: dict[str, Primitive] = {
    "reverse": lambda w, b, g: (w.flip(1), b.flip(1) if b is not None else None),
    "negate": lambda w, b, g: (-w, -b if b is not None else None),
    "negate_filters": _negate_subset(lambda o: paper.DEEPAUGMENT_NEGATE_FILTERS),
    "negate_fraction": _negate_subset(lambda o: max(1, round(o * paper.DEEPAUGMENT_NEGATE_FRACTION))),
    "negate_half": _negate_subset(lambda o: o // 2),
    "zero": lambda w, b, g: (torch.zeros_like(w), b),
    "zero_filters": _zero_subset,
    "neg_gelu": lambda w, b, g: (-F.gelu(w), b),
    "neg_gelu_filters": _neg_gelu_subset,
    "laplacian4": _pattern(_LAPLACIAN4),
    "laplacian8": _pattern(_LAPLACIAN8),
    "mult_noise": _mult_noise,
    "add_noise": _add_noise,
    "flip": lambda w, b, g: (w.flip(-1), b),
    "rot90": _rot90,
    "rademacher": _mask("rademacher"),
    "bernoulli": _mask("bernoulli"),
    "filter_bank": _filter_bank,
    "keep_max": _keep_max,
}


# ---- weight operations: what an example draws --------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Where weight distortions may land in a backbone.

    Attributes:
        layers: candidate conv layer names (module paths; their ``.weight``/``.bias``).
        layer_probs: sampling probability of each layer (sums to 1).
        blocks: residual blocks as ``(first conv, second conv)`` indices into ``layers``.
        block_probs: sampling probability of each block.
    """

    layers: tuple[str, ...]
    layer_probs: torch.Tensor
    blocks: tuple[tuple[int, int], ...]
    block_probs: torch.Tensor


Expansion = list[tuple[str, torch.Tensor]]


def _pick(probs: torch.Tensor, m: int, k: int, g: Gen) -> torch.Tensor:
    """``m×k`` indices drawn from ``probs`` without replacement (per row)."""
    return torch.multinomial(probs.to(_gdev(g)).expand(m, -1), k, replacement=False, generator=g)


def _layer_op(prim: str) -> Callable[[Layout, int, Gen], Expansion]:
    return lambda lay, m, g: [(prim, _pick(lay.layer_probs, m, 1, g)[:, 0])]


def _block_op(first: str, second: str) -> Callable[[Layout, int, Gen], Expansion]:
    def expand(lay, m, g):
        blocks = torch.tensor(lay.blocks, device=_gdev(g))[_pick(lay.block_probs, m, 1, g)[:, 0]]
        return [(first, blocks[:, 0]), (second, blocks[:, 1])]
    return expand


def _negate_half_blocks(lay: Layout, m: int, g: Gen) -> Expansion:
    k = min(paper.DEEPAUGMENT_NEGATE_HALF_BLOCKS, len(lay.blocks))
    blocks = torch.tensor(lay.blocks, device=_gdev(g))[_pick(lay.block_probs, m, k, g)]  # m×k×2
    which = randint(2, (m, k, 1), g)
    layers = blocks.gather(2, which).squeeze(2)
    return [("negate_half", layers[:, j]) for j in range(k)]


def _rot90_pairs(lay: Layout, m: int, g: Gen) -> Expansion:
    in_blocks = sorted({i for pair in lay.blocks for i in pair})
    probs = lay.layer_probs[in_blocks].clamp_min(1e-12)
    k = min(paper.DEEPAUGMENT_ROT90_PAIRS, len(in_blocks))
    layers = torch.tensor(in_blocks, device=_gdev(g))[_pick(probs / probs.sum(), m, k, g)]
    return [("rot90", layers[:, j]) for j in range(k)]


WEIGHT_OPS: dict[str, Callable[[Layout, int, Gen], Expansion]] = {
    "reverse": _layer_op("reverse"),
    "reverse_block": _block_op("reverse", "reverse"),
    "negate": _layer_op("negate"),
    "negate_filters": _layer_op("negate_filters"),
    "negate_fraction": _layer_op("negate_fraction"),
    "negate_half_blocks": _negate_half_blocks,
    "zero": _layer_op("zero"),
    "zero_filters": _layer_op("zero_filters"),
    "neg_gelu": _layer_op("neg_gelu"),
    "neg_gelu_filters": _layer_op("neg_gelu_filters"),
    "laplacian4": _layer_op("laplacian4"),
    "laplacian8": _layer_op("laplacian8"),
    "mult_noise": _layer_op("mult_noise"),
    "add_noise": _layer_op("add_noise"),
    "flip_negate_next": _block_op("flip", "negate"),
    "rot90_pairs": _rot90_pairs,
    "rademacher": _layer_op("rademacher"),
    "bernoulli": _layer_op("bernoulli"),
    "filter_bank": _layer_op("filter_bank"),
    "keep_max": _layer_op("keep_max"),
}
#: EDSR draws DEEPAUGMENT_EDSR_NUM_OPS of these per example (with repetition).
EDSR_WEIGHT_OPS = tuple(WEIGHT_OPS)
#: CAE draws DEEPAUGMENT_CAE_NUM_OPS of these (nine, as in the reference's CAE list).
CAE_WEIGHT_OPS = ("negate_filters", "zero_filters", "neg_gelu_filters", "mult_noise", "rademacher", "bernoulli",
                  "filter_bank", "keep_max", "rot90_pairs")


# ---- activation operations ----------------------------------------------------------------------
def _swap_channels(h, g):
    m, c = h.shape[:2]
    k = min(paper.DEEPAUGMENT_SWAP_PAIRS, c // 2)
    pick = torch.rand(m, c, generator=g, device=_gdev(g)).argsort(1)[:, :2 * k]
    perm = torch.arange(c, device=_gdev(g)).repeat(m, 1)
    perm.scatter_(1, pick[:, :k], pick[:, k:])
    perm.scatter_(1, pick[:, k:], pick[:, :k])
    return h.gather(1, perm.to(h.device).view(m, c, 1, 1).expand_as(h))


def _keep_mask(h, g):
    return h * (rand(tuple(h.shape), g, h) < paper.DEEPAUGMENT_KEEP_PROBABILITY).to(h.dtype)


def _sign_mask(h, g):
    return h * torch.where(rand(tuple(h.shape), g, h) < paper.DEEPAUGMENT_SIGN_FLIP_PROBABILITY, -1.0, 1.0).to(h.dtype)


def _identity(h, g):
    return h


EDSR_HEAD_OPS: dict[str, Callable[[torch.Tensor, Gen], torch.Tensor]] = {
    "swap_channels": _swap_channels, "keep_mask": _keep_mask, "sign_mask": _sign_mask, "none": _identity}
#: ``skip_blocks`` is carried out by the caller (it changes which blocks run, not ``h``).
EDSR_BLOCK_OPS: dict[str, Callable[[torch.Tensor, Gen], torch.Tensor]] = {
    "negate": lambda h, g: -h, "relu": lambda h, g: F.relu(h), "gelu": lambda h, g: F.gelu(h),
    "flip_ch": lambda h, g: h.flip(1, 2), "flip_cw": lambda h, g: h.flip(1, 3), "skip_blocks": _identity,
    "none": _identity}


def per_example_conv(h: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """``h: m×C×H×W`` convolved with its own 3×3 bank ``m×C×C×3×3`` (zero padding 1)."""
    m, c, hh, ww = h.shape
    return F.conv2d(h.reshape(1, m * c, hh, ww), bank.reshape(m * c, c, 3, 3), padding=1, groups=m).view_as(h)


def _identity_bank(m: int, c: int, like: torch.Tensor) -> torch.Tensor:
    bank = torch.zeros(m, c, c, 3, 3, dtype=like.dtype, device=like.device)
    bank[:, torch.arange(c), torch.arange(c), 1, 1] = 1
    return bank


def _latent_zero(h, g):
    keep = rand((h.shape[0], 1, *h.shape[2:]), g, h) >= paper.DEEPAUGMENT_LATENT_ZERO
    return h * keep.to(h.dtype)


def _latent_negate(h, g):
    flip = rand((h.shape[0], 1, *h.shape[2:]), g, h) < paper.DEEPAUGMENT_LATENT_NEGATE
    return torch.where(flip, -h, h)


def _latent_permute(h, g):
    m, c = h.shape[:2]
    k = min(paper.DEEPAUGMENT_LATENT_PERMUTE, c)
    perm = torch.arange(c, device=_gdev(g)).repeat(m, 1)
    perm[:, :k] = torch.rand(m, k, generator=g, device=_gdev(g)).argsort(1)
    return h.gather(1, perm.to(h.device).view(m, c, 1, 1).expand_as(h))


def _latent_flip(h, g):
    m, c = h.shape[:2]
    every = (torch.rand(m, 1, generator=g, device=_gdev(g)) < paper.DEEPAUGMENT_LATENT_FLIP_ALL).to(h.device)
    chosen = subset_mask(m, c, paper.DEEPAUGMENT_LATENT_FLIP, g, h.device) | every
    return torch.where(chosen.view(m, c, 1, 1), h.flip(-2, -1), h)


def _latent_near_identity(h, g):
    m, c = h.shape[:2]
    noise = paper.DEEPAUGMENT_LATENT_NEAR_IDENTITY * (2 * rand((m, c, c, 3, 3), g, h) - 1)
    return per_example_conv(h, _identity_bank(m, c, h) + noise)


def _latent_extra_taps(h, g):
    """Identity bank plus one extra tap per output channel from another channel, weight U(−1, 1)."""
    m, c = h.shape[:2]
    bank = _identity_bank(m, c, h)
    src = (torch.arange(c, device=_gdev(g)) + 1 + randint(max(c - 1, 1), (m, c), g)) % c
    pos = randint(9, (m, c), g)
    val = 2 * rand((m, c), g, h) - 1
    flat = bank.view(m, c, c * 9)
    flat.scatter_(2, (src * 9 + pos).to(h.device).unsqueeze(-1), val.unsqueeze(-1))
    return per_example_conv(h, bank)


def _latent_shift(h, g):
    m, c = h.shape[:2]
    bank = torch.zeros(m, c, c, 9, dtype=h.dtype, device=h.device)
    pos = randint(9, (m, c), g, h.device)
    bank[:, torch.arange(c), torch.arange(c)] = F.one_hot(pos, 9).to(h.dtype)
    return per_example_conv(h, bank.view(m, c, c, 3, 3))


def _latent_scale(h, g):
    m = h.shape[0]
    base, spread = paper.DEEPAUGMENT_LATENT_SCALE
    sign = torch.where(rand((m,), g, h) < 0.5, -1.0, 1.0).to(h.dtype)
    return h * (base + sign * spread * rand((m,), g, h)).view(m, 1, 1, 1)


CAE_LATENT_OPS: dict[str, Callable[[torch.Tensor, Gen], torch.Tensor]] = {
    "zero_positions": _latent_zero, "negate_positions": _latent_negate, "permute_channels": _latent_permute,
    "flip_channels": _latent_flip, "near_identity": _latent_near_identity, "extra_taps": _latent_extra_taps,
    "shift": _latent_shift, "scale": _latent_scale}


def apply_activation_ops(h: torch.Tensor, choice: torch.Tensor, names: tuple[str, ...],
                         table: dict[str, Callable[[torch.Tensor, Gen], torch.Tensor]], g: Gen) -> torch.Tensor:
    """Example ``i`` gets ``table[names[choice[i]]]``; examples grouped by operation, each group batched."""
    out = h.clone()
    for k, name in enumerate(names):
        sel = (choice == k).to(h.device)
        if bool(sel.any()):
            out[sel] = table[name](h[sel], g)
    return out
