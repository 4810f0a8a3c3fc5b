"""The LR schedules: the paper's (patience on a validation metric, LR / 10 when it runs out, stop below a minimum
LR), NPR's fixed step decay and a cosine decay over a fixed number of epochs. Each tracks the best value of the
watched validation metric (higher is better), which the ``best`` checkpoint follows."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

Action = Literal["continue", "drop", "stop"]


@dataclass
class _Schedule:
    best: float = -math.inf
    """Best watched value over the whole run: the `best` checkpoint follows this."""
    best_epoch: int = -1

    def _track(self, epoch: int, value: float) -> bool:
        """Record ``value``; True when it is the best so far."""
        if value > self.best:
            self.best, self.best_epoch = value, epoch
            return True
        return False

    def state_dict(self) -> dict[str, float | int | None]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, float | int | None]) -> None:
        for key, value in state.items():
            # Checkpoints written before the watched metric could be chosen call it best_acc.
            setattr(self, "best" if key == "best_acc" else key, value)


@dataclass
class EarlyStopping(_Schedule):
    patience: int = 5
    min_delta: float = 0.001
    """Gain over the phase's best that counts as an improvement before the first LR drop."""
    min_delta_after_drop: float = 0.002
    lr_factor: float = 10.0
    min_lr: float = 1e-6
    """Training ends when the next LR would fall below this (phases 1e-4, 1e-5, 1e-6 from 1e-4)."""

    phase_best: float | None = None
    """Best value in the current LR phase; each phase starts a new window, as in the authors' code."""
    bad_epochs: int = 0
    drops: int = 0

    def step(self, epoch: int, value: float, lr: float) -> tuple[Action, bool, float]:
        """Record one epoch's watched value; returns (action, is_global_best, lr to use next)."""
        is_best = self._track(epoch, value)
        delta = self.min_delta if self.drops == 0 else self.min_delta_after_drop
        if self.phase_best is None or value >= self.phase_best + delta:
            self.phase_best, self.bad_epochs = value, 0
            return "continue", is_best, lr
        self.bad_epochs += 1
        if self.bad_epochs < self.patience:
            return "continue", is_best, lr
        new_lr = lr / self.lr_factor
        if new_lr < self.min_lr * (1 - 1e-6):  # tolerance: 1e-4 / 10 / 10 is not exactly 1e-6 in floats
            return "stop", is_best, lr
        self.drops += 1
        self.phase_best, self.bad_epochs = None, 0
        return "drop", is_best, new_lr


@dataclass
class StepDecay(_Schedule):
    """NPR's schedule: the LR is multiplied by ``factor`` after every ``every``-th epoch counted from 0 (after
    epochs 11, 21, 31, ... counted from 1, as the authors' loop does); training runs its full epoch count."""

    every: int = 10
    factor: float = 0.9

    def step(self, epoch: int, value: float, lr: float) -> tuple[Action, bool, float]:
        """As EarlyStopping.step, but never "stop"."""
        is_best = self._track(epoch, value)
        if epoch > 1 and (epoch - 1) % self.every == 0:
            return "drop", is_best, lr * self.factor
        return "continue", is_best, lr


@dataclass
class CosineDecay(_Schedule):
    """The LR follows half a cosine from ``base_lr`` over ``epochs`` epochs, set once per epoch; no epoch's
    validation can end or shorten training, so the run's length does not hinge on one noisy measurement."""

    base_lr: float = 1e-4
    epochs: int = 30

    def state_dict(self) -> dict[str, float | int | None]:
        """The tracked best only: the LR curve comes from the run's options, so a resume with more --epochs
        follows the longer curve."""
        return {"best": self.best, "best_epoch": self.best_epoch}

    def step(self, epoch: int, value: float, lr: float) -> tuple[Action, bool, float]:
        """As EarlyStopping.step; "stop" after the last epoch."""
        is_best = self._track(epoch, value)
        if epoch >= self.epochs:
            return "stop", is_best, lr
        return "continue", is_best, self.base_lr * 0.5 * (1 + math.cos(math.pi * epoch / self.epochs))
