"""The ranks of a ``torchrun`` job as the trainer sees them: joining the process group, each rank's
device and share of every batch, and the checkpoint that rank 0 reads and hands to the others."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


class ShardedBatches(Sampler):
    """Endless batches of dataset indices for one rank, resumable at any step (DistributedSampler-style).

    Global batch ``s`` is indices ``[s·B·W, (s+1)·B·W)`` (modulo the length: finite sets wrap
    around); rank ``r`` takes the ``r``-th slice of ``B``. So the global batch depends on the step and
    ``B·W`` only, never on how it is split. The sources draw every item from a generator seeded by
    its index, so the stream needs no shuffling and stays what a single process has always seen."""

    def __init__(self, length: int, batch_size: int, rank: int = 0, world: int = 1, start_step: int = 0):
        self.length, self.batch_size, self.rank, self.world = length, batch_size, rank, world
        self.start_step = start_step

    def __iter__(self):
        step = self.start_step
        while True:
            first = step * self.batch_size * self.world + self.rank * self.batch_size
            yield [(first + k) % self.length for k in range(self.batch_size)]
            step += 1


def join_ranks() -> tuple[int, int]:
    """(rank, world size); joins the process group when started by torchrun."""
    if "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=timedelta(hours=2))
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """True outside torchrun and on rank 0: the process that writes shared files."""
    return not dist.is_initialized() or dist.get_rank() == 0


def training_device(name: str | None, rank: int) -> torch.device:
    if name:
        return torch.device(name)
    if torch.cuda.is_available():  # one GPU per process of the node
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', rank)) % torch.cuda.device_count()}")
    return torch.device("cpu")


def read_checkpoint(path: Path, rank: int, world: int) -> dict | None:
    """Rank 0 reads the checkpoint (the only rank that writes it) and sends it to the others."""
    state = torch.load(path, map_location="cpu", weights_only=False) if rank == 0 and path.exists() else None
    if world > 1:
        box = [state]
        dist.broadcast_object_list(box, src=0)
        state = box[0]
    return state


def generator_state(state: dict, rank: int, world: int) -> torch.Tensor | None:
    """This rank's saved noise generator, when the checkpoint was written by as many ranks."""
    if state.get("world", 1) == world and "generators" in state:
        return state["generators"][rank]
    if world == 1 and "generator" in state:  # written before 0.6: one generator
        return state["generator"]
    return None


def gathered(value, world: int) -> list:
    if world == 1:
        return [value]
    values = [None] * world
    dist.all_gather_object(values, value)
    return values
