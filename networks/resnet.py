"""ResNets (He et al., CVPR 2016) built without importing torchvision.

torchvision's import pulls in ``torch._dynamo`` and sympy through ``torchvision.ops`` (about 3.5 s of a 2-core
CPU's start-up), which eval.py and demo.py do not need. These networks have torchvision's module names, so state
dicts (the authors' released weights, ImageNet weights, our checkpoints) load unchanged, and they draw their
random initialization in torchvision's order, so a seeded run builds the very same weights
(``tests/test_networks.py`` checks both against torchvision).
"""

from __future__ import annotations

import torch
from torch import nn

from networks.families.resnet import DEPTHS


def conv3x3(inplanes: int, planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(inplanes: int, planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + shortcut)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided: "ResNet v1.5", as torchvision), 1x1 expand, and a shortcut (ResNet-50/101)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + shortcut)


def initialize(model: nn.Module) -> None:
    """torchvision's ResNet initialization, in module order: He-normal convolutions (fan out), BatchNorm at 1 and 0."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


Block = type[BasicBlock] | type[Bottleneck]


def stage(block: Block, inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
    """One stage; its first block changes the resolution or width, with a projected shortcut when it must."""
    width = planes * block.expansion
    downsample = None
    if stride != 1 or inplanes != width:  # built before the blocks: torchvision's order of random draws
        downsample = nn.Sequential(conv1x1(inplanes, width, stride), nn.BatchNorm2d(width))
    return nn.Sequential(block(inplanes, planes, stride, downsample),
                         *(block(width, planes) for _ in range(blocks - 1)))


class ResNet(nn.Module):
    def __init__(self, block: Block, depths: tuple[int, int, int, int], num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        widths, inplanes = (64, 128, 256, 512), 64
        for index, (planes, blocks) in enumerate(zip(widths, depths, strict=True)):
            setattr(self, f"layer{index + 1}", stage(block, inplanes, planes, blocks, stride=1 if index == 0 else 2))
            inplanes = planes * block.expansion
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)
        initialize(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet(arch: str) -> ResNet:
    """A randomly initialized ResNet of the family's DEPTHS with ImageNet's 1000-way head."""
    depths, bottleneck = DEPTHS[arch]
    return ResNet(Bottleneck if bottleneck else BasicBlock, depths)
