"""Settings of ``adaaug finetune``: :class:`FinetuneConfig` and the methods it compares (:data:`METHODS`).

Apart from :mod:`adaaug.experiments.finetune` so that the command's options
(:mod:`adaaug.experiments.finetune_options`) and its report take their defaults from here without
importing the runner.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import paper

#: The fine-tuning protocol's methods, in table order.
METHODS = ("nominal", "ada", "augmix", "ada+augmix")


@dataclass
class FinetuneConfig:
    """Settings of a fine-tuning grid (defaults in brackets).

    Attributes:
        data, dev, out: training set, held-out evaluation set (ImageFolder dir, ``cifar10:<root>`` or a
            ``.tar.gz`` of an ImageFolder tree) and output directory.
        methods: among :data:`METHODS` [all four]. backbones: AdA corruption networks; methods with AdA get
            one row per backbone [edsr, edsr-down].
        seeds: one run per seed and row; the seed picks the training subset, batch order, augmentation
            draws and AdA's random init [0 1 2].
        subset: training images per run [1000]. epochs [2]. batch_size [128].
        lr: peak SGD learning rate (Nesterov momentum 0.9, cosine decay to 0 per step, no warm-up) [0.01].
        weight_decay [5e-4].
        ada_steps: M [2; paper 10 on CIFAR-10]. nu: ν [paper.NU_EDSR_CIFAR10 = 0.015].
        ada_share: share of each batch that AdA corrupts [1.0 = Algorithm 1]; a CPU-scale option
            (see :mod:`adaaug.experiments.finetune`).
        jsd: AugMix with the JSD consistency loss (λ = 12, three views per example) [True].
        dev_limit: held-out dev images scored, clean and corrupted [250]. dev_seed: seeds that subset and
            the corruptions [0].
        chunk_size: AdA nano-batch [8]. threads: torch threads [1].
    """

    data: str
    dev: str
    out: str
    methods: tuple[str, ...] = METHODS
    backbones: tuple[str, ...] = ("edsr", "edsr-down")
    seeds: tuple[int, ...] = (0, 1, 2)
    subset: int = 1000
    epochs: int = 2
    batch_size: int = 128
    lr: float = 0.01
    weight_decay: float = 5e-4
    ada_steps: int = 2
    nu: float = paper.NU_EDSR_CIFAR10
    ada_share: float = 1.0
    jsd: bool = True
    dev_limit: int = 250
    dev_seed: int = 0
    chunk_size: int = 8
    threads: int = 1

    def validate(self) -> "FinetuneConfig":
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"methods must be among {', '.join(METHODS)}, got {list(self.methods)}")
        if not self.backbones and any("ada" in m for m in self.methods):
            raise ValueError("methods with AdA need at least one backbone")
        for name in ("subset", "epochs", "batch_size", "dev_limit", "chunk_size", "threads"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not 0 < self.ada_share <= 1:
            raise ValueError(f"ada_share must lie in (0, 1], got {self.ada_share}")
        if not (self.nu > 0 and self.lr > 0 and self.weight_decay >= 0 and self.ada_steps >= 0):
            raise ValueError("nu and lr must be > 0, weight_decay and ada_steps ≥ 0")
        if not self.seeds or any(s < 0 for s in self.seeds):
            raise ValueError(f"seeds must be non-negative, got {list(self.seeds)}")
        return self

    def rows(self) -> list[tuple[str, str | None]]:
        """``(method, backbone)`` per table row; backbone ``None`` for methods without AdA."""
        out: list[tuple[str, str | None]] = []
        for m in self.methods:
            out += [(m, b) for b in self.backbones] if "ada" in m.split("+") else [(m, None)]
        return out
