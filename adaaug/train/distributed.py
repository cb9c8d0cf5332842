"""Data-parallel plumbing for ``adaaug train``: torchrun environment, sharding, seeds, collectives.

Under ``torchrun`` (``WORLD_SIZE`` > 1) :func:`setup` initialises the default process group
(NCCL on CUDA, gloo on CPU) and pins each process to ``cuda:<LOCAL_RANK>``. Every helper
is a no-op or identity in a single process, so the training loop has one code path.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass
class DistEnv:
    """The current process's place in the job.

    Attributes:
        rank: global rank in ``[0, world_size)``; rank 0 logs and writes files.
        world_size: number of processes (1 without torchrun).
        local_rank: rank on this node (the CUDA device index under torchrun).
        device: the device this process trains on.
        backend: ``"nccl"``, ``"gloo"`` or ``None`` (single process).
        owns_group: whether :func:`setup` created the process group (and :func:`teardown` destroys it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def world_size_from_env() -> int:
    """``WORLD_SIZE`` set by torchrun (or by an already initialised process group); 1 otherwise."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """``auto`` → ``cuda:<local_rank>`` when CUDA is available, else CPU; ``cuda`` → ``cuda:<local_rank>``."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(spec)


def setup(device: str = "auto") -> DistEnv:
    """Join the torchrun job (if any) and pick this process's device.

    Reuses a process group that the caller already initialised (e.g. with
    ``torch.multiprocessing``); otherwise creates one from the ``env://`` variables.
    """
    world = world_size_from_env()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world == 1:
        return DistEnv(device=dev)
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        owns = True
    return DistEnv(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank, device=dev,
                   backend=dist.get_backend(), owns_group=owns)


def teardown(env: DistEnv) -> None:
    """Destroy the process group if :func:`setup` created it."""
    if env.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        if env.backend == "nccl":
            dist.barrier(device_ids=[env.device.index])
        else:
            dist.barrier()


def all_reduce_sum(env: DistEnv, tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over processes, in place (identity in one process); returns it."""
    if env.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_object(env: DistEnv, obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every process (``[obj]`` in one process)."""
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_buffers(env: DistEnv, module: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every process.

    DDP broadcasts buffers at the start of each forward, so after the last step of an
    epoch each process holds statistics updated by its own shard; this makes evaluation
    and the saved weights agree across processes.
    """
    if env.distributed:
        for b in module.buffers():
            dist.broadcast(b.data, src=0)


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed derived from ``seed`` and ``keys`` (e.g. ``("augment", rank)``), stable across runs."""
    text = "/".join(str(k) for k in (seed, *keys)).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of ``range(n)`` for ``epoch``, the same on every process (DistributedSampler-style)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, "order", epoch)))


def shard(global_batch: torch.Tensor, env: DistEnv) -> torch.Tensor:
    """This process's contiguous share of a global batch of indices (length divisible by the world size)."""
    per = global_batch.numel() // env.world_size
    return global_batch[env.rank * per:(env.rank + 1) * per]


def state_checksum(module: nn.Module) -> str:
    """sha256 over every tensor of ``module.state_dict()`` (bitwise: equal iff the weights are identical)."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
