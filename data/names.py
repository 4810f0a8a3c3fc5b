"""The names users choose from, with no image library imported: label folders, the paper's sets and classes,
the evaluation protocols, resize interpolations and JPEG encoders. Options and configs read them from here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from util.errors import ConfigError

LABEL_FOLDERS = {"0_real": 0, "1_fake": 1}
INTERPOLATIONS = ("bilinear", "bicubic", "lanczos", "nearest")
JPEG_METHODS = ("cv2", "pil")

# Table 2's order: the paper's 11 sets, then the two added after publication.
PAPER_TEST_SETS = ("progan", "stylegan", "biggan", "cyclegan", "stargan", "gaugan", "crn", "imle", "seeingdark",
                   "san", "deepfake", "stylegan2", "whichfaceisreal")
PAPER_MEAN_SETS = PAPER_TEST_SETS[:11]
# The 20 LSUN object classes of the ProGAN training and validation sets.
PAPER_TRAIN_CLASSES = ("airplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
                       "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
                       "tvmonitor")


@dataclass(frozen=True)
class Protocol:
    """Which ProGAN classes to train on and which sets to test on (their mean is the headline number)."""

    classes: tuple[str, ...]
    test_sets: tuple[str, ...]
    mean_sets: tuple[str, ...]
    description: str


_FOUR_CLASS_SETS = ("progan", "stylegan", "stylegan2", "biggan", "cyclegan", "stargan", "gaugan", "deepfake")
PROTOCOLS = {
    "wang2020": Protocol(PAPER_TRAIN_CLASSES, PAPER_TEST_SETS, PAPER_MEAN_SETS,
                         "the paper's: 20 ProGAN classes; 13 test sets, Table 2's mean over the first 11"),
    # Used by later detectors (NPR, FreqNet, LGrad) to compare with each other.
    "4class": Protocol(("car", "cat", "chair", "horse"), _FOUR_CLASS_SETS, _FOUR_CLASS_SETS,
                       "4 ProGAN classes (car, cat, chair, horse); 8 test sets, mean over all 8"),
}


def protocol_list(protocol: str, kind: str, given: Sequence[str] | None, flag: str,
                  protocols: Mapping[str, Protocol] = PROTOCOLS) -> tuple[str, ...]:
    """The named protocol's ``kind`` list ("classes" or "test_sets"), a key of ``protocols``; ``given`` (the
    user's ``flag``) may only repeat it."""
    if protocol not in protocols:
        raise ConfigError(f"--protocol {protocol}: choose one of {', '.join(protocols)}")
    names = getattr(protocols[protocol], kind)
    if given is not None and tuple(given) != names:
        raise ConfigError(f"--protocol and {flag} exclude each other")
    return names
