"""UnivFD (Ojha, Li, Lee, CVPR 2023; the network is ``networks.clip``): a linear head over the frozen image tower
of OpenAI's CLIP ViT-L/14, CLIP's normalization, tested on center crops of 224 without resizing, as the authors'
validate.py. Only the head trains and only the head is in its checkpoints, which name the tower by sha256."""

from __future__ import annotations

from collections.abc import Set
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from networks.registry import Family, Preprocessing, Tower, register

if TYPE_CHECKING:
    from torch import nn

# CLIP's own input statistics (OpenAI's preprocessing, which the authors' datasets.py uses).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class VitConfig:
    """The shape of a CLIP image tower (``networks.clip.ImageTower``'s arguments)."""

    image_size: int
    patch_size: int
    width: int
    layers: int
    heads: int
    output_dim: int


VIT_L14 = VitConfig(image_size=224, patch_size=14, width=1024, layers=24, heads=16, output_dim=768)
# OpenAI's download; the folder in the URL is the file's sha256, which OpenAI's own loader checks too.
CLIP_VIT_L14 = Tower(
    name="OpenAI CLIP ViT-L/14 image tower",
    url="https://openaipublic.azureedge.net/clip/models/"
        "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
    sha256="b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836",
    path=Path("weights/clip_vit_l14_visual.pth"), get="python -m weights.download univfd")
HEAD = ("fc.",)


def recognizes(keys: Set[str]) -> bool:
    """Its checkpoints hold the head alone: ``fc.*``, or the authors' bare ``fc_weights.pth`` (weight, bias)."""
    return set(keys) in ({"fc.weight", "fc.bias"}, {"weight", "bias"})


def build(config: VitConfig, tower: Tower, *, pretrained: bool, pretrained_path: Path | None,
          init_gain: float) -> nn.Module:
    from torch import nn

    from networks.clip import UnivFD, load_tower
    from util.checkpoint import load_weights

    model = UnivFD(**asdict(config))
    if pretrained:
        load_weights(model, load_tower(tower), str(tower.path), "univfd", only=("visual.",))
    nn.init.normal_(model.fc.weight, 0.0, init_gain)  # as the authors' trainer; PyTorch's default bias
    return model


def spec(name: str, config: VitConfig, tower: Tower, note: str = "") -> Family:
    """UnivFD's family over a tower of this shape and these weights (tests make small ones)."""
    return Family(name=name, build=partial(build, config, tower), mean=CLIP_MEAN, std=CLIP_STD,
                  pretrained=tower.name, recognizes=recognizes, recipe="univfd", trained=HEAD, tower=tower,
                  test_protocol=Preprocessing(crop_size=config.image_size, source="UnivFD's validate.py"),
                  note=note)


register(spec("univfd", VIT_L14, CLIP_VIT_L14, note="UnivFD: a linear head over frozen CLIP ViT-L/14"))
