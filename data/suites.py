"""The test suites eval.py scores (``--suite NAME``), each read in its own published layout.

A suite is one object (``Suite``): it finds its sets under the folder it is given, pairs each fake set with the
reals it is scored against, and names the mean its authors report. ``SUITES`` is the one registry: eval.py's
``--suite`` and ``--protocol`` choose from it, and a new suite is one entry there, a ``FolderSuite`` when each of
its sets is a folder of fakes and a folder of reals, else an instance of a ``Suite`` subclass of its own.

Importing this module imports no image library: the images are listed when a suite is loaded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from data.names import PROTOCOLS, Protocol
from util.errors import UserError

if TYPE_CHECKING:
    from data.datasets import Sample


class LoadedSet(NamedTuple):
    """One set to score: its fakes and the reals paired with them."""

    name: str
    folder: Path
    """The folder that stands for the set (``--calibrate_on`` may name it): the set's, or its fakes'."""
    samples: list[Sample]


@dataclass(frozen=True)
class Headline:
    """The suite's headline number: the mean over ``sets``, and what that mean is, in words."""

    sets: tuple[str, ...]
    what: str


@dataclass(frozen=True, kw_only=True)
class Suite(ABC):
    """A test suite: where its data comes from, how its sets are found and paired with their reals, and which mean
    is its headline number. eval.py asks it nothing else."""

    name: str
    """Its key in SUITES, as --suite names it."""
    title: str
    """Its name and paper, as printed."""
    source: str
    """Where its data is published, and how to get it."""

    @abstractmethod
    def load(self, root: Path, names: Sequence[str] | None = None) -> list[LoadedSet]:
        """Each set under ``root``, in the suite's published layout, with the reals it is scored against: those
        ``names``, in that order, or every set there, in the suite's order. What is left out is printed."""

    @abstractmethod
    def own_headline(self) -> Headline:
        """The mean its authors report."""

    @property
    def protocols(self) -> Mapping[str, Protocol]:
        """The named lists of its sets that --protocol chooses, each with its own headline sets."""
        return {}

    def headline(self, protocol: str | None = None) -> Headline:
        """The headline of this run: the chosen protocol's mean, else the suite's own."""
        if protocol is None:
            return self.own_headline()
        sets = self.protocols[protocol].mean_sets
        return Headline(sets, f"the {len(sets)} sets of the {protocol} protocol")


class SuiteError(UserError):
    pass


@dataclass(frozen=True, kw_only=True)
class ForenSynths(Suite):
    """Each set is a folder that holds its own reals and fakes: ``<set>/{0_real,1_fake}`` or
    ``<set>/<subclass>/{0_real,1_fake}`` (pooled); any such folder is a set, and ``root`` may be one set."""

    def load(self, root: Path, names: Sequence[str] | None = None) -> list[LoadedSet]:
        from data.datasets import find_test_sets, left_out_note, scan_folder, walk_files

        folders = find_test_sets(root, names)
        if names is None and folders[0][1] != root:  # a folder of sets, all taken
            found = {name for name, _ in folders}
            ignored = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in found)
            if ignored:
                print(f"ignored under {root} (no 0_real/1_fake folders): {', '.join(ignored)}")
        for name, path in folders:
            note = left_out_note(walk_files(path).others)
            if note:
                print(f"{name}: {note}")
        return [LoadedSet(name, path, scan_folder(path)) for name, path in folders]

    def own_headline(self) -> Headline:
        return self.headline("wang2020")  # Table 2's mean is the paper's protocol's

    @property
    def protocols(self) -> Mapping[str, Protocol]:
        return PROTOCOLS


@dataclass(frozen=True)
class SuiteSet:
    """One fake set and the reals it is scored against, as glob patterns below the suite's folder (each must
    match exactly one folder)."""

    name: str
    fakes: str
    reals: str


@dataclass(frozen=True, kw_only=True)
class FolderSuite(Suite):
    """A suite whose sets are named folders of fakes, each scored against a named folder of reals (several sets
    may share one)."""

    sets: tuple[SuiteSet, ...]
    mean_sets: tuple[str, ...]
    mean_what: str
    """The mean its authors report, in words."""

    def own_headline(self) -> Headline:
        return Headline(self.mean_sets, f"the {len(self.mean_sets)} sets of {self.title} ({self.mean_what})")

    def locate(self, root: Path, names: Sequence[str] | None = None
               ) -> tuple[list[tuple[str, Path, Path]], list[str]]:
        """((name, reals folder, fakes folder) of each set present under ``root``, in the suite's order or that
        of ``names``; the sets missing, each as "name (the folders expected)")."""
        if not root.is_dir():
            raise SuiteError(f"{root}: no such folder. {self.title}: {self.source}")
        by_name = {s.name: s for s in self.sets}
        unknown = [n for n in names or () if n not in by_name]
        if unknown:
            raise SuiteError(f"--sets {','.join(unknown)}: not in --suite {self.name} ({', '.join(by_name)})")
        found, missing = [], []
        for name in names or by_name:
            entry = by_name[name]
            reals, fakes = _one_folder(root, entry.reals), _one_folder(root, entry.fakes)
            if reals is None or fakes is None:
                missing.append(f"{name} ({entry.fakes} and {entry.reals})")
            else:
                found.append((name, reals, fakes))
        if not found:
            raise SuiteError(f"{root}: none of the {self.name} sets is there (expected, e.g., {missing[0]}). "
                             f"{self.title}: {self.source}")
        return found, missing

    def load(self, root: Path, names: Sequence[str] | None = None) -> list[LoadedSet]:
        from data.datasets import DatasetError, left_out_note, walk_files, walked_samples

        found, missing = self.locate(root, names)
        if missing:
            print(f"{self.name}: {len(missing)} sets not under {root}, left out: {'; '.join(missing)}")
        sets = []
        for name, reals, fakes in found:
            samples = []
            for label, folder in enumerate((reals, fakes)):
                samples += walked_samples(folder, label)
                note = left_out_note(walk_files(folder).others)
                if note:
                    print(f"{name} ({folder}): {note}")
            if not any(s.refused is None for s in samples):
                raise DatasetError(f"{name}: no images in {reals} or {fakes}")
            sets.append(LoadedSet(name, fakes, samples))
        return sets


def _one_folder(root: Path, pattern: str) -> Path | None:
    """The folder ``pattern`` names below ``root``; None when absent; an error when it is ambiguous."""
    matches = sorted(p for p in root.glob(pattern) if p.is_dir())
    if len(matches) > 1:
        raise SuiteError(f"{root}: {pattern} matches {len(matches)} folders ({', '.join(map(str, matches[:3]))}); "
                         f"keep one")
    return matches[0] if matches else None


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

SUITES: dict[str, Suite] = {suite.name: suite for suite in (
    ForenSynths(
        name="forensynths", title="ForenSynths (Wang et al., CVPR 2020)",
        source="python -m dataset.download test (Hugging Face mirror, checksummed)"),
    FolderSuite(
        name="univfd", title="UnivFD diffusion_datasets (Ojha et al., CVPR 2023)",
        sets=(SuiteSet("guided", "guided/1_fake", "imagenet/0_real"),
              *_paired(_UNIVFD_LAION, "{name}/1_fake", "laion/0_real")),
        mean_sets=("guided", *_UNIVFD_LAION),
        mean_what="AP and accuracy averaged over its 8 diffusion and autoregressive sets",
        source="Google Drive only: https://drive.google.com/drive/folders/1nkCXClC7kFM01_fqmLrVNtnOYEFPtWO- ; unpack "
        "diffusion_datasets/ so that it holds guided/1_fake, imagenet/0_real, laion/0_real and <set>/1_fake for "
        + ", ".join(_UNIVFD_LAION)),
    FolderSuite(
        name="synthbuster", title="Synthbuster (Bammey, IEEE OJSP 2023)",
        sets=_paired(_SYNTHBUSTER, "{name}", SYNTHBUSTER_REALS), mean_sets=_SYNTHBUSTER,
        mean_what="AP and accuracy averaged over its 9 generators, each against the RAISE-1k photographs",
        source="python -m dataset.download synthbuster (Zenodo record 10066460, md5 checked); the RAISE-1k reals "
        "are behind a form at http://loki.disi.unitn.it/RAISE/download.html : put the 1,000 images of RAISE_1k.csv "
        f"in <suite folder>/{SYNTHBUSTER_REALS}/"),
    FolderSuite(
        name="genimage", title="GenImage (Zhu et al., NeurIPS 2023)",
        sets=_paired(_GENIMAGE, "{name}/*/val/ai", "{name}/*/val/nature"), mean_sets=_GENIMAGE,
        mean_what="accuracy averaged over its 8 generators (the paper reports accuracy)",
        source="Google Drive or Baidu only: https://github.com/GenImage-Dataset/GenImage ; unpack each generator's "
        "archive so that <generator>/<subfolder>/val/{ai,nature} exist for " + ", ".join(_GENIMAGE)),
    FolderSuite(
        name="wildrf", title="WildRF (Cavia et al., 2024)",
        sets=_paired(_WILDRF, "test/{name}/1_fake", "test/{name}/0_real"), mean_sets=_WILDRF,
        mean_what="accuracy averaged over its 3 platforms (the paper reports accuracy)",
        source="Google Drive only (link in the WildRF repository, https://github.com/barcavia/RealTime-DeepfakeDetection-"
        "in-the-RealWorld); unpack it so that test/{reddit,twitter,facebook}/{0_real,1_fake} exist"),
)}
