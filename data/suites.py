"""The test suites the field uses, each read in its own published layout: which folder holds each fake set and
which reals it is scored against, and the mean its authors report. Paths only: no image library is imported.

ForenSynths (the paper's) keeps its own discovery (``data.datasets.find_test_sets``): each set holds its reals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from data.names import PAPER_MEAN_SETS, PAPER_TEST_SETS
from util.errors import UserError


@dataclass(frozen=True)
class SuiteSet:
    """One fake set and the reals it is scored against, as glob patterns below the suite's folder (each must
    match exactly one folder)."""

    name: str
    fakes: str
    reals: str


@dataclass(frozen=True)
class Suite:
    title: str
    sets: tuple[SuiteSet, ...] | None
    """None: ForenSynths, whose sets are found by their 0_real/1_fake folders."""
    mean_sets: tuple[str, ...]
    headline: str
    """The mean its authors report, in words."""
    source: str
    """Where the data is published, and how to get it."""


def _paired(names: Sequence[str], fake: str, real: str) -> tuple[SuiteSet, ...]:
    """One set per name; ``{name}`` in the patterns is the set's folder, named as the set."""
    return tuple(SuiteSet(name, fake.format(name=name), real.format(name=name)) for name in names)


_UNIVFD_LAION = ("ldm_200", "ldm_200_cfg", "ldm_100", "glide_100_27", "glide_50_27", "glide_100_10", "dalle")
_SYNTHBUSTER = ("dalle2", "dalle3", "firefly", "midjourney-v5", "stable-diffusion-1-3", "stable-diffusion-1-4",
                "stable-diffusion-2", "stable-diffusion-xl", "glide")
_GENIMAGE = ("Midjourney", "stable_diffusion_v_1_4", "stable_diffusion_v_1_5", "ADM", "glide", "wukong", "VQDM",
             "BigGAN")
_WILDRF = ("reddit", "twitter", "facebook")
SYNTHBUSTER_REALS = "raise1k"

SUITES = {
    "forensynths": Suite(
        "ForenSynths (Wang et al., CVPR 2020)", None, PAPER_MEAN_SETS,
        f"Table 2: AP and accuracy averaged over the first {len(PAPER_MEAN_SETS)} of its {len(PAPER_TEST_SETS)} sets",
        "python -m dataset.download test (Hugging Face mirror, checksummed)"),
    "univfd": Suite(
        "UnivFD diffusion_datasets (Ojha et al., CVPR 2023)",
        (SuiteSet("guided", "guided/1_fake", "imagenet/0_real"),
         *_paired(_UNIVFD_LAION, "{name}/1_fake", "laion/0_real")),
        ("guided", *_UNIVFD_LAION),
        "AP and accuracy averaged over its 8 diffusion and autoregressive sets",
        "Google Drive only: https://drive.google.com/drive/folders/1nkCXClC7kFM01_fqmLrVNtnOYEFPtWO- ; unpack "
        "diffusion_datasets/ so that it holds guided/1_fake, imagenet/0_real, laion/0_real and <set>/1_fake for "
        + ", ".join(_UNIVFD_LAION)),
    "synthbuster": Suite(
        "Synthbuster (Bammey, IEEE OJSP 2023)",
        _paired(_SYNTHBUSTER, "{name}", SYNTHBUSTER_REALS), _SYNTHBUSTER,
        "AP and accuracy averaged over its 9 generators, each against the RAISE-1k photographs",
        "python -m dataset.download synthbuster (Zenodo record 10066460, md5 checked); the RAISE-1k reals are "
        "behind a form at http://loki.disi.unitn.it/RAISE/download.html : put the 1,000 images of RAISE_1k.csv "
        f"in <suite folder>/{SYNTHBUSTER_REALS}/"),
    "genimage": Suite(
        "GenImage (Zhu et al., NeurIPS 2023)",
        _paired(_GENIMAGE, "{name}/*/val/ai", "{name}/*/val/nature"), _GENIMAGE,
        "accuracy averaged over its 8 generators (the paper reports accuracy)",
        "Google Drive or Baidu only: https://github.com/GenImage-Dataset/GenImage ; unpack each generator's "
        "archive so that <generator>/<subfolder>/val/{ai,nature} exist for " + ", ".join(_GENIMAGE)),
    "wildrf": Suite(
        "WildRF (Cavia et al., 2024)",
        _paired(_WILDRF, "test/{name}/1_fake", "test/{name}/0_real"), _WILDRF,
        "accuracy averaged over its 3 platforms (the paper reports accuracy)",
        "Google Drive only (link in the WildRF repository, https://github.com/barcavia/RealTime-DeepfakeDetection-"
        "in-the-RealWorld); unpack it so that test/{reddit,twitter,facebook}/{0_real,1_fake} exist"),
}


class SuiteError(UserError):
    pass


def _one_folder(root: Path, pattern: str) -> Path | None:
    """The folder ``pattern`` names below ``root``; None when absent; an error when it is ambiguous."""
    matches = sorted(p for p in root.glob(pattern) if p.is_dir())
    if len(matches) > 1:
        raise SuiteError(f"{root}: {pattern} matches {len(matches)} folders ({', '.join(map(str, matches[:3]))}); "
                         f"keep one")
    return matches[0] if matches else None


def find_suite_sets(suite: str, root: Path, names: Sequence[str] | None = None
                    ) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """((name, reals folder, fakes folder) of each set of ``suite`` present under ``root``, in the suite's order or
    that of ``names``; the sets missing, each as "name (the folders expected)")."""
    spec = SUITES[suite]
    assert spec.sets is not None, "ForenSynths sets are found by data.datasets.find_test_sets"
    if not root.is_dir():
        raise SuiteError(f"{root}: no such folder. {spec.title}: {spec.source}")
    by_name = {s.name: s for s in spec.sets}
    unknown = [n for n in names or () if n not in by_name]
    if unknown:
        raise SuiteError(f"--sets {','.join(unknown)}: not in --suite {suite} ({', '.join(by_name)})")
    found, missing = [], []
    for name in names or by_name:
        entry = by_name[name]
        reals, fakes = _one_folder(root, entry.reals), _one_folder(root, entry.fakes)
        if reals is None or fakes is None:
            missing.append(f"{name} ({entry.fakes} and {entry.reals})")
        else:
            found.append((name, reals, fakes))
    if not found:
        raise SuiteError(f"{root}: none of the {suite} sets is there (expected, e.g., {missing[0]}). "
                         f"{spec.title}: {spec.source}")
    return found, missing
