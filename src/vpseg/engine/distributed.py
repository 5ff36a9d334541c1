"""Several GPUs or machines through ``torchrun``: the same script, DistributedDataParallel.

``torchrun --nproc-per-node 8 -m vpseg train ...`` (add ``--nnodes``/``--rdzv-endpoint`` for
several machines) sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; ``init()`` reads them, joins
the process group (NCCL on GPUs, Gloo on CPUs) and picks this process's device. Without them it
is a single process and nothing changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init", "is_main"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def distributed(self) -> bool:
        return self.world > 1


def init(device: str | None = None) -> DistInfo:
    """Join the ``torchrun`` process group if there is one; choose the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return DistInfo(rank=rank, world=world, local_rank=local, device=device)


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0
