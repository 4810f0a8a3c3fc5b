"""Checkpoint files: always loaded with ``weights_only=True``, always written atomically.

Accepted on load: the authors' release format ``{'model', 'optimizer', 'total_steps'}``, this project's
training checkpoints (the same keys and more), and a bare state dict; keys prefixed by ``module.`` (DDP)
or ``_orig_mod.`` (torch.compile) are unwrapped.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from util.errors import UserError

FORMAT_VERSION = 1
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable, unsafe, or made for another network."""


# torch.save writes a zip archive (since PyTorch 1.6) or, in the legacy format, a pickle (protocol 2+).
_CHECKPOINT_MAGIC = (b"PK\x03\x04", b"\x80")
_OTHER_FORMATS = {b"PK\x05\x06": "an empty zip archive",
                  b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"GIF8": "a GIF image",
                  b"%PDF": "a PDF document", b"\x1f\x8b": "a gzip archive", b"7z\xbc\xaf": "a 7z archive"}


def _not_a_checkpoint(path: Path) -> str | None:
    """Why the file cannot be a checkpoint, judged by its first bytes; None when it may be one."""
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(_CHECKPOINT_MAGIC):
        return None
    if not head:
        return "the file is empty"
    kind = next((name for magic, name in _OTHER_FORMATS.items() if head.startswith(magic)), None)
    if kind is None:
        try:
            head.decode("utf-8")
            kind = "text"
        except UnicodeDecodeError:
            kind = "data in an unknown format"
    return f"it holds {kind}"


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Read a checkpoint to CPU tensors, refusing any pickle that holds more than tensors and plain types."""
    path = Path(path)
    if path.is_dir():
        runs = [name for name in ("best.pth", "latest.pth") if (path / name).is_file()]
        hint = f"pass {path / runs[0]}" if runs else "pass a .pth file"
        raise CheckpointError(f"{path}: a folder, not a checkpoint file; {hint}")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    reason = _not_a_checkpoint(path)
    if reason is not None:
        raise CheckpointError(f"{path}: not a checkpoint ({reason}; a PyTorch .pth file is a zip archive or a "
                              f"pickle)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights only" in str(err).lower() or "weights_only" in str(err):
            raise CheckpointError(
                f"{path}: refused: the file holds Python objects other than tensors and plain types, and "
                f"loading it could run code (only weights_only=True loading is allowed)"
            ) from None
        raise CheckpointError(f"{path}: not a readable checkpoint ({err})") from None
    except MemoryError:
        raise CheckpointError(f"{path}: not enough memory to load it ({path.stat().st_size / 2**20:.0f} MiB on "
                              f"disk)") from None
    except Exception as err:  # torch's parsers raise many types on damaged bytes (IndexError, RuntimeError, ...)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "can't allocate memory" in first or "out of memory" in first.lower():
            raise CheckpointError(f"{path}: not enough memory to load it ({first})") from None
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint ({first})") from None
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    return dict(obj)


# What a recorded test protocol holds: its fields, and which of them are sizes in pixels.
_PROTOCOL_FIELDS = ("crop_size", "resize", "square", "tile")


def _is_pixels(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0)


def check_checkpoint(checkpoint: Mapping[str, Any], state: Mapping[str, torch.Tensor], source: str, *,
                     archs: Sequence[str], allow_nonfinite: bool = False) -> None:
    """Every field the checkpoint carries besides the weights' keys and shapes (``load_weights`` checks those),
    before any is used: one CheckpointError that names each problem. Weights that are NaN or infinite are refused
    unless ``allow_nonfinite``: they would give meaningless scores without a word."""
    problems = []
    options = checkpoint.get("options", {})
    if not isinstance(options, Mapping):
        problems.append(f"'options' is a {type(options).__name__}, not a dict")
    else:
        arch = options.get("arch")
        if arch is not None and arch not in archs:
            problems.append(f"options.arch {arch!r} is none of {', '.join(archs)}")
        if not isinstance(options.get("recipe", ""), str):
            problems.append(f"options.recipe is a {type(options['recipe']).__name__}, not a name")
    protocol = checkpoint.get("test_protocol")
    if protocol is not None and not isinstance(protocol, Mapping):
        problems.append(f"'test_protocol' is a {type(protocol).__name__}, not a dict")
    elif protocol is not None:
        problems += [f"test_protocol has an unknown field {key!r}" for key in protocol if key not in _PROTOCOL_FIELDS]
        problems += [f"test_protocol.{key} {protocol[key]!r} is not a positive number of pixels"
                     for key in _PROTOCOL_FIELDS[:2] if key in protocol and not _is_pixels(protocol[key])]
        problems += [f"test_protocol.{key} {protocol[key]!r} is not true or false"
                     for key in _PROTOCOL_FIELDS[2:] if not isinstance(protocol.get(key, False), bool)]
    tower = checkpoint.get("tower")
    if tower is not None and not (isinstance(tower, Mapping) and all(isinstance(tower.get(k), str)
                                                                     for k in ("name", "sha256"))):
        problems.append(f"'tower' is {tower!r}, not a name and a sha256")
    nonfinite = [key for key, value in state.items() if value.is_floating_point() and not value.isfinite().all()]
    if nonfinite and not allow_nonfinite:
        problems.append(f"{len(nonfinite)} weight tensors hold NaN or infinite values (e.g. {nonfinite[0]}); "
                        f"--allow_nonfinite loads them anyway")
    if problems:
        raise CheckpointError(f"{source}: " + "; ".join(problems))


def extract_state_dict(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The model weights of a release/training checkpoint or a bare state dict, wrapper prefixes removed."""
    state = checkpoint["model"] if isinstance(checkpoint.get("model"), Mapping) else checkpoint
    out = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"entry {key!r} is a {type(value).__name__}, not a tensor: not a state dict")
        while key.startswith(_WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        out[key] = value
    return out


def load_weights(model: nn.Module, state: Mapping[str, torch.Tensor], source: str, arch: str,
                 only: tuple[str, ...] | None = None) -> None:
    """Strict load of every weight, or of those whose names start with one of ``only`` (a part loaded from its
    own file); a mismatch is reported in one line that says which network the weights seem to fit."""
    own = {k: v for k, v in model.state_dict().items() if only is None or k.startswith(only)}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} shape mismatches (e.g. {k}: file {list(state[k].shape)}, "
                         f"{arch} {list(own[k].shape)})")
        raise CheckpointError(f"{source}: weights do not fit --arch {arch}: " + "; ".join(parts))
    model.load_state_dict(state, strict=only is None)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare module under DDP / torch.compile wrappers, so saved keys carry no prefixes."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model


def save_checkpoint(path: Path | str, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` atomically: a crash mid-write leaves the previous file at ``path`` intact."""
    if "model" not in payload:
        raise ValueError("a checkpoint must hold the 'model' state dict")
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({**payload, "format_version": FORMAT_VERSION}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
