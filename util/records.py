"""Configs as records: plain JSON-able dicts (opt.json, checkpoints), the command line that gives the same config
(flags are the option fields' names, so ``--<field>`` always exists), and the config a record holds."""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from pathlib import Path
from typing import Any, TypeVar

from util.errors import ConfigError
from util.fields import Options, option_meta, options_of, shown

Config = TypeVar("Config", bound=Options)


def plain(value: Any) -> Any:
    """Nested configs to dicts, tuples to lists and paths to strings, recursively: what JSON and checkpoints
    hold."""
    if isinstance(value, Options):
        return config_dict(value)
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def config_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as plain types, keys sorted (the content of opt.json)."""
    return {f.name: plain(getattr(config, f.name)) for f in sorted(dataclasses.fields(config), key=lambda f: f.name)}


def save_config(config: Any, path: Path) -> None:
    """Write ``config_dict(config)`` to ``path`` atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(config_dict(config), indent=2) + "\n")
    os.replace(tmp, path)


def flags(config: Options) -> dict[str, Any]:
    """Every option of ``config`` by flag name, nested configs' options among them, in declaration order."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, Options):
            values.update(flags(value))
        elif option_meta(field) is not None:
            values[field.name] = value
    return values


def command_line(config: Options) -> list[str]:
    """The flags that give ``config`` on its script's command line: its recipe (when not the default one), then
    every option that differs from what the recipe alone gives (``--<field>``; a switch alone for true, with
    ``false`` to undo a recipe's; comma-joined sequences). Parsed again, they give ``config``."""
    naming = {k: v for k, v in config.naming_preset().items() if config.changed(k)}
    baseline = flags(type(config)(**naming))
    args = [word for name, value in naming.items() for word in (f"--{name}", shown(value))]
    for name, value in flags(config).items():
        if value == baseline[name] or value is None or name in naming:
            continue
        args.append(f"--{name}")
        if value is False:
            args.append("false")
        elif value is not True:  # a pair of kind and values (--sweep blur 0,1) is two words
            parts = value if isinstance(value, tuple) and any(isinstance(v, tuple) for v in value) else (value,)
            args += [shown(part) for part in parts]
    return args


def _typed(value: Any, hint: str) -> Any:
    """A JSON value back to the field's type: lists to tuples, strings to paths."""
    if isinstance(value, list):
        return tuple(_typed(v, "") for v in value)
    if isinstance(value, str) and "Path" in hint:
        return Path(value)
    return value


def config_from_record(cls: type[Config], record: dict[str, Any]) -> Config:
    """The config that a record (opt.json, a checkpoint's options) holds, nested or flat (the layout before the
    augmentation had its own config); options it lacks take their recipe's value or default, as on the command
    line."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        flat.update(value if isinstance(value, dict) else {key: value})
    hints = {name: str(hint) for name, hint in _option_hints(cls).items()}
    unknown = sorted(set(flat) - set(hints))
    if unknown:
        raise ConfigError(f"unknown options {', '.join(unknown)}")
    return cls.from_flags(**{k: _typed(v, hints[k]) for k, v in flat.items()})


def _option_hints(cls: type) -> dict[str, Any]:
    """The type hint of every option of ``cls`` and its nested configs, by flag name."""
    hints = typing.get_type_hints(cls)
    found = {f.name: hints[f.name] for f in options_of(cls)}
    for field in dataclasses.fields(cls):
        nested = hints[field.name]
        if isinstance(nested, type) and issubclass(nested, Options):
            found.update(_option_hints(nested))
    return found
