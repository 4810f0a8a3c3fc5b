"""Backbones with a single real/fake logit, and NPR (``build_model``).

The ResNets are ``networks.resnet``'s (torchvision's keys, no torchvision import); other backbones come from
torchvision. State-dict keys are torchvision's own (``conv1.weight`` ... ``fc.weight``), so the authors' released
ResNet-50 weights load as they are.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from networks import ARCHS, FROM_SCRATCH
from networks.npr import NPR
from networks.resnet import DEPTHS, resnet
from util.checkpoint import extract_state_dict, load_checkpoint
from util.errors import UserError


def _head_name(model: nn.Module) -> str:
    """Attribute path of the classifier layer that gets replaced."""
    return "fc" if hasattr(model, "fc") else "classifier.1"


def _replace_head(model: nn.Module, init_gain: float) -> None:
    name = _head_name(model)
    parent = model if "." not in name else model.get_submodule(name.rsplit(".", 1)[0])
    old = model.get_submodule(name)
    head = nn.Linear(old.in_features, 1)
    # As the authors: weight ~ N(0, init_gain), PyTorch's default bias init.
    nn.init.normal_(head.weight, 0.0, init_gain)
    setattr(parent, name.rsplit(".", 1)[-1], head)


def _imagenet_state_dict(arch: str, pretrained_path: Path | None) -> dict[str, torch.Tensor]:
    if pretrained_path is not None:
        return extract_state_dict(load_checkpoint(pretrained_path))
    from torchvision import models  # only to fetch weights: its import costs seconds

    # IMAGENET1K_V1 are the original torchvision weights the paper used (not the newer V2 recipe).
    weights = models.get_model_weights(arch).IMAGENET1K_V1
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except OSError as err:  # URLError, timeouts, refused connections, unwritable cache
        raise UserError(
            f"could not fetch the ImageNet weights for {arch} ({weights.url}): {err}. Either download that file "
            f"and pass --pretrained_path FILE, or train from scratch with --no_pretrained"
        ) from err


def build_model(
    arch: str = "resnet50",
    *,
    pretrained: bool = True,
    pretrained_path: Path | None = None,
    init_gain: float = 0.02,
) -> nn.Module:
    """An ``arch`` whose last layer is Linear(features, 1) initialized with std ``init_gain``.

    ``pretrained`` loads torchvision's IMAGENET1K_V1 weights (or ``pretrained_path``) before the head is replaced.
    NPR is always built from random weights with its own initialization.
    """
    if arch not in ARCHS:
        raise UserError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    if arch in FROM_SCRATCH:
        if pretrained or pretrained_path is not None:
            raise UserError(f"{arch} is trained from scratch: it has no ImageNet weights (use --no_pretrained)")
        return NPR()
    if arch in DEPTHS:
        model: nn.Module = resnet(arch)
    else:
        from torchvision import models

        model = models.get_model(arch, weights=None)
    if pretrained or pretrained_path is not None:
        state = _imagenet_state_dict(arch, pretrained_path)
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            reason = str(err).splitlines()[0]
            raise UserError(f"{pretrained_path or arch}: not ImageNet weights of {arch}: {reason}") from None
    _replace_head(model, init_gain)
    return model
