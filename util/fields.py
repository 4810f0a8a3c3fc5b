"""Config fields that are flags: each field's default, help, text parser and range check are written once, in its
``option(...)``. The options package builds every script's parser from them; the configs check themselves with them.

An option's dataclass default is ``UNSET``, which ``Options.__post_init__`` replaces with the config's preset (a
named recipe's value, see ``Options.preset``) or else the option's own default. So ``Config(x=1)`` and a command
line that gives only ``--x 1`` build the same config, and what was given always wins over a preset.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from util.errors import ConfigError

Check = Callable[[Any], "str | None"]  # the problem with a value, or None


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"

    def __reduce__(self) -> str:  # one sentinel across pickling (DataLoader workers, torchrun)
        return "UNSET"


UNSET: Any = _Unset()


def option(default: Any, help: str | Callable[[], str], *, check: Check | None = None,
           parse: Callable[..., Any] | None = None, choices: Sequence[str] | None = None, flags: Sequence[str] = (),
           metavar: str | tuple[str, ...] | None = None, nargs: int | None = None) -> Any:
    """A config field that is the flag ``--<name>`` (plus ``flags``, the authors' spellings).

    ``help`` may be a function, read when a parser is built (a list of names that grows at run time).
    ``parse`` turns the flag's text into a value (default: from the field's type; switches take no text or
    true/false; with ``nargs``, it takes that many texts); ``check`` and ``choices`` say which values are valid,
    for the command line and for Python alike.
    """
    meta = {"default": default, "help": help, "check": check, "parse": parse, "choices": choices,
            "flags": tuple(flags), "metavar": metavar, "nargs": nargs}
    return dataclasses.field(default=UNSET, metadata={"option": meta})


def option_meta(field: dataclasses.Field) -> dict[str, Any] | None:
    return field.metadata.get("option")


def help_of(meta: dict[str, Any]) -> str:
    """An option's help text (see ``option``)."""
    return meta["help"]() if callable(meta["help"]) else meta["help"]


def options_of(cls: type) -> list[dataclasses.Field]:
    """The fields of ``cls`` that are flags, in declaration order."""
    return [f for f in dataclasses.fields(cls) if option_meta(f) is not None]


def default_of(cls: type, name: str) -> Any:
    """The own default of option ``name`` of ``cls`` (what it is when neither given nor preset)."""
    meta = option_meta(next(f for f in dataclasses.fields(cls) if f.name == name))
    assert meta is not None, name
    return meta["default"]


def shown(value: Any) -> str:
    """A value as it is typed on the command line: sequences comma-joined, a kind and its values (``--sweep``)
    as two words."""
    if isinstance(value, (tuple, list)):
        if any(isinstance(v, (tuple, list)) for v in value):
            return " ".join(map(shown, value))
        return ",".join(map(str, value))
    return str(value)


@dataclass(frozen=True, kw_only=True)
class Options:
    """A frozen config whose ``option`` fields fill themselves (given, else preset, else default) and check their
    values; subclasses check combinations in their own ``__post_init__`` after calling this one."""

    def preset(self, given: set[str]) -> dict[str, Any]:
        """Values that replace the options' own defaults for the fields not in ``given`` (a recipe's)."""
        return {}

    def naming_preset(self) -> dict[str, Any]:
        """The options that name this config's preset (``recipe``): a recorded command line gives them first and
        then what differs from the preset they name."""
        return {}

    @classmethod
    def from_flags(cls, **flags: Any) -> Any:
        """The config of these flags as a script gives them (nested configs' flags among them, flat)."""
        return cls(**flags)

    def given(self) -> set[str]:
        return {f.name for f in options_of(type(self)) if getattr(self, f.name) is not UNSET}

    def changed(self, name: str) -> bool:
        """Whether option ``name`` differs from its own default."""
        return bool(getattr(self, name) != default_of(type(self), name))

    def __post_init__(self) -> None:
        preset = self.preset(self.given())
        for field in options_of(type(self)):
            meta = option_meta(field)
            assert meta is not None
            value = getattr(self, field.name)
            if value is UNSET:
                value = preset.get(field.name, meta["default"])
                object.__setattr__(self, field.name, value)
            if value is None:
                continue
            problem = None
            if meta["choices"] is not None:
                values = value if isinstance(value, tuple) else (value,)
                if not values or any(v not in meta["choices"] for v in values):
                    problem = f"choose {'one or more' if isinstance(value, tuple) else 'one'} of " \
                              f"{', '.join(meta['choices'])}"
            if problem is None and meta["check"] is not None:
                problem = meta["check"](value)
            if problem is not None:
                raise ConfigError(f"--{field.name} {shown(value)}: {problem}")


# ------------------------------------------------------------------------------------------------------ checks
def positive(value: float) -> str | None:
    return None if value > 0 else "give a number > 0"


def nonempty(values: Sequence[Any]) -> str | None:
    return None if values else "give at least one value"


def nonneg(value: float) -> str | None:
    return None if value >= 0 else "give a number >= 0"


def probability(value: float) -> str | None:
    return None if 0 <= value <= 1 else "give a probability in [0, 1]"


def each(check: Check) -> Check:
    """``check`` on every element of a sequence, which must not be empty."""
    def checked(values: Sequence[Any]) -> str | None:
        if not values:
            return "give at least one value"
        return next((problem for v in values if (problem := check(v)) is not None), None)

    return checked


def ordered(check: Check) -> Check:
    """A (lo, hi) range: ``check`` on both ends, lo <= hi."""
    def checked(pair: tuple[Any, Any]) -> str | None:
        if len(pair) != 2:
            return "give one value or two separated by a comma"
        if pair[0] > pair[1]:
            return "the first value must not exceed the second"
        return each(check)(pair)

    return checked


def between(lo: float, hi: float) -> Check:
    def checked(value: float) -> str | None:
        return None if lo <= value <= hi else f"give a value in {lo:g}..{hi:g}"

    return checked


# ------------------------------------------------------------------------------------------ text to values
def words(text: str) -> tuple[str, ...]:
    """``"a,b,c"`` -> ("a", "b", "c"), the authors' comma syntax."""
    return tuple(v.strip() for v in text.split(",") if v.strip())


def numbers(convert: Callable[[str], Any]) -> Callable[[str], tuple[Any, ...]]:
    def parse(text: str) -> tuple[Any, ...]:
        return tuple(convert(v) for v in words(text))

    parse.__name__ = f"list of {convert.__name__}"  # argparse names the type in its errors
    return parse


def span(convert: Callable[[str], Any]) -> Callable[[str], tuple[Any, Any]]:
    """``"lo,hi"`` -> (lo, hi); ``"v"`` -> (v, v), one fixed value (checked by ``ordered``)."""
    def parse(text: str) -> tuple[Any, Any]:
        values = numbers(convert)(text)
        return (values[0], values[-1]) if len(values) == 1 else values  # type: ignore[return-value]

    parse.__name__ = f"{convert.__name__} or range"
    return parse


def boolean(text: str) -> bool:
    """A switch's optional value: ``--no_crop`` alone is true; ``--no_crop false`` undoes a recipe's setting."""
    lowered = text.lower()
    if lowered in ("true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0"):
        return False
    raise ValueError(text)
