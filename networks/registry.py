"""Detector families: one spec (``Family``) per network, registered by name.

A family module (``networks/families/``) calls ``register`` once per name; every other part of the toolkit asks the
registry: the options for the names, ``build_model`` for the builder, the engine for the input normalization, what
trains, the test protocol and the recipe, and for the family whose state dict a checkpoint without an ``arch``
record holds. Nothing here imports PyTorch: a builder imports its network when it is called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from util.errors import ConfigError, UserError

if TYPE_CHECKING:
    from torch import nn

# torchvision's ImageNet statistics, which the ResNets' and NPR's authors normalize with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Builder(Protocol):
    def __call__(self, *, pretrained: bool, pretrained_path: Path | None, init_gain: float) -> nn.Module:
        """The network with one real/fake logit; ``pretrained``: from the family's pretrained weights (or the
        file ``pretrained_path``), then a new last layer whose weights are drawn with std ``init_gain``."""
        ...


@dataclass(frozen=True)
class Preprocessing:
    """How test images reach a family's network when its checkpoint records no test protocol: the fields of
    ``engine.configs.TestProtocol`` (networks/ does not import the engine), and whose protocol it is."""

    crop_size: int | None
    """Center crop side; None: the whole image."""
    resize: int | None = None
    """Resize the shorter side (both sides with ``square``) to this first."""
    square: bool = False
    tile: bool = False
    """Fill the crop with copies of an image smaller than it rather than zeros (NPR's GenImage protocol)."""
    source: str = ""
    """Shown where the protocol is reported ("the paper's")."""


@dataclass(frozen=True, kw_only=True)
class Tower:
    """A frozen pretrained part that checkpoints name instead of holding (300 M parameters would otherwise be
    written with every epoch's head): the builder reads it from ``path``, a plain tensor file made once from the
    published download at ``url``."""

    name: str
    url: str
    sha256: str
    """Of the published file at ``url``: the tower's identity, recorded in checkpoints and in ``path``."""
    path: Path
    get: str
    """The command that makes ``path`` (named when it is missing)."""

    def record(self) -> dict[str, str]:
        """What a checkpoint holds in the tower's place."""
        return {"name": self.name, "sha256": self.sha256}


T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class Family:
    """Everything the toolkit knows of one detector network."""

    name: str
    """The ``--arch`` value; also recorded in the checkpoints' options."""
    build: Builder
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    """Input normalization: (x / 255 - mean) / std per RGB channel."""
    pretrained: str | None
    """Where training starts from ("torchvision's IMAGENET1K_V1"); None: from random weights, the network's own
    last-layer initialization (``--init_gain`` does not apply)."""
    recognizes: Callable[[Set[str]], bool]
    """Whether a state dict's keys are this family's (a checkpoint that records no arch)."""
    test_protocol: Preprocessing
    """eval.py's protocol for a checkpoint that records none."""
    recipe: str
    """The training recipe (a name of ``engine.configs.RECIPES``) of its paper; also recorded runs' default."""
    demo_protocol: Preprocessing | None = None
    """demo.py's and the page's protocol for a checkpoint that records none; None: ``test_protocol``."""
    trained: tuple[str, ...] | None = None
    """None: every parameter trains; else only those whose names start with one of these (a linear head over a
    frozen tower), the others are frozen."""
    tower: Tower | None = None
    """A frozen tower that checkpoints only name (with ``trained`` naming the head they hold); None: checkpoints
    hold every weight."""
    even_sides: bool = False
    """The network drops an odd last row or column of its input (so eval.py warns about odd-sized images)."""
    note: str = ""
    """A few words for ``--arch``'s help ("NPR, from scratch")."""

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() or c == "," for c in self.name):
            raise ConfigError(f"family name {self.name!r}: give a word without spaces or commas")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError(f"{self.name}: mean and std need three values each, std positive")
        if self.trained is not None and not (self.trained and all(self.trained)):
            raise ConfigError(f"{self.name}: trained names parameter prefixes; None trains every parameter")
        if self.tower is not None and self.trained is None:
            raise ConfigError(f"{self.name}: a family with a named tower says which parameters train (its head)")

    def trains(self, parameter: str) -> bool:
        """Whether the parameter of this name trains."""
        return self.trained is None or parameter.startswith(self.trained)

    def stored(self, state: Mapping[str, T]) -> dict[str, T]:
        """What a checkpoint keeps of the network's state dict: all of it, or for a family with a named tower only
        what trains."""
        return {key: value for key, value in state.items() if self.tower is None or self.trains(key)}


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Adds ``family`` under its name; names are unique."""
    if family.name in FAMILIES:
        raise ConfigError(f"a detector family named {family.name!r} is already registered")
    FAMILIES[family.name] = family
    return family


def names() -> tuple[str, ...]:
    """The registered families' names, in registration order."""
    return tuple(FAMILIES)


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise UserError(f"unknown architecture {name!r}; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def recognize(keys: Set[str]) -> Family | None:
    """The first family (in registration order) whose spec recognizes these state-dict keys, None if none does."""
    return next((f for f in FAMILIES.values() if f.recognizes(keys)), None)


def help_text() -> str:
    """The registered names for ``--arch``'s help, each with its family's note."""
    return ", ".join(f"{f.name} ({f.note})" if f.note else f.name for f in FAMILIES.values())
