"""The authors' released detectors: the paper's two ResNet-50s and UnivFD's head (with the CLIP tower it needs),
where they are, what their bytes must hash to, and the ``--model_path`` shorthand that names them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from networks.families.univfd import CLIP_VIT_L14
from networks.registry import Tower
from util.download import Expected, fetch

WEIGHTS_DIR = Path("weights")


@dataclass(frozen=True)
class Released:
    url: str
    expected: Expected
    tower: Tower | None = None
    """The frozen tower that the file's head runs over, downloaded with it."""


# Sizes and hashes of the ResNet-50s from the reference README (the hashes as recorded by a third party); UnivFD's
# head as it is in the authors' repository (pretrained_weights/fc_weights.pth, 4,083 bytes).
RELEASED = {
    "blur_jpg_prob0.5": Released(
        "https://www.dropbox.com/s/2g2jagq2jn1fd0i/blur_jpg_prob0.5.pth?dl=1",
        Expected(282_442_597, "3533f3e58a3b82215f21197f2faf4e99b911ec42a4a6e2d7823e04d5f3fd245a")),
    "blur_jpg_prob0.1": Released(
        "https://www.dropbox.com/s/h7tkpcgiwuftb6g/blur_jpg_prob0.1.pth?dl=1",
        Expected(282_442_597, "a73295ac66f9cb74d558ce3ade46f75e2f2997ed05eeed0f4b774623372058ea")),
    "univfd": Released(
        "https://github.com/WisconsinAIVision/UniversalFakeDetect/raw/main/pretrained_weights/fc_weights.pth",
        Expected(4_083, "477100745713bcc957beb2b40859536859b6483fd6301b3b9293151b194c7847"), CLIP_VIT_L14),
}
# What `python -m weights.download` fetches without names: the paper's models (UnivFD's tower is 0.9 GB more).
DEFAULT_DOWNLOADS = ("blur_jpg_prob0.5", "blur_jpg_prob0.1")


def model_path(text: str) -> Path:
    """``--model_path`` values: a released model's name (``blur_jpg_prob0.5``) means ``weights/<name>.pth``; a
    training run's folder means its ``best.pth``."""
    if text in RELEASED:
        return WEIGHTS_DIR / f"{text}.pth"
    path = Path(text)
    return path / "best.pth" if (path / "best.pth").is_file() else path


def download_released(name: str, folder: Path = WEIGHTS_DIR) -> Path:
    """``<folder>/<name>.pth``, downloaded unless present, its size and sha256 checked either way (the tower a head
    needs comes with ``networks.clip.fetch_tower``)."""
    release = RELEASED[name]
    dest = folder / f"{name}.pth"
    fetch(release.url, dest, release.expected)
    return dest
