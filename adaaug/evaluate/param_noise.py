"""Robustness to stochastic parameter perturbations (AdA paper App. D.1, Table 4).

Every parameter block ``w`` of the classifier (each weight or bias tensor; buffers such as
BatchNorm running statistics are left alone) gets noise ``ε_j ~ N(0, (η·‖w‖∞)²)`` per coordinate:
the standard deviation is η times the block's largest absolute value. ``samples`` (default 50)
perturbed copies are drawn; predictions are the argmax of their averaged softmax.

The same ``samples`` draws (seeded by ``seed`` and the draw index) serve every example and every
dataset, so results do not depend on batch size or on which sets are evaluated. The user's model
is never modified: perturbed parameters are swapped in for each forward and the model's own
Parameter objects put back (:func:`adaaug._reparam.swapped`), the model is evaluated in eval mode,
and each module's mode is restored afterwards. A weight shared by several layers or reachable under
several names (tied weights, a submodule used twice) is one block: it gets one draw, used by every
layer that shares it. ``η = 0`` is exactly the unperturbed model (one draw).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from .. import paper
from .sets import ImageSource


class NoisyPredictor:
    """A predictor (``predictor(source, columns=None) -> int64 predictions``) for a perturbed model.

    Args:
        model: classifier taking [0, 1] images ``B×3×H×W``.
        eta: η ≥ 0, noise standard deviation relative to each block's ℓ∞ norm.
        samples: number of perturbation draws averaged (the paper: 50).
        seed: seeds the draws. block_size: examples held per pass over the draws (memory: block × classes floats).
    """

    def __init__(self, model: nn.Module, eta: float, *, samples: int = paper.PARAM_NOISE_SAMPLES, seed: int = 0,
                 batch_size: int = 256, device: str | torch.device | None = None, block_size: int = 10000) -> None:
        if not isinstance(eta, (int, float)) or not np.isfinite(eta) or eta < 0:
            raise ValueError(f"eta must be a finite number ≥ 0, got {eta!r}")
        if not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be a positive integer, got {samples!r}")
        self.model, self.eta, self.seed = model, float(eta), int(seed)
        self.samples = samples if eta > 0 else 1
        self.batch_size, self.block_size = batch_size, block_size
        first = next(iter(model.parameters()), None)
        if first is None:
            raise ValueError(f"{type(model).__name__} has no parameters to perturb; parameter noise needs a model "
                             f"with weights")
        self.device = torch.device(device) if device is not None else first.device

    def _draw(self, params: dict[str, torch.Tensor], index: int) -> dict[str, torch.Tensor]:
        if self.eta == 0:
            return params
        gen = torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + index)
        out = {}
        for name, w in params.items():
            scale = self.eta * w.abs().max() if w.numel() else 0.0
            out[name] = w + scale * torch.randn(w.shape, generator=gen, device=w.device, dtype=w.dtype)
        return out

    @torch.no_grad()
    def __call__(self, source: ImageSource, columns: Sequence[int] | None = None) -> np.ndarray:
        from .._reparam import TensorSlots

        model = self.model
        slots = TensorSlots(model)
        params = {k: v.detach().to(self.device) for k, v in slots.params.items()}
        # copies: a forward that writes into a buffer must not reach the model's own
        buffers = {k: v.detach().to(self.device, copy=True) for k, v in slots.buffers.items()}
        modes = [(m, m.training) for m in model.modules()]
        cols = torch.as_tensor(list(columns), device=self.device) if columns is not None else None
        preds: list[np.ndarray] = []
        try:
            model.eval()
            block: list[torch.Tensor] = []
            count = 0
            for batch in source.batches(self.batch_size):
                block.append(batch)
                count += len(batch)
                if count >= self.block_size:
                    preds.append(self._block(slots, params, buffers, block, cols))
                    block, count = [], 0
            if block:
                preds.append(self._block(slots, params, buffers, block, cols))
        finally:
            for m, mode in modes:
                m.training = mode
        return np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)

    def _block(self, slots, params, buffers, block, cols) -> np.ndarray:
        from .._reparam import swapped
        from ..classifier_checks import eval_logits, input_dtype

        total = None
        for index in range(self.samples):
            noisy = {**self._draw(params, index), **buffers}
            probs = []
            for batch in block:
                with swapped(slots, noisy, complete=True):
                    x = batch.to(self.device, input_dtype(self.model) or torch.float32)  # the classifier's dtype
                    logits = eval_logits(self.model(x), len(batch), self.model)
                if cols is not None:
                    logits = logits[:, cols]
                probs.append(torch.softmax(logits.float(), dim=1))
            probs = torch.cat(probs)
            total = probs if total is None else total + probs
        return total.argmax(1).cpu().numpy()


def evaluate_param_noise(model: nn.Module, clean: ImageSource, c_dir=None, *,
                         etas: Sequence[float] = paper.PARAM_NOISE_ETAS, samples: int = paper.PARAM_NOISE_SAMPLES,
                         seed: int = 0, alexnet: bool = False, batch_size: int = 256,
                         device: str | torch.device | None = None, limit: int | None = None,
                         classes: Sequence[str] | None = None) -> dict:
    """Table 4: clean error and (with a -C directory) mCE and per-corruption errors for each η.

    ``classes``: the model's class names in logit order; the clean set's and the -C set's class
    names are matched to them (as in :func:`~adaaug.evaluate.metrics.accuracy`).

    Returns ``{"samples": S, "seed": seed, "results": {"<η>": {"clean_error": %, "mce": %, "ce": {...}, ...}}}``
    with errors in percent; the -C entries are those of :func:`~adaaug.evaluate.metrics.evaluate_corruptions`.
    """
    from .metrics import accuracy, evaluate_corruptions
    from ..runtime.progress import bar

    results = {}
    for eta in bar(list(etas), desc="parameter noise", unit="η"):
        predictor = NoisyPredictor(model, eta, samples=samples, seed=seed, batch_size=batch_size, device=device)
        entry = {"clean_error": 100.0 - accuracy(predictor, clean, classes=classes),
                 "clean_n": len(clean)}
        if c_dir is not None:
            entry.update(evaluate_corruptions(predictor, c_dir, alexnet=alexnet, limit=limit, classes=classes))
        results[f"{eta:g}"] = entry
    return {"samples": samples, "seed": seed, "results": results}
