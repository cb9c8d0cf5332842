"""AugMix (Hendrycks et al., ICLR 2020) on batched tensors, one independent draw per example.

``torchvision.transforms.v2.AugMix`` draws one chain of operations per call, so a batch
shares it. Here every example draws its own: mixing weights w ~ Dirichlet(α·1_width),
skip weight m ~ Beta(α, α), per chain a depth ~ U{1..3} and per step an operation and
its level ~ U(0.1, severity). The result is ``(1 − m)·x + m·Σ_i w_i·chain_i(x)``, a
convex combination, so it stays in [0, 1]. Defaults are the original CIFAR settings
(width 3, depth 1–3, severity 3, α = 1; constants in :mod:`adaaug.paper`), used by the
AdA paper as its last augmentation (App. E.5).

Batching: at every (chain, step) the examples are grouped by the operation they drew
and each group is transformed at once. Per-example magnitudes are applied batched:
all geometric operations (rotate, shear, translate) of a step share one
``grid_sample`` with a per-example affine matrix (PIL's conventions: bilinear, black
fill, rotation about the centre, shear/translate about the top-left corner); solarize
compares against a per-example threshold; the enhance operations blend with the
degenerate image from torchvision with a per-example factor; autocontrast, equalize
and posterize use ``torchvision.transforms.v2.functional`` directly.

Differences from the PIL original: images stay float between operations (no uint8
rounding after each one, except inside equalize).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from .. import paper
from ..validation import check_positive, in_unit_range

#: Operations of the original AugMix (``augmentations`` in its code): none of them
#: overlaps the CIFAR-10-C / ImageNet-C corruptions.
OPS = ("autocontrast", "equalize", "posterize", "rotate", "solarize", "shear_x", "shear_y", "translate_x",
       "translate_y")
#: ``all_ops=True`` adds these, which overlap the test corruptions (contrast, brightness, ...).
EXTRA_OPS = ("color", "contrast", "brightness", "sharpness")
_GEOMETRIC = {"rotate", "shear_x", "shear_y", "translate_x", "translate_y"}
_ENHANCE = {"color": TF.adjust_saturation, "contrast": TF.adjust_contrast, "brightness": TF.adjust_brightness,
            "sharpness": TF.adjust_sharpness}


# ---- random variates with a torch.Generator -----------------------------------------------
def sample_gamma(alpha: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gamma(α, 1) variates of ``alpha``'s shape (Marsaglia–Tsang), drawn from ``generator``.

    ``torch.distributions`` cannot take a generator, so this rejection sampler makes
    Dirichlet/Beta draws reproducible. Runs in float64 on the generator's device
    (CPU when ``None``); returns float64 there. α < 1 uses Gamma(α+1)·U^{1/α}.
    """
    dev = generator.device if generator is not None else torch.device("cpu")
    alpha = alpha.to(device=dev, dtype=torch.float64)
    boost = alpha < 1
    a = torch.where(boost, alpha + 1, alpha).flatten()
    d = a - 1 / 3
    c = 1 / torch.sqrt(9 * d)
    out = torch.empty_like(a)
    todo = torch.arange(a.numel(), device=dev)
    while todo.numel():
        z = torch.randn(todo.numel(), generator=generator, device=dev, dtype=torch.float64)
        u = torch.rand(todo.numel(), generator=generator, device=dev, dtype=torch.float64)
        v = (1 + c[todo] * z) ** 3
        dd = d[todo]
        ok = v > 0
        log_v = torch.log(torch.where(ok, v, torch.ones_like(v)))
        accept = ok & (torch.log(u) < 0.5 * z * z + dd - dd * v + dd * log_v)
        out[todo[accept]] = (dd * v)[accept]
        todo = todo[~accept]
    out = out.view(alpha.shape)
    u = torch.rand(alpha.shape, generator=generator, device=dev, dtype=torch.float64)
    return torch.where(boost, out * u ** (1 / alpha), out)


def sample_dirichlet(alpha: float, shape: tuple[int, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """Dirichlet(α·1_k) rows, ``shape = (..., k)``; float64 on the generator's device."""
    dev = generator.device if generator is not None else torch.device("cpu")
    g = sample_gamma(torch.full(shape, float(alpha), dtype=torch.float64, device=dev), generator)
    return g / g.sum(-1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)


def sample_beta(alpha: float, beta: float, shape: tuple[int, ...],
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Beta(α, β) variates (float64, generator's device)."""
    dev = generator.device if generator is not None else torch.device("cpu")
    ga = sample_gamma(torch.full(shape, float(alpha), dtype=torch.float64, device=dev), generator)
    gb = sample_gamma(torch.full(shape, float(beta), dtype=torch.float64, device=dev), generator)
    return ga / (ga + gb).clamp_min(torch.finfo(torch.float64).tiny)


# ---- operations -----------------------------------------------------------------------------
def _affine_matrices(op: str, level: torch.Tensor, sign: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """PIL-style inverse affine maps ``m×2×3`` (output pixel → input pixel), pixel units."""
    m = level.shape[0]
    mat = torch.zeros(m, 2, 3, dtype=torch.float64, device=level.device)
    mat[:, 0, 0] = mat[:, 1, 1] = 1
    scale = paper.AUGMIX_LEVEL_SCALE
    if op == "rotate":
        degrees = torch.floor(level * paper.AUGMIX_ROTATE_MAX / scale) * sign
        a = -torch.deg2rad(degrees)
        cos, sin = torch.cos(a), torch.sin(a)
        cx, cy = width / 2, height / 2
        mat[:, 0, 0], mat[:, 0, 1], mat[:, 1, 0], mat[:, 1, 1] = cos, sin, -sin, cos
        mat[:, 0, 2] = cx - cos * cx - sin * cy
        mat[:, 1, 2] = cy + sin * cx - cos * cy
    elif op in ("shear_x", "shear_y"):
        s = level * paper.AUGMIX_SHEAR_MAX / scale * sign
        mat[:, 0 if op == "shear_x" else 1, 1 if op == "shear_x" else 0] = s
    else:  # translate
        size = width if op == "translate_x" else height
        shift = torch.floor(level * (size * paper.AUGMIX_TRANSLATE_MAX) / scale) * sign
        mat[:, 0 if op == "translate_x" else 1, 2] = shift
    return mat


def _warp(x: torch.Tensor, mat: torch.Tensor) -> torch.Tensor:
    """Bilinear resampling of ``x`` (m×C×H×W) through per-example pixel affine maps, zero fill."""
    m, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64, device=x.device) + 0.5,
                            torch.arange(w, dtype=torch.float64, device=x.device) + 0.5, indexing="ij")
    pts = torch.stack([xs, ys, torch.ones_like(xs)], -1).view(1, h * w, 3)
    src = pts @ mat.to(x.device).transpose(1, 2)  # m × HW × 2, input pixel coordinates
    grid = torch.stack([src[..., 0] / w * 2 - 1, src[..., 1] / h * 2 - 1], -1).view(m, h, w, 2)
    return F.grid_sample(x, grid.to(x.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)


def _apply(op: str, x: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """One non-geometric operation on a group ``x`` (m×C×H×W float [0, 1]) with per-example levels."""
    scale = paper.AUGMIX_LEVEL_SCALE
    if op == "autocontrast":
        return TF.autocontrast(x)
    if op == "equalize":
        return TF.equalize(x)
    if op == "posterize":
        bits = 4 - torch.floor(level * paper.AUGMIX_POSTERIZE_MAX / scale).long()
        out = x.clone()
        for b in bits.unique().tolist():
            sel = (bits == b).to(x.device)
            out[sel] = TF.posterize(x[sel], int(b))
        return out
    if op == "solarize":
        threshold = paper.AUGMIX_SOLARIZE_MAX - torch.floor(level * paper.AUGMIX_SOLARIZE_MAX / scale)
        t = (threshold / 255).to(x.device, x.dtype).view(-1, 1, 1, 1)
        return torch.where(x >= t, 1 - x, x)
    if op in _ENHANCE:
        factor = (level * paper.AUGMIX_ENHANCE_MAX / scale + paper.AUGMIX_ENHANCE_MIN).to(x.device, x.dtype)
        degenerate = _ENHANCE[op](x, 0.0)
        f = factor.view(-1, 1, 1, 1)
        return (f * x + (1 - f) * degenerate).clamp(0, 1)
    raise ValueError(f"unknown AugMix operation {op!r}")


class AugMix:
    """AugMix with an independent draw per example, on batched tensors.

    Args:
        width: chains per example (3).
        depth: operations per chain: an int, or ``(lo, hi)`` for a uniform draw per
            chain and example (``(1, 3)``, the original's ``depth=-1``).
        severity: level upper bound; levels ~ U(0.1, severity) (3).
        alpha: Dirichlet(α) chain weights and Beta(α, α) skip weight (1).
        all_ops: also use color, contrast, brightness and sharpness, which overlap the
            test corruptions (``False``, as in the AugMix paper).
        generator: default ``torch.Generator`` (a call's ``generator=`` overrides it;
            ``None``: torch's global RNG). Draws are made on its device.

    ``augmix(x)``: ``x`` float ``N×C×H×W`` in [0, 1] (C = 1 or 3; uint8 also accepted
    and returned as uint8) → the same shape, dtype and device, values in [0, 1].
    """

    def __init__(self, width: int = paper.AUGMIX_WIDTH, depth: int | tuple[int, int] = paper.AUGMIX_DEPTH,
                 severity: float = paper.AUGMIX_SEVERITY, alpha: float = paper.AUGMIX_ALPHA,
                 all_ops: bool = False, generator: torch.Generator | None = None) -> None:
        check_positive(width, "width", integer=True)
        check_positive(alpha, "alpha")
        check_positive(severity, "severity")
        if severity > paper.AUGMIX_LEVEL_SCALE or severity < paper.AUGMIX_LEVEL_MIN:
            raise ValueError(f"severity must lie in [{paper.AUGMIX_LEVEL_MIN}, {paper.AUGMIX_LEVEL_SCALE}], "
                             f"got {severity}")
        if isinstance(depth, int) and not isinstance(depth, bool):
            check_positive(depth, "depth", integer=True)
            depth = (depth, depth)
        if (not isinstance(depth, (tuple, list)) or len(depth) != 2
                or not all(isinstance(d, int) and not isinstance(d, bool) for d in depth)
                or not 1 <= depth[0] <= depth[1]):
            raise ValueError(f"depth must be a positive int or (lo, hi) with 1 ≤ lo ≤ hi, got {depth!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        self.width, self.depth, self.severity, self.alpha = int(width), tuple(depth), float(severity), float(alpha)
        self.ops = OPS + EXTRA_OPS if all_ops else OPS
        self.generator = generator

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment ``x`` (``N×C×H×W``, [0, 1]); one independent AugMix draw per example."""
        x = in_unit_range(x, name="x")
        if x.shape[1] not in (1, 3):
            raise ValueError(f"AugMix takes 1- or 3-channel images, got {x.shape[1]} channels")
        g = generator if generator is not None else self.generator
        if g is not None and not isinstance(g, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(g).__name__}")
        n, _, h, w = x.shape
        if n == 0:
            return x.clone()
        dev = g.device if g is not None else torch.device("cpu")
        xf = x.float() / 255 if x.dtype == torch.uint8 else x.to(torch.float32)
        weights = sample_dirichlet(self.alpha, (n, self.width), g).to(x.device, torch.float32)
        skip = sample_beta(self.alpha, self.alpha, (n,), g).to(x.device, torch.float32)
        mix = torch.zeros_like(xf)
        for i in range(self.width):
            depth = torch.randint(self.depth[0], self.depth[1] + 1, (n,), generator=g, device=dev)
            chain = xf.clone()
            for step in range(self.depth[1]):
                op = torch.randint(len(self.ops), (n,), generator=g, device=dev)
                level = paper.AUGMIX_LEVEL_MIN + (self.severity - paper.AUGMIX_LEVEL_MIN) * torch.rand(
                    n, generator=g, device=dev, dtype=torch.float64)
                sign = torch.where(torch.rand(n, generator=g, device=dev) < 0.5, -1.0, 1.0).to(torch.float64)
                op = torch.where(depth > step, op, -1)  # -1: this chain is already finished
                chain = self._step(chain, op, level, sign)
            mix += weights[:, i].view(n, 1, 1, 1) * chain
        out = ((1 - skip).view(n, 1, 1, 1) * xf + skip.view(n, 1, 1, 1) * mix).clamp(0, 1)
        if x.dtype == torch.uint8:
            return out.mul(255).round().to(torch.uint8)
        return out.to(x.dtype)

    def _step(self, x: torch.Tensor, op: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
        """One chain step: examples grouped by the operation they drew (``op == -1``: identity)."""
        n, _, h, w = x.shape
        out = x.clone()
        geo_mat = torch.zeros(n, 2, 3, dtype=torch.float64, device=op.device)
        geo = torch.zeros(n, dtype=torch.bool, device=op.device)
        for k, name in enumerate(self.ops):
            sel = op == k
            if not bool(sel.any()):
                continue
            if name in _GEOMETRIC:
                geo_mat[sel] = _affine_matrices(name, level[sel], sign[sel], h, w)
                geo |= sel
            else:
                sel_x = sel.to(x.device)
                out[sel_x] = _apply(name, x[sel_x], level[sel], sign[sel])
        if bool(geo.any()):
            sel_x = geo.to(x.device)
            out[sel_x] = _warp(x[sel_x], geo_mat[geo])
        return out.clamp(0, 1)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(width={self.width}, depth={self.depth}, severity={self.severity}, "
                f"alpha={self.alpha}, ops={len(self.ops)})")
