"""Stochastic weight averaging (Izmailov et al., UAI 2018) for a schedule of fixed length: the mean of the last
epochs' weights, with BatchNorm statistics recomputed for those weights.

A detector trained from scratch on a small set ends wherever its last few hundred steps took it, and its
BatchNorm running statistics follow the last few batches; averaging the weights over several epochs and measuring
the statistics over a whole pass takes both out of one run's luck (docs/mini-benchmark.md measures it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import distributed as dist
from torch import nn
from tqdm import tqdm

from data import Batch, Normalization
from engine.inference import input_memory_format


def _trained(model: nn.Module) -> Iterable[tuple[str, nn.Parameter]]:
    """The parameters that train: a frozen tower never changes, so its mean is itself."""
    return ((name, p) for name, p in model.named_parameters() if p.requires_grad)


class WeightAverage:
    """The running mean of a model's trained parameters, one update per epoch, on the model's device."""

    def __init__(self, model: nn.Module) -> None:
        self.count = 0
        self.last_epoch = 0  # an epoch seen again after an interrupt is not added twice
        self.params = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in _trained(model)}

    @torch.no_grad()
    def update(self, model: nn.Module, epoch: int) -> None:
        if epoch <= self.last_epoch:
            return
        self.count, self.last_epoch = self.count + 1, epoch
        for name, p in _trained(model):
            self.params[name].add_((p.float() - self.params[name]) / self.count)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        for name, p in _trained(model):
            p.copy_(self.params[name])

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "last_epoch": self.last_epoch, "params": self.params}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count, self.last_epoch = int(state["count"]), int(state["last_epoch"])
        self.params = {name: value.to(self.params[name].device) for name, value in state["params"].items()}


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, batches: Iterable[Batch], device: torch.device, *,
                        normalization: Normalization, progress: bool = False) -> None:
    """Set every BatchNorm layer's running statistics to their mean over ``batches`` (in training mode, without
    gradients); under torchrun, the mean over every process's batches."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:  # a network without BatchNorm (UnivFD's LayerNorms) has nothing to measure
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative mean instead of an exponential one
    model.train()
    layout = input_memory_format(model)
    used = 0
    for batch in tqdm(batches, desc="BatchNorm statistics", leave=False, disable=not progress, dynamic_ncols=True):
        if len(batch.indices) >= 2:
            model(normalization(batch.images.to(device, non_blocking=True), layout))
            used += 1
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    if dist.is_initialized():  # the mean over all processes' batches: each process's mean weighted by its count
        total = torch.tensor(float(used), device=device)
        dist.all_reduce(total)
        for m in norms:
            for stats in (m.running_mean, m.running_var):
                stats.mul_(used)
                dist.all_reduce(stats)
                stats.div_(total.clamp(min=1))
