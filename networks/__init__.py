"""The detectors' networks: torchvision backbones with one logit (``backbones``), NPR (``npr``), the released
models (``released``), the mini-benchmark's small generators (``generators``).

``build_model`` loads on first use (PEP 562), so reading ``ARCHS`` for the options does not import torchvision.
"""

from typing import Any

ARCHS = ("resnet50", "resnet18", "resnet34", "resnet101", "efficientnet_b0", "npr")
# Trained from random weights only: no ImageNet weights exist for them, and their last layer keeps its own init.
FROM_SCRATCH = ("npr",)
# They drop an odd last row or column of their input (networks.npr.even_crop).
EVEN_SIDES = ("npr",)


def __getattr__(name: str) -> Any:
    if name == "build_model":
        from networks.backbones import build_model

        return build_model
    raise AttributeError(f"module 'networks' has no attribute {name!r}")
