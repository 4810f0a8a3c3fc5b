"""Other torchvision backbones, as the ResNets: ImageNet weights, a new one-logit head, the paper's recipe."""

from __future__ import annotations

from collections.abc import Set
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from networks.families.resnet import AUTHORS_DEMO, IMAGENET1K_V1, PAPER
from networks.registry import IMAGENET_MEAN, IMAGENET_STD, Family, register

if TYPE_CHECKING:
    from torch import nn

# EfficientNet-B0's MBConv blocks per stage (``features.1`` to ``features.7``).
EFFICIENTNET_B0_BLOCKS = (1, 2, 2, 3, 3, 4, 1)


def recognizes_efficientnet_b0(keys: Set[str]) -> bool:
    if "classifier.1.weight" not in keys:
        return False
    return all(f"features.{stage}.{blocks - 1}.block.0.0.weight" in keys
               and f"features.{stage}.{blocks}.block.0.0.weight" not in keys
               for stage, blocks in enumerate(EFFICIENTNET_B0_BLOCKS, start=1))


def build(arch: str, *, pretrained: bool, pretrained_path: Path | None, init_gain: float) -> nn.Module:
    from torchvision import models  # seconds to import: only when such a network is built

    from networks.backbones import with_new_head

    return with_new_head(models.get_model(arch, weights=None), arch, pretrained=pretrained,
                         pretrained_path=pretrained_path, init_gain=init_gain)


register(Family(name="efficientnet_b0", build=partial(build, "efficientnet_b0"), mean=IMAGENET_MEAN,
                std=IMAGENET_STD, pretrained=IMAGENET1K_V1, recognizes=recognizes_efficientnet_b0,
                test_protocol=PAPER, demo_protocol=AUTHORS_DEMO, recipe="wang2020"))
