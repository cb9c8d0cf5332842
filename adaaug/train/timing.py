"""What ``adaaug train`` says about the time a run will take, before and while it trains.

Before the first step (:func:`announce_cost`), for the AdA methods: the floor of a step (the cost
model of ``adaaug bench``, :mod:`adaaug.runtime.cost`, timed on a few images) when it is at least
:data:`SLOW_STEP_S`, so that a user of slow settings hears it at once instead of after a step of
minutes. From the first timed step on: the measured time per step, epoch and run
(:class:`~adaaug.runtime.progress.StepClock`), on a line of its own above the progress bar.
"""
from __future__ import annotations

import sys
from typing import Any

#: The floor per step (seconds) from which ``adaaug train`` tells the cost before the first step.
SLOW_STEP_S = 2.0


def image_shape(cfg: Any, source: Any) -> tuple[int, int, int] | None:
    """``(C, H, W)`` of a training image as the step sees it (after the standard crop); None if unknown."""
    from .. import paper

    if cfg.preset == "imagenet":
        return (3, paper.IMAGENET_TRAIN_SIZE, paper.IMAGENET_TRAIN_SIZE)
    data = getattr(source, "data", None)
    if data is not None and hasattr(data, "images"):
        return tuple(int(s) for s in data.images.shape[1:])  # type: ignore[return-value]
    try:  # streamed: the size of the first file
        from PIL import Image

        dataset = source.dataset
        with Image.open(dataset.files[0]) as im:
            return (3, im.size[1], im.size[0])
    except Exception:  # noqa: BLE001  (no estimate is better than a failed run)
        return None


def _gpu_hint(device: Any) -> str:
    import torch

    return ", as does --device cuda" if device.type == "cpu" and torch.cuda.is_available() else ""


def announce_cost(cfg: Any, env: Any, rt: Any, m: Any, data: Any, start_epoch: int, *, stream=None):
    """Print the floor of an AdA step when it is slow, and return the run's step clock (None: nothing to time).

    Args:
        cfg: the :class:`~adaaug.train.config.TrainConfig`. env, rt, m, data: the run's process, runtime,
            model and data (:mod:`adaaug.train.loop`). start_epoch: epochs already done.
        stream: where the lines go (default stderr).

    Returns:
        a :class:`~adaaug.runtime.progress.StepClock` for the first epoch of this run on the main process
        of an AdA run, else None.
    """
    from ..runtime.progress import StepClock, duration

    if not env.is_main or not cfg.uses_ada or start_epoch >= cfg.epochs:
        return None
    label = f"adaaug train --method {cfg.method}"
    steps, epochs = data.source.steps_per_epoch(), cfg.epochs - start_epoch
    sync = None
    if rt.device.type == "cuda":
        import torch

        def sync() -> None:
            torch.cuda.synchronize(rt.device)
    shape = image_shape(cfg, data.source)
    ada = getattr(m.pipe, "ada", None)
    if shape is not None and ada is not None:
        from ..runtime.cost import estimate_ada_step

        local = cfg.batch_size // env.world_size
        floors = [estimate_ada_step(m.model, c.module, batch=local, image_shape=shape, steps=cfg.ada_steps,
                                    device=rt.device, sync=sync)["floor_s"] for c in ada.corruptors]
        floor = sum(floors) / len(floors)  # with several backbones each serves a share of the batch
        if floor >= SLOW_STEP_S:
            print(f"{label}: a step will take at least {floor:.3g} s on this machine (M + 1 = {cfg.ada_steps + 1} "
                  f"classifier and {cfg.ada_steps} backbone forward+backward passes of {local} images, the floor "
                  f"that the bench command measures), so at least {duration(floor * steps)} per epoch ({steps} steps) and "
                  f"{duration(floor * steps * epochs)} for the {epochs} epoch{'s' * (epochs != 1)} to go; fewer "
                  f"--ada-steps or a smaller --batch-size make it faster{_gpu_hint(rt.device)}",
                  file=stream or sys.stderr, flush=True)
    return StepClock(label, steps, epochs, sync=sync, stream=stream)
