"""CLIP's image tower (Radford et al. 2021, the vision transformer variant) and UnivFD's detector over it: the
tower's features, frozen, into one linear logit (Ojha, Li, Lee, CVPR 2023).

Parameter names are those of OpenAI's visual tower (``conv1``, ``class_embedding``, ``positional_embedding``,
``ln_pre``, ``transformer.resblocks.<i>.{ln_1,attn,ln_2,mlp.c_fc,mlp.c_proj}``, ``ln_post``, ``proj``), under
``visual.`` in ``UnivFD`` as in OpenAI's checkpoints, so their weights load as they are; the head is ``fc``, so the
authors' released ``fc_weights.pth`` is the head's own state dict.

OpenAI publishes the weights as a TorchScript archive. ``fetch_tower`` downloads it once, checks its sha256, and
keeps the image tower as a plain tensor file (``torch.load(weights_only=True)`` reads it); ``load_tower`` reads
that file and checks which download it came from.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from networks.registry import Tower
from util.checkpoint import CheckpointError, extract_state_dict, load_checkpoint, save_checkpoint
from util.download import Expected, fetch
from util.errors import UserError

PREFIX = "visual."


class QuickGELU(nn.Module):
    """The sigmoid approximation of GELU that CLIP was trained with: x * sigmoid(1.702 x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    """A pre-norm transformer layer: self-attention, then a 4x-wide MLP, each added to its input."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict(
            c_fc=nn.Linear(width, 4 * width), gelu=QuickGELU(), c_proj=nn.Linear(4 * width, width)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = self.ln_1(x)
        x = x + self.attn(normed, normed, normed, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class ImageTower(nn.Module):
    """Patches of ``patch_size`` embedded by one convolution, a class token, learned positions, ``layers``
    transformer layers; the class token's normalized state projected to ``output_dim`` features (CLIP's
    ``encode_image``). Inputs are ``image_size`` square: the positions are learned for that grid."""

    def __init__(self, *, image_size: int, patch_size: int, width: int, layers: int, heads: int,
                 output_dim: int) -> None:
        super().__init__()
        self.image_size = image_size
        tokens = (image_size // patch_size) ** 2 + 1
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        # CLIP's initialization (normal, std width^-0.5): only random towers (tests, speed measurements) keep it.
        self.class_embedding = nn.Parameter(torch.randn(width) * width**-0.5)
        self.positional_embedding = nn.Parameter(torch.randn(tokens, width) * width**-0.5)
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = nn.ModuleDict({"resblocks": nn.Sequential(*(Block(width, heads) for _ in range(layers)))})
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(torch.randn(width, output_dim) * width**-0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.image_size, self.image_size):
            raise UserError(f"CLIP's image tower takes {self.image_size}x{self.image_size} images, not "
                            f"{x.shape[-1]}x{x.shape[-2]}: test with a center crop of {self.image_size}")
        patches = self.conv1(x).flatten(2).transpose(1, 2)  # [batch, grid * grid, width]
        token = self.class_embedding.to(patches.dtype).expand(len(x), 1, -1)
        x = torch.cat([token, patches], dim=1) + self.positional_embedding.to(patches.dtype)
        x = self.transformer["resblocks"](self.ln_pre(x))
        return self.ln_post(x[:, 0]) @ self.proj


class UnivFD(nn.Module):
    """The frozen tower's features into ``fc``, one logit (sigmoid: the probability that the image is synthetic)."""

    def __init__(self, **tower: int) -> None:
        super().__init__()
        self.visual = ImageTower(**tower)
        self.fc = nn.Linear(tower["output_dim"], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The tower never trains: without a graph its activations are freed as it goes, and a step pays for the head.
        with torch.no_grad():
            features = self.visual(x)
        return self.fc(features)


def load_tower(tower: Tower) -> dict[str, torch.Tensor]:
    """The tower's weights (``visual.*`` keys) from ``tower.path``, which must have been made from the download
    whose sha256 is ``tower.sha256``."""
    if not tower.path.is_file():
        raise CheckpointError(f"{tower.path}: no such file: the weights of {tower.name} are needed; get them with "
                              f"`{tower.get}`")
    checkpoint = load_checkpoint(tower.path)
    source = checkpoint.get("source", {})
    made_from = source.get("sha256") if isinstance(source, dict) else None
    if made_from != tower.sha256:
        raise CheckpointError(f"{tower.path}: made from a file with sha256 {made_from}, not from {tower.name} "
                              f"(sha256 {tower.sha256}); delete it and run `{tower.get}`")
    return extract_state_dict(checkpoint)


def convert_archive(archive: Path, tower: Tower) -> None:
    """Keep the image tower of OpenAI's TorchScript archive (already checked against ``tower.sha256``) as a plain
    tensor file at ``tower.path``, in the archive's dtype (fp16), with the sha256 it was made from."""
    with warnings.catch_warnings():  # TorchScript is deprecated, but it is the format OpenAI publishes
        warnings.simplefilter("ignore", FutureWarning)
        state = torch.jit.load(archive, map_location="cpu").state_dict()
    visual = {key: value.clone() for key, value in state.items() if key.startswith(PREFIX)}
    if not visual:
        raise UserError(f"{archive}: no {PREFIX}* weights in this archive: not a CLIP model")
    save_checkpoint(tower.path, {"model": visual, "source": {"url": tower.url, "sha256": tower.sha256}})


def fetch_tower(tower: Tower) -> Path:
    """``tower.path``, made unless present: OpenAI's archive downloaded (resumable, sha256 checked), converted,
    and removed."""
    if tower.path.is_file():
        load_tower(tower)  # checks what it was made from
        return tower.path
    archive = tower.path.with_name(tower.url.rsplit("/", 1)[-1])
    fetch(tower.url, archive, Expected(sha256=tower.sha256))
    convert_archive(archive, tower)
    archive.unlink()
    return tower.path
