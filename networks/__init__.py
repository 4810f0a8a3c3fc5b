"""The detectors' networks: the family registry (``registry``; the built-in families in ``families/``, registered
here), the ResNets (``resnet``), NPR (``npr``), the released models (``released``), the mini-benchmark's small
generators (``generators``).

Registering a family imports no PyTorch, and ``build_model`` loads on first use (PEP 562), so the options read the
names at once.
"""

from typing import Any

from networks import families
from networks.registry import Family, Preprocessing, Tower, family, help_text, names, recognize, register

__all__ = ["Family", "Preprocessing", "Tower", "build_model", "families", "family", "help_text", "names", "recognize",
           "register"]


def __getattr__(name: str) -> Any:
    if name == "build_model":
        from networks.backbones import build_model

        return build_model
    raise AttributeError(f"module 'networks' has no attribute {name!r}")
