"""torchrun support in a few lines. Single process by default; under torchrun each process drives one device.

    torchrun --nproc_per_node 4 train.py --name run ...           # 4 GPUs on one machine
    torchrun --nproc_per_node 2 train.py --device cpu --name run  # 2 CPU processes (gloo), for testing
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from util.errors import UserError


@dataclass(frozen=True)
class Process:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and logs."""
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available here; use --device cpu")
    return device


def setup(device_name: str) -> tuple[Process, torch.device]:
    """Read torchrun's environment, join the process group and pick this process's device."""
    if "RANK" not in os.environ:
        return Process(), resolve_device(device_name)
    process = Process(int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"]))
    device = resolve_device(device_name, process.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return process, device


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def gather_by_index(indices: torch.Tensor, *columns: torch.Tensor) -> tuple[np.ndarray, list[np.ndarray]]:
    """Collect per-sample columns from every process: (the distinct indices in order, each column in that order),
    sampler padding removed.

    Every process receives the full result, so all of them take the same early-stopping decisions.
    """
    if dist.is_initialized():
        stacked = torch.stack([indices.double(), *[c.double() for c in columns]])
        sizes = [torch.zeros((), dtype=torch.long, device=stacked.device) for _ in range(dist.get_world_size())]
        dist.all_gather(sizes, torch.tensor(stacked.shape[1], device=stacked.device))
        # Ranks may hold different counts when images were skipped: pad to the longest, then trim.
        longest = int(max(sizes))
        padded = torch.nn.functional.pad(stacked, (0, longest - stacked.shape[1]))
        parts = [torch.empty_like(padded) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, padded)
        merged = torch.cat([part[:, : int(n)] for part, n in zip(parts, sizes, strict=True)], dim=1).cpu().numpy()
        indices, columns = merged[0].astype(np.int64), list(merged[1:])
    else:
        indices, columns = indices.cpu().numpy(), [c.cpu().numpy() for c in columns]
    unique, first = np.unique(indices, return_index=True)  # padding repeats indices
    return unique, [c[first] for c in columns]


def gather_objects(items: list) -> list:
    """The concatenation of every process's list (small Python objects, e.g. skipped files)."""
    if not dist.is_initialized():
        return list(items)
    parts: list[list] = [[] for _ in range(dist.get_world_size())]
    dist.all_gather_object(parts, items)
    return [item for part in parts for item in part]
