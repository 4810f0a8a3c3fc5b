"""The paper's family: ResNets (``networks.resnet``) from torchvision's ImageNet weights with a new one-logit
``fc``, trained whole with the paper's recipe and tested on center crops of 224."""

from __future__ import annotations

from collections.abc import Set
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from networks.registry import IMAGENET_MEAN, IMAGENET_STD, Family, Preprocessing, register

if TYPE_CHECKING:
    from torch import nn

# Blocks per stage, and whether they are Bottlenecks (1x1, 3x3, 1x1) rather than two 3x3 convolutions.
DEPTHS: dict[str, tuple[tuple[int, int, int, int], bool]] = {
    "resnet50": ((3, 4, 6, 3), True),
    "resnet18": ((2, 2, 2, 2), False),
    "resnet34": ((3, 4, 6, 3), False),
    "resnet101": ((3, 4, 23, 3), True),
}
IMAGENET1K_V1 = "torchvision's IMAGENET1K_V1 weights"
PAPER = Preprocessing(crop_size=224, source="the paper's")  # Table 2: no resize, center crop 224
AUTHORS_DEMO = Preprocessing(crop_size=None, source="the authors' demo")  # their demo.py scores whole images


def recognizes(arch: str, keys: Set[str]) -> bool:
    """torchvision's keys of this depth: ``fc``, and exactly its number of blocks in each stage."""
    depths, bottleneck = DEPTHS[arch]
    if "fc.weight" not in keys or ("layer1.0.conv3.weight" in keys) != bottleneck:
        return False
    return all(f"layer{stage}.{blocks - 1}.conv1.weight" in keys and f"layer{stage}.{blocks}.conv1.weight" not in keys
               for stage, blocks in enumerate(depths, start=1))


def build(arch: str, *, pretrained: bool, pretrained_path: Path | None, init_gain: float) -> nn.Module:
    from networks.backbones import with_new_head
    from networks.resnet import resnet

    return with_new_head(resnet(arch), arch, pretrained=pretrained, pretrained_path=pretrained_path,
                         init_gain=init_gain)


for _arch in DEPTHS:
    register(Family(name=_arch, build=partial(build, _arch), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                    pretrained=IMAGENET1K_V1, recognizes=partial(recognizes, _arch), test_protocol=PAPER,
                    demo_protocol=AUTHORS_DEMO, recipe="wang2020"))
