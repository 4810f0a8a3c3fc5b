"""NPR (Tan et al., CVPR 2024; the network is ``networks.npr``): from scratch, ImageNet's normalization as the
authors', tested on whole images resized to 256x256 as their test.py."""

from __future__ import annotations

from collections.abc import Set
from pathlib import Path
from typing import TYPE_CHECKING

from networks.registry import IMAGENET_MEAN, IMAGENET_STD, Family, Preprocessing, register

if TYPE_CHECKING:
    from torch import nn


def recognizes(keys: Set[str]) -> bool:
    """Its head is ``fc1`` (the authors' key; torchvision's ResNets have ``fc``)."""
    return "fc1.weight" in keys


def build(*, pretrained: bool, pretrained_path: Path | None, init_gain: float) -> nn.Module:
    from networks.npr import NPR

    return NPR()  # its own initialization; there are no pretrained weights to start from


register(Family(name="npr", build=build, mean=IMAGENET_MEAN, std=IMAGENET_STD, pretrained=None,
                recognizes=recognizes, recipe="npr", even_sides=True,
                test_protocol=Preprocessing(crop_size=None, resize=256, square=True, source="NPR's test.py"),
                note="NPR, from scratch; it drops an odd last row or column"))
