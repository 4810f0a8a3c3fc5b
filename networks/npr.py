"""NPR (Tan et al., CVPR 2024): a small ResNet that sees the image's neighbouring-pixel relationships.

Generators upsample with interpolation or transposed convolutions, so the pixels of each 2x2 block of a
generated image are tied to each other. The network sees ``x - up(down(x))`` (nearest neighbour, factor 2),
which keeps only those within-block differences, through the first two stages of a ResNet-50.

Module and key names are those of the authors' code (``conv1 bn1 layer1 layer2 fc1``), so their released state
dict loads as it is.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from networks.resnet import Bottleneck, initialize, stage

# The authors scale the residual by 2/3 before the first convolution.
RESIDUAL_SCALE = 2.0 / 3.0


def even_crop(x: torch.Tensor) -> torch.Tensor:
    """Drop the last row and/or column of odd-sized images: 2x2 blocks must tile the image."""
    height, width = x.shape[-2:]
    return x[..., : height - height % 2, : width - width % 2]


def npr_residual(x: torch.Tensor) -> torch.Tensor:
    """``x - up(down(x))`` with nearest-neighbour resampling by 0.5 and 2: each pixel minus the top-left pixel of
    its 2x2 block. ``x`` must have even sides."""
    down = F.interpolate(x, scale_factor=0.5, mode="nearest", recompute_scale_factor=True)
    return x - F.interpolate(down, scale_factor=2.0, mode="nearest", recompute_scale_factor=True)


class NPR(nn.Module):
    """One logit from the NPR of a normalized image batch (N, 3, H, W); odd sides are cropped to even."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = stage(Bottleneck, 64, 64, blocks=3, stride=1)
        self.layer2 = stage(Bottleneck, 256, 128, blocks=4, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(512, 1)  # PyTorch's default init, as the authors' (their init_gain reaches no layer)
        initialize(self)  # torchvision's ResNet initialization, which the authors' code repeats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(npr_residual(even_crop(x)) * RESIDUAL_SCALE)
        x = self.maxpool(self.relu(self.bn1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc1(torch.flatten(self.avgpool(x), 1))
