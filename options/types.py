"""Value types for argparse: each parses and checks one flag's text, so ranges and lists are parsed once, here."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from networks import names
from networks.released import RELEASED

# The authors' option spelled `res50`; it still selects ResNet-50.
ARCH_ALIASES = {"res50": "resnet50"}


def probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability in [0, 1]")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def nonneg_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative integer")
    return value


def workers(text: str) -> int | str:
    """``auto`` or a number of DataLoader workers."""
    return "auto" if text == "auto" else nonneg_int(text)


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def nonneg_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative number")
    return value


def jpeg_quality(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text!r}: JPEG quality must lie in 1..100")
    return value


def _pair(text: str, convert: Callable[[str], Any]) -> tuple[Any, Any]:
    parts = [p for p in text.split(",") if p.strip()]
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"{text!r}: give one value or two separated by a comma")
    values = [convert(p.strip()) for p in parts]
    lo, hi = values[0], values[-1]
    if lo > hi:
        raise argparse.ArgumentTypeError(f"{text!r}: the first value must not exceed the second")
    return lo, hi


def sigma_range(text: str) -> tuple[float, float]:
    """``"0.0,3.0"`` -> (0.0, 3.0), sigma drawn uniformly; ``"1.5"`` -> (1.5, 1.5), a fixed sigma."""
    lo, hi = _pair(text, float)
    if lo < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: blur sigmas must be non-negative")
    return lo, hi


def quality_range(text: str) -> tuple[int, int]:
    """``"30,100"`` -> (30, 100), an inclusive integer range as the authors' code reads it."""
    lo, hi = _pair(text, int)
    if lo < 1 or hi > 100:
        raise argparse.ArgumentTypeError(f"{text!r}: JPEG qualities must lie in 1..100")
    return lo, hi


def subset_of(choices: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        values = tuple(v.strip() for v in text.split(",") if v.strip())
        unknown = [v for v in values if v not in choices]
        if not values or unknown:
            raise argparse.ArgumentTypeError(f"{text!r}: choose one or more of {','.join(choices)}")
        return values

    parse.__name__ = "list"
    return parse


def positive_int_list(text: str) -> tuple[int, ...]:
    values = tuple(positive_int(v.strip()) for v in text.split(",") if v.strip())
    if not values:
        raise argparse.ArgumentTypeError("give at least one number")
    return values


def name_list(text: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    if not values:
        raise argparse.ArgumentTypeError("give at least one name")
    return values


def arch_name(text: str) -> str:
    name = ARCH_ALIASES.get(text, text)
    if name not in names():  # read at each parse: families registered at run time count too
        raise argparse.ArgumentTypeError(f"{text!r}: choose one of {', '.join(names())}")
    return name


def released_name(text: str) -> str:
    if text not in RELEASED:
        raise argparse.ArgumentTypeError(f"{text!r}: choose one of {', '.join(RELEASED)}")
    return text


def device_name(text: str) -> str:
    if text in ("auto", "cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: choose auto, cpu, cuda or cuda:N")


class GpuIdsAction(argparse.Action):
    """The authors' ``--gpu_ids``: ``-1`` means CPU, ``N`` means ``cuda:N``; several GPUs go through torchrun."""

    def __call__(self, parser, namespace, values, option_string=None):
        ids = [v.strip() for v in str(values).split(",") if v.strip()]
        if ids == ["-1"]:
            namespace.device = "cpu"
        elif len(ids) == 1 and ids[0].isdigit():
            namespace.device = f"cuda:{ids[0]}"
        elif len(ids) > 1 and all(i.isdigit() for i in ids):
            parser.error(
                f"--gpu_ids {values}: one process drives one GPU here; for {len(ids)} GPUs run "
                f"`torchrun --nproc_per_node {len(ids)} train.py ...` (CUDA_VISIBLE_DEVICES={values} selects them)"
            )
        else:
            parser.error(f"--gpu_ids {values!r}: give -1 (CPU) or a GPU index")


# Test-time perturbations that eval.py can sweep (engine.evaluation.SWEPT_FIELD), and the type of their values.
SWEEP_KINDS: dict[str, Callable[[str], Any]] = {"blur": nonneg_float, "jpeg": jpeg_quality, "resize": positive_float}


class SweepAction(argparse.Action):
    """``--sweep KIND V1,V2,...`` -> (kind, (v1, v2, ...)), each value checked by the kind's type."""

    def __call__(self, parser, namespace, values, option_string=None):
        kind, text = values
        if kind not in SWEEP_KINDS:
            parser.error(f"--sweep {kind}: choose one of {', '.join(SWEEP_KINDS)}")
        try:
            points = tuple(SWEEP_KINDS[kind](v.strip()) for v in text.split(",") if v.strip())
        except (argparse.ArgumentTypeError, ValueError) as err:
            parser.error(f"--sweep {kind} {text}: {err}")
        if not points:
            parser.error(f"--sweep {kind}: give at least one value")
        setattr(namespace, self.dest, (kind, points))
