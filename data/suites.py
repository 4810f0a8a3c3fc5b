"""The test suites eval.py scores (``--suite NAME``), each read in its own published layout.

A suite is one object (``Suite``): it finds its sets under the folder it is given, pairs each fake set with the
reals it is scored against, names the mean its authors report and, where its papers agree on one, the test protocol
they score it with. ``SUITES`` is the one registry: eval.py's ``--suite`` and ``--protocol`` choose from it, and a
new suite is one entry there, a ``FolderSuite`` when each of its sets is a folder of fakes and a folder of reals
(in one or more published layouts), else an instance of a ``Suite`` subclass of its own.

Importing this module imports no image library: the images are listed when a suite is loaded.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from data.names import PROTOCOLS, Protocol
from networks.registry import Preprocessing
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
    test_protocol: Preprocessing | None = None
    """The test protocol its papers score every detector with, which eval.py then uses unless its flags name one;
    None: the detector's own (its checkpoint's record, else its family's)."""

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


def at_most(loaded: LoadedSet, count: int, seed: int = 0) -> LoadedSet:
    """``loaded`` with at most ``count`` of its reals and ``count`` of its fakes, each label's drawn by a shuffle
    seeded with ``seed`` (UnivFD's ``--max_sample``, which seeds with 0), kept in their listed order."""
    import numpy as np  # here, so that the options, which import this module, answer --help without it

    rng = np.random.default_rng(seed)
    kept: set[int] = set()
    for label in (0, 1):
        indices = [i for i, s in enumerate(loaded.samples) if s.label == label]
        kept.update(indices[i] for i in rng.permutation(len(indices))[:count])
    return loaded._replace(samples=[s for i, s in enumerate(loaded.samples) if i in kept])


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


@dataclass(frozen=True)
class Layout:
    """One published arrangement of a suite's folders: its name, as printed, and where each set lies in it."""

    name: str
    sets: tuple[SuiteSet, ...]


class FoundSet(NamedTuple):
    """A set found under a suite's folder: its reals and fakes, and the layout they were found in."""

    name: str
    reals: Path
    fakes: Path
    layout: str


@dataclass(frozen=True, kw_only=True)
class FolderSuite(Suite):
    """A suite whose sets are named folders of fakes, each scored against a named folder of reals (several sets
    may share one). Its data may be published in several layouts (the authors' archive and a repackaged copy):
    each set is read from the layout it is found in, and one found in two is an error."""

    layouts: tuple[Layout, ...]
    """The same sets in each; the first is the one its download (if any) unpacks to."""
    mean_sets: tuple[str, ...]
    mean_what: str
    """The mean its authors report, in words."""

    def __post_init__(self) -> None:
        names = self.set_names
        odd = [layout.name for layout in self.layouts if tuple(s.name for s in layout.sets) != names]
        if odd or not set(self.mean_sets) <= set(names):
            raise SuiteError(f"{self.name}: every layout must hold the sets {', '.join(names)} in this order, and "
                             f"the mean must be over some of them (layouts that differ: {', '.join(odd) or 'none'})")

    @property
    def set_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.layouts[0].sets)

    def own_headline(self) -> Headline:
        return Headline(self.mean_sets, f"the {len(self.mean_sets)} sets of {self.title} ({self.mean_what})")

    def locate(self, root: Path, names: Sequence[str] | None = None) -> tuple[list[FoundSet], list[str]]:
        """(each set present under ``root``, in the suite's order or that of ``names``; the sets missing, each as
        "name (the folders expected)")."""
        if not root.is_dir():
            raise SuiteError(f"{root}: no such folder. {self.title}: {self.source}")
        unknown = [n for n in names or () if n not in self.set_names]
        if unknown:
            raise SuiteError(f"--sets {','.join(unknown)}: not in --suite {self.name} ({', '.join(self.set_names)})")
        found, missing = [], []
        for name in names or self.set_names:
            entries = [(layout.name, next(s for s in layout.sets if s.name == name)) for layout in self.layouts]
            hits = []
            for layout, entry in entries:
                reals, fakes = _one_folder(root, entry.reals), _one_folder(root, entry.fakes)
                if reals is not None and fakes is not None:
                    hits.append(FoundSet(name, reals, fakes, layout))
            if len(hits) > 1:
                raise SuiteError(f"{root}: {name} is there both as {hits[0].layout} and as {hits[1].layout} "
                                 f"({hits[0].fakes.relative_to(root)} with {hits[0].reals.relative_to(root)}, "
                                 f"{hits[1].fakes.relative_to(root)} with {hits[1].reals.relative_to(root)}); "
                                 f"keep one")
            if hits:
                found.append(hits[0])
            else:
                expected = " or ".join(dict.fromkeys(f"{e.fakes} and {e.reals}" for _, e in entries))
                missing.append(f"{name} ({expected})")
        if not found:
            raise SuiteError(f"{root}: none of the {self.name} sets is there (expected, e.g., {missing[0]}). "
                             f"{self.title}: {self.source}")
        return found, missing

    def load(self, root: Path, names: Sequence[str] | None = None) -> list[LoadedSet]:
        from data.datasets import DatasetError, left_out_note, walk_files, walked_samples

        found, missing = self.locate(root, names)
        if missing:
            print(f"{self.name}: {len(missing)} sets not under {root}, left out: {'; '.join(missing)}")
        if len(self.layouts) > 1:  # which layout was recognized, set by set where they are mixed
            for layout in dict.fromkeys(f.layout for f in found):
                print(f"{self.name}, read as {layout}: {', '.join(f.name for f in found if f.layout == layout)}")
        sets = []
        for name, reals, fakes, _ in found:
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
_UNIVFD = ("guided", *_UNIVFD_LAION)
_SYNTHBUSTER = ("dalle2", "dalle3", "firefly", "midjourney-v5", "stable-diffusion-1-3", "stable-diffusion-1-4",
                "stable-diffusion-2", "stable-diffusion-xl", "glide")
_GENIMAGE = ("Midjourney", "stable_diffusion_v_1_4", "stable_diffusion_v_1_5", "ADM", "glide", "wukong", "VQDM",
             "BigGAN")
GENIMAGE_TRAINING = "stable_diffusion_v_1_4"  # NPR's (and the GenImage paper's) training set, their sdv4
_WILDRF = ("reddit", "twitter", "facebook")
SYNTHBUSTER_REALS = "raise1k"

SUITES: dict[str, Suite] = {suite.name: suite for suite in (
    ForenSynths(
        name="forensynths", title="ForenSynths (Wang et al., CVPR 2020)",
        source="python -m dataset.download test (Hugging Face mirror, checksummed)"),
    FolderSuite(
        name="univfd", title="UnivFD diffusion_datasets (Ojha et al., CVPR 2023)",
        # UnivFD's dataset_paths.py pairs guided with imagenet/ and the other 7 with laion/; NPR's copy gives each
        # set its own reals.
        layouts=(Layout("UnivFD's zip (reals in imagenet/ and laion/)",
                        (SuiteSet("guided", "guided/1_fake", "imagenet/0_real"),
                         *_paired(_UNIVFD_LAION, "{name}/1_fake", "laion/0_real"))),
                 Layout("NPR's copy (<set>/{0_real,1_fake})", _paired(_UNIVFD, "{name}/1_fake", "{name}/0_real"))),
        mean_sets=_UNIVFD,
        mean_what="AP and accuracy averaged over its 8 diffusion and autoregressive sets",
        source="Google Drive only, in either of two layouts. UnivFD's own zip, "
        "https://drive.google.com/file/d/1FXlGIRh_Ud3cScMgSVDbEWmPDmjcrm1t : unzip it so that the suite folder holds "
        "imagenet/0_real, laion/0_real and <set>/1_fake for " + ", ".join(_UNIVFD) + ". Or NPR's copy, the folder "
        "https://drive.google.com/drive/folders/1nkCXClC7kFM01_fqmLrVNtnOYEFPtWO- (one archive per set): extract "
        "each archive in the suite folder, so that it holds <set>/0_real and <set>/1_fake for each set"),
    FolderSuite(
        name="synthbuster", title="Synthbuster (Bammey, IEEE OJSP 2023)",
        layouts=(Layout("Zenodo's archive", _paired(_SYNTHBUSTER, "{name}", SYNTHBUSTER_REALS)),),
        mean_sets=_SYNTHBUSTER,
        mean_what="AP and accuracy averaged over its 9 generators, each against the RAISE-1k photographs",
        source="python -m dataset.download synthbuster (Zenodo record 10066460, md5 checked); the RAISE-1k reals "
        "are behind a form at http://loki.disi.unitn.it/RAISE/download.html : put the 1,000 images of RAISE_1k.csv "
        f"in <suite folder>/{SYNTHBUSTER_REALS}/"),
    FolderSuite(
        name="genimage", title="GenImage (Zhu et al., NeurIPS 2023)",
        layouts=(Layout("the archives' layout (<generator>/<subfolder>/val)",
                        _paired(_GENIMAGE, "{name}/*/val/ai", "{name}/*/val/nature")),
                 Layout("GenImage's README tree (<generator>/val)",
                        _paired(_GENIMAGE, "{name}/val/ai", "{name}/val/nature"))),
        mean_sets=tuple(g for g in _GENIMAGE if g != GENIMAGE_TRAINING),
        mean_what=f"NPR's mean: AP and accuracy averaged over its 7 generators other than {GENIMAGE_TRAINING}, the "
        "training set (the GenImage paper's Avg Acc averages all 8)",
        test_protocol=Preprocessing(crop_size=224, tile=True, source="NPR's GenImage protocol"),
        source="Google Drive or Baidu only: https://github.com/GenImage-Dataset/GenImage ; unpack each generator's "
        "archive so that <generator>/<subfolder>/val/{ai,nature} (or, as the README draws it, "
        "<generator>/val/{ai,nature}) exist for " + ", ".join(_GENIMAGE)),
    FolderSuite(
        name="wildrf", title="WildRF (Cavia et al., 2024)",
        layouts=(Layout("the zip's layout", _paired(_WILDRF, "test/{name}/1_fake", "test/{name}/0_real")),),
        mean_sets=_WILDRF,
        mean_what="the mean AP is the mAP of the WildRF README's headline (93.7% for LaDeDa), and the mean "
        "accuracy its code prints beside it",
        source="Google Drive only (link in the WildRF repository, https://github.com/barcavia/RealTime-DeepfakeDetection-"
        "in-the-RealWorld); unpack it so that test/{reddit,twitter,facebook}/{0_real,1_fake} exist"),
)}
