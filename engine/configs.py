"""The configs of the engine's commands (train.py, eval.py) and the runtime settings every command shares:
frozen dataclasses, validated on construction, whose field names are the flags. This module imports no image or
deep-learning library, so the options can build them and answer ``--help`` at once; what the configs make for
the engine (transforms, perturbations) is imported when asked for.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data.augment import AugmentConfig
from data.names import JPEG_METHODS, PROTOCOLS, Protocol, protocol_list
from data.suites import SUITES
from networks import family, help_text, names
from networks.released import RELEASED, model_path
from util.errors import ConfigError
from util.fields import (
    UNSET,
    Check,
    Options,
    between,
    default_of,
    each,
    nonempty,
    nonneg,
    option,
    options_of,
    positive,
    probability,
    shown,
    words,
)

if TYPE_CHECKING:
    import torch

    from data.transforms import EvalTransform, Perturbation
    from networks import Preprocessing

AMP_CHOICES = ("off", "bf16", "fp16")
MAX_AUTO_WORKERS = 16
MEGAPIXELS_HELP = "larger images (by their header) are not decoded: skipped and listed"
BUDGET_HELP = ("memory for a batch of whole images, in GiB: they are batched within it, and one that alone needs "
               "more is listed (default: half the free memory, at most 4 GiB)")
NONFINITE_HELP = "load weights that hold NaN or infinite values (refused by default)"


def _device(value: str) -> str | None:
    if value in ("auto", "cpu", "cuda") or (value.startswith("cuda:") and value[5:].isdigit()):
        return None
    return "choose auto, cpu, cuda or cuda:N"


def _workers(text: str) -> int | str:
    return "auto" if text == "auto" else int(text)


def _workers_check(value: int | str) -> str | None:
    return None if value == "auto" or (isinstance(value, int) and value >= 0) else "give auto or a number >= 0"


@dataclass(frozen=True, kw_only=True)
class Compute(Options):
    """How fast a command computes; never what it computes (up to float rounding)."""

    amp: str = option("off", "autocast precision (fp16 training also uses a gradient scaler)", choices=AMP_CHOICES)
    num_workers: int | str = option(
        "auto", f"DataLoader worker processes: auto = one per available CPU (at most {MAX_AUTO_WORKERS}) on CUDA, "
        "0 on CPU; "
        "0 = load in the main process", parse=_workers, check=_workers_check, flags=("--num_threads",))
    debug: bool = option(False, "show tracebacks instead of one-line errors")


@dataclass(frozen=True, kw_only=True)
class Runtime(Compute):
    """Where and how fast a command computes."""

    device: str = option("auto", "auto = cuda when available, else cpu; under torchrun each process takes "
                         "cuda:LOCAL_RANK", check=_device)

    @property
    def runtime(self) -> dict[str, Any]:
        """These settings alone, to pass on to the config of a command this one runs."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(Runtime)}


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_workers(setting: int | str, device: torch.device) -> int:
    """``auto``: on CUDA, one loader worker per available CPU (at most MAX_AUTO_WORKERS), so the GPU is fed; on
    CPU none, because the model's threads already use every core and loading in the main process costs a few
    percent of a step (measured: 2 workers slowed training on 2 cores to 0.66 of the in-process speed)."""
    if setting != "auto":
        return int(setting)
    return min(available_cpus(), MAX_AUTO_WORKERS) if device.type == "cuda" else 0


def describe_preprocessing(resize: int | None, square: bool, crop_size: int | None, tile: bool = False) -> str:
    if not resize:
        text = "no resize"
    else:
        text = f"resize to {resize}x{resize}" if square else f"resize shorter side to {resize}"
    if tile:
        text += f", a side under {crop_size} tiled up to it"
    return f"{text}, " + ("whole image" if crop_size is None else f"center crop {crop_size}")


@dataclass(frozen=True)
class TestProtocol:
    """How test images reach the detector: an optional resize (of the shorter side, or of both sides with
    ``square``), then a center crop (zero-padded when the image is smaller, or with ``tile`` filled with copies of
    it, as NPR's GenImage code does) or the whole image."""

    __test__ = False  # a name pytest would otherwise collect where tests import it

    crop_size: int | None = 224
    """None: the whole image."""
    resize: int | None = None
    square: bool = False
    tile: bool = False
    """Fill the crop with copies of an image smaller than it (``data.transforms.tile``) rather than zeros."""

    def __post_init__(self) -> None:
        if self.tile and self.crop_size is None:
            raise ConfigError("tiling fills a center crop: a protocol that tiles needs a crop size")

    def describe(self) -> str:
        return describe_preprocessing(self.resize, self.square, self.crop_size, self.tile)

    def transform(self, perturbation: Perturbation | None = None) -> EvalTransform:
        from data.transforms import EvalTransform, Perturbation

        return EvalTransform(crop_size=self.crop_size, resize=self.resize, square=self.square, tile=self.tile,
                             perturbation=perturbation or Perturbation())

    def record(self) -> dict[str, int | bool | None]:
        # "tile" only when set: the records of other protocols stay as earlier releases wrote and read them.
        return {"crop_size": self.crop_size, "resize": self.resize, "square": self.square} | (
            {"tile": True} if self.tile else {})

    @classmethod
    def of(cls, default: Preprocessing) -> TestProtocol:
        """A family's or a suite's protocol (plain data in networks/)."""
        return cls(crop_size=default.crop_size, resize=default.resize, square=default.square, tile=default.tile)


PAPER_PROTOCOL = TestProtocol()  # Table 2: no resize, center crop 224
# Test protocols by name (eval.py --preprocess): each built-in family's default, under its recipe's name, and each
# suite's own (the protocol its papers score it with), under the suite's name.
PREPROCESSING = {spec.recipe: TestProtocol.of(spec.test_protocol) for spec in map(family, names())} | {
    name: TestProtocol.of(suite.test_protocol) for name, suite in SUITES.items() if suite.test_protocol}


def choose_protocol(*, crop_size: int | None, no_crop: bool, resize: int | None, recorded: TestProtocol | None,
                    fallback: tuple[TestProtocol, str], preprocess: str | None = None,
                    suite: tuple[TestProtocol, str] | None = None) -> tuple[TestProtocol, str]:
    """(protocol, where it came from): the named ``preprocess`` or the flags when any is given, else the
    ``suite``'s own (protocol, its name), which its papers score every detector with, else the checkpoint's
    record, else ``fallback`` (protocol, its name) for a checkpoint without a record, such as the authors'
    release."""
    if preprocess is not None:
        return PREPROCESSING[preprocess], f"--preprocess {preprocess}"
    if no_crop or crop_size is not None or resize is not None:
        return TestProtocol(crop_size=None if no_crop else crop_size or PAPER_PROTOCOL.crop_size,
                            resize=resize), "set by the flags"
    if suite is not None:
        return suite[0], f"{suite[1]}, the suite's own; --preprocess or the crop flags choose another"
    if recorded is not None:
        return recorded, "recorded in the checkpoint"
    return fallback[0], f"{fallback[1]}; the checkpoint records none"


OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("plateau", "cosine")
# What the schedule and the best checkpoint can watch: a validation metric (loss is watched as its negative), or
# "last", the epoch number, so that best.pth is the last epoch's weights.
WATCHED = ("acc", "ap", "loss", "last")
# Named training recipes: the values each sets in place of the options' defaults (wang2020 is the defaults
# themselves). Keys are TrainConfig's and AugmentConfig's fields; what the user gives wins.
RECIPES: dict[str, dict[str, Any]] = {
    "wang2020": {},
    # NPR's README command (--classes car,cat,chair,horse --batch_size 32 --delr_freq 10 --lr 0.0002 --niter 50)
    # on its code's defaults: resize to 256x256, random crop 224, flip, no blur/JPEG, from scratch; train.py seeds
    # with 100 (their RNGs, not ours: the value is recorded, the draws differ).
    "npr": {"arch": "npr", "no_pretrained": True, "protocol": "4class", "batch_size": 32, "lr": 2e-4, "epochs": 50,
            "delr_freq": 10, "lr_decay": 0.9, "square_resize": True, "test_no_crop": True, "seed": 100},
    # NPR's GenImage command (--classes sdv4 --batch_size 32 --lr 0.0002 --niter 1 --cropSize 224, seed 70) with
    # their README's change: translate_duplicate in place of the resize, then the random crop; tested tiled and
    # center-cropped. Their --delr_freq default (20) never fires in one epoch.
    "npr_genimage": {"arch": "npr", "no_pretrained": True, "classes": ("sdv4",), "batch_size": 32, "lr": 2e-4,
                     "epochs": 1, "delr_freq": 20, "no_resize": True, "tile": True, "seed": 70},
    # UnivFD's README command (train.py --data_mode wang2020 --arch CLIP:ViT-L/14 --fix_backbone) on its code's
    # defaults: batch 256, AdamW lr 1e-4 without weight decay (Adam's update), at most 100 epochs of the paper's
    # early stopping (patience 5), resize the shorter side to 256, random crop 224, flip; its datasets.py applies
    # Blur+JPEG (0.5) unconditionally (its --data_aug flag is never read) and validates with the blur and JPEG
    # at the middle of their ranges. Only the head trains (the family's spec).
    "univfd": {"arch": "univfd", "batch_size": 256, "epochs": 100, "blur_prob": 0.5, "blur_sig": (0.0, 3.0),
               "jpg_prob": 0.5, "jpg_method": ("cv2", "pil"), "jpg_qual": (30, 100), "val_perturb": True},
}
# A flag given in place of a recipe's setting: your own classes instead of its protocol (or a protocol instead of its
# classes), the paper's early stopping (--patience) instead of its step schedule, no resize instead of its square
# one, your ImageNet weights instead of none, whole images instead of its tiled crops. Giving the flag drops those
# recipe values, so the recipe never clashes with what you asked for.
REPLACES = {"classes": ("protocol",), "protocol": ("classes",), "patience": ("delr_freq", "lr_decay"),
            "no_resize": ("square_resize",), "pretrained_path": ("no_pretrained",), "no_crop": ("tile",),
            "test_no_crop": ("tile",)}
AUGMENT_FIELDS = frozenset(f.name for f in options_of(AugmentConfig))


def recipe_values(recipe: str, given: set[str]) -> dict[str, Any]:
    """The values recipe ``recipe`` sets for the fields that are not in ``given`` (nor replaced by one that is)."""
    if recipe not in RECIPES:
        raise ConfigError(f"--recipe {recipe}: choose one of {', '.join(RECIPES)}")
    dropped = given.union(*(REPLACES.get(name, ()) for name in given))
    return {k: v for k, v in RECIPES[recipe].items() if k not in dropped}


def _epoch(value: str) -> str | None:
    return None if value in ("latest", "best") or value.isdigit() else "give latest, best or an epoch number"


def known_arch(value: str) -> str | None:
    """A registered detector family (read at each check: families registered at run time count too)."""
    return None if value in names() else f"choose one of {', '.join(names())}"


# The authors' option spelled `res50`; it still selects ResNet-50.
ARCH_ALIASES = {"res50": "resnet50"}


def arch_name(text: str) -> str:
    return ARCH_ALIASES.get(text, text)


@dataclass(frozen=True, kw_only=True)
class TrainConfig(Runtime):
    """One training run: the paper's recipe by default. Field names are train.py's flags; the augmentation's flags
    are ``augment``'s fields. ``TrainConfig(recipe="npr", lr=1e-4)`` is NPR's recipe with your LR, as on the
    command line; ``from_flags`` takes the flags flat, as train.py does."""

    recipe: str = option("wang2020", "named values in place of the defaults (flags you give win): wang2020 = the "
                         "paper's (the defaults below); " + "; ".join(
                             f"{name} = {who} (" + ", ".join(f"{k} {shown(v)}" for k, v in RECIPES[name].items()) + ")"
                             for name, who in (("npr", "NPR's"), ("npr_genimage", "NPR's on GenImage"),
                                                   ("univfd", "UnivFD's"))),
                         choices=tuple(RECIPES))
    # data
    dataroot: Path = option(Path("./dataset/"), "folder holding <train_split>/<class>/{0_real,1_fake} and "
                            "<val_split>/...")
    classes: tuple[str, ...] | None = option(None, "comma-separated classes to train on (default: every class "
                                             "folder found)", parse=words, check=nonempty)
    protocol: str | None = option(None, "sets --classes by name: " + "; ".join(
        f"{k} = {p.description}" for k, p in PROTOCOLS.items()), choices=tuple(PROTOCOLS))
    train_split: str = option("train", "sub-folder of --dataroot used for training")
    val_split: str = option("val", "sub-folder of --dataroot used for validation")
    max_bad_fraction: float = option(0.01, "unreadable images are skipped and listed in skipped.csv; more than "
                                     "this fraction of a split is an error", check=probability)
    batch_size: int = option(64, "images per step (per process)", check=positive)
    max_megapixels: float = option(64.0, MEGAPIXELS_HELP, check=positive)
    memory_budget: float | None = option(None, "validation on whole images (--test_no_crop): " + BUDGET_HELP,
                                         check=positive, metavar="GIB")
    serial_batches: bool = option(False, "keep file order instead of shuffling")
    class_bal: bool = option(False, "sample real and fake images with equal probability (with replacement)")
    # preprocessing and augmentation
    augment: AugmentConfig = dataclasses.field(default=UNSET)
    test_no_crop: bool = option(False, "the detector is tested, and so validated, on whole images rather than "
                                "center crops of --crop_size; recorded in its checkpoints, which eval.py and demo.py "
                                "follow")
    val_perturb: bool = option(False, "also blur/JPEG the validation images as the authors' code did (sigma and "
                               "quality at the middle of their ranges, PIL JPEG); the draws are fixed per image, "
                               "same every epoch")
    # model
    arch: str = option("resnet50", lambda: "backbone: " + help_text(), parse=arch_name, check=known_arch)
    init_gain: float = option(0.02, "std of the new final layer's weights", check=positive)
    pretrained_path: Path | None = option(None, "ImageNet state dict of the backbone (instead of torchvision's "
                                          "download)")
    no_pretrained: bool = option(False, "start the backbone from random weights")
    # optimization
    optim: str = option("adam", "optimizer (SGD without momentum)", choices=OPTIMIZERS)
    lr: float = option(1e-4, "initial learning rate", check=positive)
    beta1: float = option(0.9, "Adam beta1 (beta2 is 0.999)", check=probability)
    epochs: int = option(10000, "maximum number of epochs (early stopping usually ends training sooner); the "
                         "length of --lr_schedule cosine", check=positive, flags=("--niter",))
    patience: int = option(5, "epochs without a gain of the --select_on metric before the LR is divided by 10",
                           check=positive, flags=("--earlystop_epoch",))
    lr_schedule: str = option("plateau", "plateau = the paper's early stopping; cosine = half a cosine from --lr "
                              "over --epochs, every epoch run", choices=LR_SCHEDULES)
    select_on: str = option("acc", "validation metric that early stopping watches and best.pth follows: acc (at "
                            "0.5, the paper's), ap or loss; last: best.pth is the last epoch (with a fixed-length "
                            "schedule)", choices=WATCHED)
    swa_epochs: int = option(0, "N > 0: the final weights are the mean of the last N epochs', BatchNorm statistics "
                             "recomputed on the training set (with --select_on last)", check=nonneg)
    delr_freq: int = option(0, "0 = --lr_schedule; N = NPR's schedule: LR x --lr_decay every N epochs, every epoch "
                            "run", check=nonneg)
    lr_decay: float = option(0.9, "LR factor of --delr_freq", check=lambda v: None if 0 < v <= 1 else
                             "give a factor in (0, 1]")
    seed: int = option(0, "seeds weights of the new layer, data order and every augmentation draw", check=nonneg)
    # run folder and checkpoints
    name: str = option("experiment_name", "run folder name under --checkpoints_dir")
    checkpoints_dir: Path = option(Path("./checkpoints"), "run folders go to <checkpoints_dir>/<name>/")
    loss_freq: int = option(400, "log the training loss every N steps", check=positive)
    save_latest_freq: int = option(2000, "also write the `latest` checkpoint every N steps", check=positive)
    save_epoch_freq: int = option(20, "keep `epoch_<k>` every N epochs", check=positive)
    continue_train: bool = option(False, "resume the run named --name")
    epoch: str = option("latest", "checkpoint to resume from: latest, best or a number", check=_epoch)
    new_optim: bool = option(False, "on resume, start a fresh optimizer")

    @classmethod
    def from_flags(cls, **flags: Any) -> TrainConfig:
        """The config of train.py's flags as given (flat: the augmentation's among them), the recipe's values
        filling the rest."""
        augment = {k: flags.pop(k) for k in AUGMENT_FIELDS & flags.keys()}
        if augment:
            given = set(flags) | set(augment)
            preset = recipe_values(flags.get("recipe", default_of(cls, "recipe")), given)
            flags["augment"] = AugmentConfig(**{k: v for k, v in preset.items() if k in AUGMENT_FIELDS} | augment)
        return cls(**flags)

    def naming_preset(self) -> dict[str, Any]:
        return {"recipe": self.recipe}

    def preset(self, given: set[str]) -> dict[str, Any]:
        recipe = default_of(type(self), "recipe") if self.recipe is UNSET else self.recipe
        return recipe_values(recipe, given)

    def __post_init__(self) -> None:
        if self.augment is UNSET:
            preset = self.preset(self.given())
            object.__setattr__(self, "augment", AugmentConfig(**{k: v for k, v in preset.items()
                                                                 if k in AUGMENT_FIELDS}))
        super().__post_init__()
        if self.protocol is not None:  # opt.json then records the classes it stands for
            object.__setattr__(self, "classes", protocol_list(self.protocol, "classes", self.classes, "--classes"))
        from_scratch = family(self.arch).pretrained is None
        tower = family(self.arch).tower
        if tower is not None and (self.no_pretrained or self.pretrained_path is not None):
            raise ConfigError(f"--arch {self.arch} trains a head over the frozen {tower.name}, which its checkpoints "
                              f"name rather than hold: it starts from those weights (`{tower.get}`); leave out "
                              f"--no_pretrained and --pretrained_path")
        if from_scratch and self.pretrained_path is not None:
            raise ConfigError(f"--arch {self.arch} is trained from scratch: no ImageNet weights apply to it; leave out "
                              f"--pretrained_path")
        if from_scratch and not self.no_pretrained:
            recipe = family(self.arch).recipe
            hint = "" if self.recipe == recipe else f" (or use --recipe {recipe})"
            raise ConfigError(f"--arch {self.arch} is trained from scratch: add --no_pretrained{hint}")
        if self.select_on == "last" and self.lr_schedule == "plateau" and not self.delr_freq:
            raise ConfigError("--select_on last never plateaus; use it with --lr_schedule cosine or --delr_freq")
        if self.swa_epochs > self.epochs:
            raise ConfigError(f"--swa_epochs {self.swa_epochs}: give 0 (off) to --epochs {self.epochs}")
        if self.swa_epochs and self.select_on != "last":
            raise ConfigError("--swa_epochs averages the last epochs into the result: use it with --select_on last")
        changed = self.changed
        ignored = [("--beta1", "--optim sgd", self.optim == "sgd" and changed("beta1")),
                   ("--pretrained_path", "--no_pretrained", self.no_pretrained and self.pretrained_path is not None),
                   ("--init_gain", f"--arch {self.arch}", from_scratch and changed("init_gain")),
                   ("--patience", "--delr_freq", self.delr_freq > 0 and changed("patience")),
                   ("--patience", "--lr_schedule cosine", self.lr_schedule == "cosine" and changed("patience")),
                   ("--lr_schedule cosine", "--delr_freq", self.delr_freq > 0 and self.lr_schedule == "cosine"),
                   ("--lr_decay", "no --delr_freq", self.delr_freq == 0 and changed("lr_decay")),
                   ("--tile", "--test_no_crop", self.augment.tile and self.test_no_crop),
                   ("--new_optim", "no --continue_train", self.new_optim and not self.continue_train),
                   ("--epoch", "no --continue_train", changed("epoch") and not self.continue_train),
                   ("--memory_budget", "no --test_no_crop", self.memory_budget is not None and not self.test_no_crop)]
        for flag, reason, clash in ignored:
            if clash:
                raise ConfigError(f"{flag} has no effect with {reason}; leave it out")

    @property
    def run_dir(self) -> Path:
        return self.checkpoints_dir / self.name

    def test_protocol(self) -> TestProtocol:
        """How this detector is meant to be tested: no resize (the paper's protocol) or, for a detector trained
        on square-resized images, the same square resize; then a center crop of ``crop_size`` (the training
        crop) or the whole image."""
        aug = self.augment
        square = aug.square_resize and not aug.no_resize
        return TestProtocol(crop_size=None if self.test_no_crop else aug.crop_size,
                            resize=aug.load_size if square else None, square=square, tile=aug.tile)

    def describe_validation(self) -> str:
        aug = self.augment
        whole = aug.no_crop or self.test_no_crop
        return describe_preprocessing(None if aug.no_resize else aug.load_size, aug.square_resize,
                                      None if whole else aug.crop_size, aug.tile)


@dataclass(frozen=True)
class Sweep:
    """A test-time perturbation that eval.py can sweep (--sweep KIND V1,V2,...)."""

    field: str
    """The fixed-value option it replaces."""
    label: str
    parse: Callable[[str], float]
    check: Check
    stronger_when_lower: bool
    """Plots put the stronger perturbation to the right."""


SWEEPS = {"blur": Sweep("blur_sigma", "Gaussian blur sigma", float, nonneg, False),
          "jpeg": Sweep("jpeg_quality", "JPEG quality", int, between(1, 100), True),
          "resize": Sweep("resize_scale", "rescale factor", float, positive, True)}


def _sweep(value: tuple[str, tuple[float, ...]]) -> str | None:
    kind, points = value
    if kind not in SWEEPS:
        return f"choose one of {', '.join(SWEEPS)}"
    return each(SWEEPS[kind].check)(points)


def _parse_sweep(kind: str, values: str) -> tuple[str, tuple[float, ...]]:
    parse = SWEEPS[kind].parse if kind in SWEEPS else float
    return kind, tuple(parse(v) for v in words(values))


MODEL_HELP = ("checkpoint: the authors' release, a training checkpoint or a bare state dict; " + " or ".join(RELEASED)
              + " name a released model in weights/, a training run's folder its best.pth")
ARCH_HELP = ("backbone (default: the one saved in the checkpoint, else the family that recognizes its keys, e.g. "
             "npr for NPR's)")
OVERWRITE_HELP = "replace the files of an earlier run in the output folder (otherwise an error)"


def _suite_protocols() -> dict[str, Protocol]:
    """The named set lists of every suite (--protocol)."""
    return {k: p for suite in SUITES.values() for k, p in suite.protocols.items()}


# Suites registered at run time count too, so these are read at each check.
def _known_suite(value: str) -> str | None:
    return None if value in SUITES else f"choose one of {', '.join(SUITES)}"


def _known_protocol(value: str) -> str | None:
    return None if value in _suite_protocols() else f"choose one of {', '.join(_suite_protocols())}"


@dataclass(frozen=True, kw_only=True)
class EvalConfig(Runtime):
    """One eval.py run: the paper's test protocol by default. Field names are eval.py's flags."""

    dataroot: Path = option(Path("./dataset/test"), "the suite's folder in its published layout (forensynths: "
                            "<set>/{0_real,1_fake} or <set>/<subclass>/{0_real,1_fake})")
    suite: str = option("forensynths", "test suite: " + "; ".join(f"{k} = {v.title}" for k, v in SUITES.items()),
                        check=_known_suite)
    sets: tuple[str, ...] | None = option(None, "comma-separated sets to evaluate, in this order (default: all "
                                          "found, Table 2 order)", parse=words, check=nonempty)
    protocol: str | None = option(None, "sets --sets by name: " + "; ".join(
        f"{k} = {p.description}" for k, p in _suite_protocols().items()), check=_known_protocol)
    max_sample: int | None = option(None, "score at most N reals and N fakes of each set, drawn by a shuffle seeded "
                                    "with 0 (UnivFD's evaluation: --max_sample 1000); default: every image",
                                    check=positive, metavar="N")
    batch_size: int = option(64, "images per forward pass", check=positive)
    max_megapixels: float = option(64.0, MEGAPIXELS_HELP, check=positive)
    memory_budget: float | None = option(None, BUDGET_HELP, check=positive, metavar="GIB")
    model_path: Path = option(Path("weights/blur_jpg_prob0.5.pth"), MODEL_HELP, parse=model_path, flags=("-m",))
    arch: str | None = option(None, ARCH_HELP, parse=arch_name, check=known_arch)
    allow_nonfinite: bool = option(False, NONFINITE_HELP)
    # preprocessing (the paper's test protocol: no resize, center crop 224)
    crop_size: int | None = option(None, "center crop side (default: the checkpoint's test protocol, else 224)",
                                   check=positive, flags=("--cropSize",))
    no_crop: bool = option(False, "whole images; images of equal size are batched together")
    resize: int | None = option(None, "resize the shorter side to N (bilinear) before cropping", check=positive,
                                metavar="N")
    preprocess: str | None = option(None, "a named test protocol instead of the three flags above: " + "; ".join(
        f"{k} = {v.describe()}" for k, v in PREPROCESSING.items()), choices=tuple(PREPROCESSING))
    calibrate_on: str | None = option(None, "choose a threshold on this set (a set name under --dataroot or a "
                                      "folder, e.g. the ProGAN val split) and report acc_calibrated on the others",
                                      metavar="SET_OR_DIR")
    # test-time perturbations (robustness, the paper's Fig. 5)
    blur_sigma: float | None = option(None, "Gaussian blur of every test image", check=nonneg)
    jpeg_quality: int | None = option(None, "JPEG-compress every test image", check=between(1, 100))
    jpeg_method: str = option("pil", "JPEG encoder for --jpeg_quality and --sweep jpeg", choices=JPEG_METHODS)
    resize_scale: float | None = option(None, "rescale every test image by this factor (bilinear)", check=positive)
    sweep: tuple[str, tuple[float, ...]] | None = option(
        None, "evaluate at each value: blur 0,1,2,3 | jpeg 100,90,...,30 | resize 1,0.75,0.5; writes "
        "sweep_<kind>.csv and .png", parse=_parse_sweep, check=_sweep, nargs=2,
        metavar=("KIND", "VALUES"))
    # output
    results_dir: Path = option(Path("results"), "results go to <results_dir>/<name>/")
    name: str | None = option(None, "results sub-folder (default: the checkpoint file name without extension)")
    overwrite: bool = option(False, OVERWRITE_HELP)
    strict: bool = option(False, "an unreadable image is an error (default: skipped and listed in skipped.csv)")
    resume: bool = option(False, "continue an interrupted run in its folder: keep its finished sets, score the "
                          "rest")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.protocol is not None:  # opt.json then records the sets it stands for
            protocols = SUITES[self.suite].protocols
            if not protocols:
                owners = " or ".join(name for name, suite in SUITES.items() if suite.protocols)
                raise ConfigError(f"--protocol names sets of --suite {owners}; --suite {self.suite} has none")
            object.__setattr__(self, "sets", protocol_list(self.protocol, "test_sets", self.sets, "--sets",
                                                           protocols))
        if self.preprocess is not None and (self.no_crop or self.crop_size is not None or self.resize is not None):
            raise ConfigError("--preprocess names a whole test protocol; leave out --crop_size, --no_crop and "
                              "--resize")
        if self.sweep is not None and getattr(self, SWEEPS[self.sweep[0]].field) is not None:
            field = SWEEPS[self.sweep[0]].field
            raise ConfigError(f"--sweep {self.sweep[0]} and --{field} exclude each other")
        uses_jpeg = self.jpeg_quality is not None or (self.sweep is not None and self.sweep[0] == "jpeg")
        if self.changed("jpeg_method") and not uses_jpeg:
            raise ConfigError("--jpeg_method only applies with --jpeg_quality or --sweep jpeg")
        if self.resume and (self.overwrite or self.sweep is not None):
            raise ConfigError("--resume continues a plain run; it excludes --overwrite and --sweep")
        if self.no_crop and self.crop_size is not None:
            raise ConfigError("--crop_size has no effect with --no_crop; leave it out")

    def perturbation(self, swept: float | None = None) -> Perturbation:
        """The fixed test-time perturbation, with the swept kind's setting at ``swept`` when given."""
        values = {"resize_scale": self.resize_scale, "blur_sigma": self.blur_sigma, "jpeg_quality": self.jpeg_quality}
        if swept is not None:
            assert self.sweep is not None
            values[SWEEPS[self.sweep[0]].field] = swept
        quality = values["jpeg_quality"]
        from data.transforms import Perturbation

        return Perturbation(scale=values["resize_scale"], blur_sigma=values["blur_sigma"],
                            jpeg=None if quality is None else (self.jpeg_method, int(quality)))

    @property
    def out_dir(self) -> Path:
        return self.results_dir / (self.name or results_name(self.model_path))


def results_name(checkpoint: Path) -> str:
    """The results folder name for a checkpoint: ``<run>_<file>`` inside a training run folder (every run has a
    best.pth), else the file name (``blur_jpg_prob0.5``)."""
    if (checkpoint.parent / "opt.json").is_file():
        return f"{checkpoint.parent.name}_{checkpoint.stem}"
    return checkpoint.stem


