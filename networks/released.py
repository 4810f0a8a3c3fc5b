"""The authors' two released ResNet-50 detectors: where they are, what their bytes must hash to, and the
``--model_path`` shorthand that names them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from util.download import Expected, fetch

WEIGHTS_DIR = Path("weights")


@dataclass(frozen=True)
class Released:
    url: str
    expected: Expected


# Sizes and hashes from the reference README (the hashes as recorded by a third party).
RELEASED = {
    "blur_jpg_prob0.5": Released(
        "https://www.dropbox.com/s/2g2jagq2jn1fd0i/blur_jpg_prob0.5.pth?dl=1",
        Expected(282_442_597, "3533f3e58a3b82215f21197f2faf4e99b911ec42a4a6e2d7823e04d5f3fd245a")),
    "blur_jpg_prob0.1": Released(
        "https://www.dropbox.com/s/h7tkpcgiwuftb6g/blur_jpg_prob0.1.pth?dl=1",
        Expected(282_442_597, "a73295ac66f9cb74d558ce3ade46f75e2f2997ed05eeed0f4b774623372058ea")),
}


def model_path(text: str) -> Path:
    """``--model_path`` values: a released model's name (``blur_jpg_prob0.5``) means ``weights/<name>.pth``; a
    training run's folder means its ``best.pth``."""
    if text in RELEASED:
        return WEIGHTS_DIR / f"{text}.pth"
    path = Path(text)
    return path / "best.pth" if (path / "best.pth").is_file() else path


def download_released(name: str, folder: Path = WEIGHTS_DIR) -> Path:
    """``<folder>/<name>.pth``, downloaded unless present, its size and sha256 checked either way."""
    release = RELEASED[name]
    dest = folder / f"{name}.pth"
    fetch(release.url, dest, release.expected)
    return dest
