"""Configs as records: plain JSON-able dicts (opt.json, checkpoints) and the command line that gives the same
config (flags are the field names, so ``--<field>`` always exists)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any


def plain(value: Any) -> Any:
    """Tuples to lists and paths to strings, recursively: what JSON and checkpoints hold."""
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


def command_line(config: Any) -> list[str]:
    """The flags that give ``config`` on its script's command line: every field that differs from its default, as
    ``--<field>`` (a flag alone for True; comma-joined sequences)."""
    defaults = type(config)()
    args: list[str] = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if value == getattr(defaults, field.name) or value is None or value is False:
            continue
        args.append(f"--{field.name}")
        if value is not True:
            args.append(",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value))
    return args
