"""A counter-based random number generator written in tensor ops (splitmix64 + Box–Muller).

Random numbers here are a pure function of ``(seed, counter)``: the ``k``-th 64-bit word of
stream ``s`` is ``mix64(mix64(s) + (k + 1)·γ)`` (γ = 0x9E3779B97F4A7C15, the golden-ratio
increment of splitmix64; Steele, Lea & Flood 2014), where ``mix64`` is splitmix64's
finaliser. Nothing is sequential, so every word of every stream is computed at once, on
any device, in one batched elementwise pass, and a stream's numbers never depend on which
other streams are computed with it.

All integer arithmetic is on int64 tensors: multiplication and addition wrap modulo 2⁶⁴ (two's
complement) on CPU and CUDA alike, and logical right shifts are arithmetic shifts followed by a
mask, so the words are bit-identical on every device and equal to the same hash in unbounded
Python integers reduced mod 2⁶⁴ (the tests check this). Floats are then derived from the words:

- ``uniforms``: the word's top 24 bits / 2²⁴, in [0, 1) (exact in float32).
- ``normals``: Box–Muller on one word per pair of normals: u₁ = (bits 40–63 + 1) / 2²⁴ ∈ (0, 1],
  u₂ = bits 0–23 / 2²⁴; positions 2i and 2i + 1 of a stream are √(−2 ln u₁)·(cos 2πu₂, sin 2πu₂)
  of its word i. Tails are cut at √(2·24·ln 2) ≈ 5.77σ, which is irrelevant for random directions
  (their use in adaaug).
"""
from __future__ import annotations

import math

import torch

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB


def _signed(c: int) -> int:
    """The int64 with the same 64 bits as the unsigned constant ``c``."""
    return c - (1 << 64) if c >= 1 << 63 else c


_GOLDEN_S, _MIX1_S, _MIX2_S = _signed(GOLDEN), _signed(MIX1), _signed(MIX2)


def _shr(z: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 ``z`` by ``k`` bits (out of place)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def mix64_(z: torch.Tensor, tmp: torch.Tensor | None = None) -> torch.Tensor:
    """splitmix64's finaliser, in place on an int64 tensor (wrapping arithmetic).

    ``tmp``: optional int64 scratch tensor of ``z``'s shape (saves allocations).
    """
    tmp = torch.empty_like(z) if tmp is None else tmp
    for shift, mult in ((30, _MIX1_S), (27, _MIX2_S), (31, None)):
        torch.bitwise_right_shift(z, shift, out=tmp)
        tmp &= (1 << (64 - shift)) - 1
        z ^= tmp
        if mult is not None:
            z *= mult
    return z


def _check_seeds(seeds: torch.Tensor) -> None:
    if not isinstance(seeds, torch.Tensor) or seeds.dtype != torch.int64 or seeds.dim() != 1:
        raise TypeError(f"seeds must be a 1-D int64 tensor, got {getattr(seeds, 'dtype', type(seeds).__name__)} "
                        f"of shape {tuple(getattr(seeds, 'shape', ()))}")


def _fill_words(z: torch.Tensor, tmp: torch.Tensor, key: torch.Tensor, start: int) -> torch.Tensor:
    """Words ``start … start+p−1`` of every stream into the int64 buffer ``z`` (``N × p``)."""
    k = torch.arange(start + 1, start + z.shape[1] + 1, device=z.device, dtype=torch.int64)
    k *= _GOLDEN_S                        # wraps mod 2⁶⁴
    torch.add(k.unsqueeze(0), key, out=z)
    return mix64_(z, tmp)


def _keys(seeds: torch.Tensor) -> torch.Tensor:
    return mix64_(seeds.clone()).unsqueeze(1)


def _piece(n: int, total: int, device: torch.device) -> int:
    """Columns per piece: on the CPU cache-sized pieces of about 2¹⁵ elements (below torch's
    intra-op parallel grain, so the many small ops open no thread-pool regions); elsewhere
    everything at once."""
    return max(1, (1 << 15) // max(n, 1)) if device.type == "cpu" else max(total, 1)


def words(seeds: torch.Tensor, start: int, count: int) -> torch.Tensor:
    """64-bit words ``start … start+count−1`` of every stream: int64 ``len(seeds) × count``.

    ``seeds``: int64 tensor ``N`` (any values; adaaug uses 63-bit seeds); the words are
    computed on ``seeds.device``.
    """
    _check_seeds(seeds)
    z = torch.empty(len(seeds), count, dtype=torch.int64, device=seeds.device)
    return _fill_words(z, torch.empty_like(z), _keys(seeds), start)


def uniforms(seeds: torch.Tensor, start: int, count: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """U[0, 1) numbers from words ``start … start+count−1``: ``N × count`` in ``dtype`` (multiples of 2⁻²⁴)."""
    return _shr(words(seeds, start, count), 40).to(dtype).mul_(2.0 ** -24)


def normals_into(seeds: torch.Tensor, outs: list[torch.Tensor], start: int = 0) -> list[torch.Tensor]:
    """Fill ``outs`` with standard normal numbers, in place; returns ``outs``.

    ``outs``: float32/float64 tensors of shape ``N × m_i`` (N = ``len(seeds)``, rows contiguous),
    all on ``seeds.device``. Read side by side they hold positions 0 … T−1 of every stream
    (T = Σ m_i): position j is the cosine (j even) or the sine (j odd) branch of Box–Muller on
    word ``start + j // 2``, so T positions use the words ``start … start + ⌈T/2⌉ − 1``. Each
    float is computed in its output's dtype. On the CPU the work runs in cache-sized pieces;
    the numbers do not depend on the piece size, nor on how the positions are split into ``outs``.
    """
    _check_seeds(seeds)
    n, device = len(seeds), seeds.device
    if not outs:
        return outs
    dtype = outs[0].dtype
    if any(o.dtype != dtype or o.device != device or o.dim() != 2 or o.shape[0] != n for o in outs):
        raise ValueError(f"outs must be N × m tensors of one float dtype on {device}, N = {n}")
    sizes = [o.shape[1] for o in outs]
    bounds = [0]
    for m in sizes:
        bounds.append(bounds[-1] + m)
    total = bounds[-1]
    pairs = (total + 1) // 2
    step = _piece(n, pairs, device)
    key = _keys(seeds)
    width = min(step, pairs)
    z = torch.empty(n, width, dtype=torch.int64, device=device)
    tmp = torch.empty_like(z)
    u1, theta, cos = (torch.empty(n, width, dtype=dtype, device=device) for _ in range(3))
    buf = torch.empty(n, width, 2, dtype=dtype, device=device)  # interleaved (cos, sin) per word
    block = 0
    for w0 in range(0, pairs, step):
        p = min(step, pairs - w0)
        zp, tp, up, hp, bp = z[:, :p], tmp[:, :p], u1[:, :p], theta[:, :p], buf[:, :p]
        _fill_words(zp, tp, key, start + w0)
        torch.bitwise_right_shift(zp, 40, out=tp)
        tp &= 0xFFFFFF
        up.copy_(tp).add_(1.0).mul_(2.0 ** -24)          # u₁ ∈ (0, 1], exact
        zp &= 0xFFFFFF
        hp.copy_(zp).mul_(2 * math.pi * 2.0 ** -24)        # 2πu₂ ∈ [0, 2π)
        up.log_().mul_(-2.0).sqrt_()
        cp = torch.cos(hp, out=cos[:, :p]).mul_(up)        # contiguous outputs: the vectorised kernels
        hp.sin_().mul_(up)
        bp[..., 0].copy_(cp)
        bp[..., 1].copy_(hp)
        flat = bp.view(n, 2 * p)
        lo, hi = 2 * w0, min(2 * (w0 + p), total)         # stream positions held by this piece
        while block < len(outs) and bounds[block] < hi:
            a, b = max(bounds[block], lo), min(bounds[block + 1], hi)
            outs[block][:, a - bounds[block]:b - bounds[block]].copy_(flat[:, a - lo:b - lo])
            if bounds[block + 1] > hi:
                break  # the block continues in the next piece
            block += 1
    return outs


def normals(seeds: torch.Tensor, start: int, count: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``count`` standard normal numbers per stream: ``N × count`` in ``dtype`` (:func:`normals_into`'s layout:
    position j from word ``start + j // 2``, cosine branch for even j, sine for odd j)."""
    _check_seeds(seeds)
    return normals_into(seeds, [torch.empty(len(seeds), count, dtype=dtype, device=seeds.device)], start)[0]


def words_reference(seed: int, k: int) -> int:
    """Word ``k`` of stream ``seed`` in plain Python integers (the tests' independent reference)."""
    def mix(z: int) -> int:
        z &= MASK64
        z = ((z ^ (z >> 30)) * MIX1) & MASK64
        z = ((z ^ (z >> 27)) * MIX2) & MASK64
        return z ^ (z >> 31)
    return mix(mix(seed) + (k + 1) * GOLDEN)
