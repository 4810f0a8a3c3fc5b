"""Building a registered family's network (``build_model``), and the torchvision-style families' common step:
ImageNet weights into the backbone, then a new one-logit head (``with_new_head``).

The ResNets are ``networks.resnet``'s (torchvision's keys, no torchvision import); other backbones come from
torchvision. State-dict keys are torchvision's own (``conv1.weight`` ... ``fc.weight``), so the authors' released
ResNet-50 weights load as they are.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from networks.registry import family
from util.checkpoint import CheckpointError, extract_state_dict, load_checkpoint, load_weights
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


def with_new_head(model: nn.Module, arch: str, *, pretrained: bool, pretrained_path: Path | None,
                  init_gain: float) -> nn.Module:
    """``model``, a torchvision classifier built with random weights, with torchvision's IMAGENET1K_V1 weights
    of ``arch`` (or ``pretrained_path``) when ``pretrained``, and its last layer replaced by Linear(features, 1)
    initialized with std ``init_gain``."""
    if pretrained or pretrained_path is not None:
        state = _imagenet_state_dict(arch, pretrained_path)
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            reason = str(err).splitlines()[0]
            raise UserError(f"{pretrained_path or arch}: not ImageNet weights of {arch}: {reason}") from None
    _replace_head(model, init_gain)
    return model


def build_model(
    arch: str = "resnet50",
    *,
    pretrained: bool = True,
    pretrained_path: Path | None = None,
    init_gain: float = 0.02,
) -> nn.Module:
    """The registered family ``arch``'s network with one logit; parameters that the family does not train are
    frozen. ``pretrained`` starts from the family's pretrained weights (or ``pretrained_path``); a family trained
    from scratch has none."""
    spec = family(arch)
    if spec.pretrained is None and (pretrained or pretrained_path is not None):
        raise UserError(f"{arch} is trained from scratch: it has no ImageNet weights (use --no_pretrained)")
    model = spec.build(pretrained=pretrained, pretrained_path=pretrained_path, init_gain=init_gain)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(spec.trains(name))
    return model


def restore(arch: str, state: dict[str, torch.Tensor], source: str, tower: object = None) -> nn.Module:
    """The family ``arch``'s network with a checkpoint's weights (``state``, from ``source``). A family whose
    checkpoints name their tower instead of holding it (``Family.tower``) reads the tower from its weights file,
    which must be the one that ``tower``, the checkpoint's record, names; ``state`` is then its head, with its
    prefix or without it (the authors' bare ``fc_weights.pth``)."""
    spec = family(arch)
    if spec.tower is None:
        model = build_model(arch, pretrained=False)
        load_weights(model, state, source, arch)
        return model
    if tower is not None and tower != spec.tower.record():
        raise CheckpointError(f"{source}: its head was trained over the tower {tower}, not over {arch}'s "
                              f"{spec.tower.record()}")
    head = spec.trained or ()  # a family with a tower names its head (Family checks)
    if len(head) == 1 and not any(key.startswith(head) for key in state):
        state = {head[0] + key: value for key, value in state.items()}
    model = build_model(arch, pretrained=True)
    load_weights(model, state, source, arch, only=head)
    return model
