"""The configs of the engine's commands (train.py, eval.py) and the runtime settings every command shares:
frozen dataclasses, validated on construction, whose field names are the flags. This module imports no image or
deep-learning library, so the options can build them and answer ``--help`` at once; what the configs make for
the engine (transforms, perturbations) is imported when asked for.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data.names import INTERPOLATIONS, JPEG_METHODS, protocol_list
from data.suites import SUITES
from networks import family, names
from util.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from data.transforms import AugmentConfig, EvalTransform, Perturbation
    from networks import Preprocessing

AMP_CHOICES = ("off", "bf16", "fp16")


@dataclass(frozen=True, kw_only=True)
class Runtime:
    """Where and how fast a command computes; never what it computes (up to float rounding)."""

    device: str = "auto"
    """auto (cuda when available, else cpu), cpu, cuda or cuda:N; under torchrun each process takes its own GPU."""
    amp: str = "off"
    """Autocast precision: off, bf16 or fp16."""
    num_workers: int | str = "auto"
    """DataLoader worker processes (0 = load in the main process), or auto (see ``resolve_workers``)."""
    debug: bool = False
    """The scripts show tracebacks instead of one-line errors."""

    def __post_init__(self) -> None:
        check_runtime(self.amp, self.num_workers)

    @property
    def runtime(self) -> dict[str, Any]:
        """These settings alone, to pass on to the config of a command this one runs."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(Runtime)}


def check_limits(max_megapixels: float, memory_budget: float | None = None) -> None:
    """--max_megapixels (images larger are listed, not decoded) and --memory_budget (GiB for a batch of whole
    images; None: derived from free memory)."""
    if not max_megapixels > 0:
        raise ConfigError(f"--max_megapixels {max_megapixels}: give a positive number")
    if memory_budget is not None and not memory_budget > 0:
        raise ConfigError(f"--memory_budget {memory_budget}: give a positive number of GiB")


def check_runtime(amp: str, num_workers: int | str) -> None:
    if amp not in AMP_CHOICES:
        raise ConfigError(f"--amp {amp}: choose one of {', '.join(AMP_CHOICES)}")
    if num_workers != "auto" and (not isinstance(num_workers, int) or num_workers < 0):
        raise ConfigError(f"--num_workers {num_workers}: give auto or a number >= 0")


MAX_AUTO_WORKERS = 16


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


def describe_preprocessing(resize: int | None, square: bool, crop_size: int | None) -> str:
    if not resize:
        text = "no resize"
    else:
        text = f"resize to {resize}x{resize}" if square else f"resize shorter side to {resize}"
    return f"{text}, " + ("whole image" if crop_size is None else f"center crop {crop_size}")


@dataclass(frozen=True)
class TestProtocol:
    """How test images reach the detector: an optional resize (of the shorter side, or of both sides with
    ``square``), then a center crop (zero-padded when the image is smaller) or the whole image."""

    __test__ = False  # a name pytest would otherwise collect where tests import it

    crop_size: int | None = 224
    """None: the whole image."""
    resize: int | None = None
    square: bool = False

    def describe(self) -> str:
        return describe_preprocessing(self.resize, self.square, self.crop_size)

    def transform(self, perturbation: Perturbation | None = None) -> EvalTransform:
        from data.transforms import EvalTransform, Perturbation

        return EvalTransform(crop_size=self.crop_size, resize=self.resize, square=self.square,
                             perturbation=perturbation or Perturbation())

    def record(self) -> dict[str, int | bool | None]:
        return {"crop_size": self.crop_size, "resize": self.resize, "square": self.square}

    @classmethod
    def of(cls, default: Preprocessing) -> TestProtocol:
        """A family's default protocol (plain data in networks/)."""
        return cls(crop_size=default.crop_size, resize=default.resize, square=default.square)


PAPER_PROTOCOL = TestProtocol()  # Table 2: no resize, center crop 224
# Test protocols by name (eval.py --preprocess): each built-in family's default, under its recipe's name.
PREPROCESSING = {spec.recipe: TestProtocol.of(spec.test_protocol) for spec in map(family, names())}


def choose_protocol(*, crop_size: int | None, no_crop: bool, resize: int | None, recorded: TestProtocol | None,
                    fallback: tuple[TestProtocol, str], preprocess: str | None = None) -> tuple[TestProtocol, str]:
    """(protocol, where it came from): the named ``preprocess`` or the flags when any is given, else the
    checkpoint's record, else ``fallback`` (protocol, its name) for a checkpoint without a record, such as the
    authors' release."""
    if preprocess is not None:
        return PREPROCESSING[preprocess], f"--preprocess {preprocess}"
    if no_crop or crop_size is not None or resize is not None:
        return TestProtocol(crop_size=None if no_crop else crop_size or PAPER_PROTOCOL.crop_size,
                            resize=resize), "set by the flags"
    if recorded is not None:
        return recorded, "recorded in the checkpoint"
    return fallback[0], f"{fallback[1]}; the checkpoint records none"


OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("plateau", "cosine")
# What the schedule and the best checkpoint can watch: a validation metric (loss is watched as its negative), or
# "last", the epoch number, so that best.pth is the last epoch's weights.
WATCHED = ("acc", "ap", "loss", "last")
# Named training recipes: the defaults each fills (flags given on the command line win). wang2020 is the
# defaults themselves.
RECIPES: dict[str, dict[str, Any]] = {
    "wang2020": {},
    # NPR's README command (--classes car,cat,chair,horse --batch_size 32 --delr_freq 10 --lr 0.0002 --niter 50)
    # on its code's defaults: resize to 256x256, random crop 224, flip, no blur/JPEG, from scratch.
    "npr": {"arch": "npr", "no_pretrained": True, "protocol": "4class", "batch_size": 32, "lr": 2e-4, "epochs": 50,
            "delr_freq": 10, "lr_decay": 0.9, "square_resize": True, "test_no_crop": True},
}
# Recipe values that also give way to these flags, which ask for something else in their place: your own classes,
# the paper's early stopping (--patience), no resize, ImageNet weights.
_RECIPE_YIELDS = {"protocol": ("classes",), "delr_freq": ("patience",), "lr_decay": ("patience",),
                  "square_resize": ("no_resize",), "no_pretrained": ("pretrained_path",)}


def apply_recipe(values: dict[str, Any], given: set[str]) -> dict[str, Any]:
    """``values`` (train.py's options) with the fields of ``values["recipe"]`` filled in, except those in
    ``given`` (set on the command line)."""
    # An unknown recipe fills nothing here; TrainConfig's validation names it.
    filled = {k: v for k, v in RECIPES.get(values["recipe"], {}).items()
              if k not in given and not given.intersection(_RECIPE_YIELDS.get(k, ()))}
    return values | filled


@dataclass(frozen=True, kw_only=True)
class TrainConfig(Runtime):
    """One training run: the paper's recipe by default. Field names are train.py's flags."""

    recipe: str = "wang2020"
    """The named recipe (RECIPES) whose defaults the options started from."""
    # data
    dataroot: Path = Path("./dataset/")
    """Holds <train_split>/<class>/{0_real,1_fake} and <val_split>/..."""
    classes: tuple[str, ...] | None = None
    """Classes to train on (None: every class folder found, or the protocol's)."""
    protocol: str | None = None
    """A named protocol (data.PROTOCOLS) that sets ``classes``."""
    train_split: str = "train"
    val_split: str = "val"
    max_bad_fraction: float = 0.01
    """Unreadable images are skipped and listed; more than this fraction of a split is an error."""
    max_megapixels: float = 64.0
    """Larger images (by their header) are not decoded: skipped and listed."""
    batch_size: int = 64
    """Images per step, per process."""
    serial_batches: bool = False
    """Keep file order instead of shuffling."""
    class_bal: bool = False
    """Sample real and fake images with equal probability (with replacement)."""
    # preprocessing and augmentation
    load_size: int = 256
    crop_size: int = 224
    square_resize: bool = False
    """Resize to load_size x load_size (NPR) instead of the shorter side to load_size; such a detector is also
    tested resized so."""
    no_resize: bool = False
    no_crop: bool = False
    crop_grid: int = 1
    """Random crops start at multiples of this."""
    no_flip: bool = False
    rz_interp: tuple[str, ...] = ("bilinear",)
    blur_prob: float = 0.0
    blur_sig: tuple[float, float] = (0.5, 0.5)
    jpg_prob: float = 0.0
    jpg_method: tuple[str, ...] = ("cv2",)
    jpg_qual: tuple[int, int] = (75, 75)
    val_perturb: bool = False
    """Also blur/JPEG validation images as the authors' code did (fixed per image)."""
    test_no_crop: bool = False
    """The detector is tested, and so validated, on whole images, not center crops of ``crop_size`` (recorded in
    its checkpoints)."""
    # model
    arch: str = "resnet50"
    init_gain: float = 0.02
    pretrained_path: Path | None = None
    no_pretrained: bool = False
    # optimization
    optim: str = "adam"
    lr: float = 1e-4
    beta1: float = 0.9
    epochs: int = 10000
    """At most this many epochs (the plateau schedule usually ends training sooner); a fixed-length schedule's
    length."""
    patience: int = 5
    """Epochs without a gain of the watched metric before the LR is divided by 10."""
    delr_freq: int = 0
    """0: ``lr_schedule``. N: NPR's step schedule (LR x lr_decay every N epochs, all epochs run)."""
    lr_decay: float = 0.9
    lr_schedule: str = "plateau"
    """plateau: the paper's early stopping. cosine: half a cosine from lr over ``epochs``, every epoch run."""
    select_on: str = "acc"
    """The validation metric that early stopping watches and the best checkpoint follows (acc at 0.5, the
    paper's; ap; or loss), or last: best.pth is the last epoch's weights (with a schedule of fixed length)."""
    swa_epochs: int = 0
    """N > 0: the final weights are the mean of the last N epochs' (stochastic weight averaging), with BatchNorm
    statistics recomputed over one pass of the training set; with a fixed-length schedule and ``select_on`` last."""
    # run folder and checkpoints
    name: str = "experiment_name"
    checkpoints_dir: Path = Path("./checkpoints")
    loss_freq: int = 400
    save_latest_freq: int = 2000
    save_epoch_freq: int = 20
    continue_train: bool = False
    epoch: str = "latest"
    """Checkpoint to resume from: latest, best or an epoch number."""
    new_optim: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_limits(self.max_megapixels)
        defaults = type(self)  # the class attributes hold the fields' defaults
        if self.protocol is not None:  # opt.json then records the classes it stands for
            object.__setattr__(self, "classes", protocol_list(self.protocol, "classes", self.classes, "--classes"))
        if self.arch not in names():
            raise ConfigError(f"--arch {self.arch}: choose one of {', '.join(names())}")
        if self.recipe not in RECIPES:
            raise ConfigError(f"--recipe {self.recipe}: choose one of {', '.join(RECIPES)}")
        from_scratch = family(self.arch).pretrained is None
        if from_scratch and self.pretrained_path is not None:
            raise ConfigError(f"--arch {self.arch} is trained from scratch: no ImageNet weights apply to it; leave out "
                              f"--pretrained_path")
        if from_scratch and not self.no_pretrained:
            recipe = family(self.arch).recipe
            hint = "" if self.recipe == recipe else f" (or use --recipe {recipe})"
            raise ConfigError(f"--arch {self.arch} is trained from scratch: add --no_pretrained{hint}")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"--lr_decay {self.lr_decay}: give a factor in (0, 1]")
        if self.crop_grid < 1:
            raise ConfigError(f"--crop_grid {self.crop_grid}: give a number >= 1")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"--lr_schedule {self.lr_schedule}: choose one of {', '.join(LR_SCHEDULES)}")
        if self.select_on not in WATCHED:
            raise ConfigError(f"--select_on {self.select_on}: choose one of {', '.join(WATCHED)}")
        if self.select_on == "last" and self.lr_schedule == "plateau" and not self.delr_freq:
            raise ConfigError("--select_on last never plateaus; use it with --lr_schedule cosine or --delr_freq")
        if self.swa_epochs < 0 or self.swa_epochs > self.epochs:
            raise ConfigError(f"--swa_epochs {self.swa_epochs}: give 0 (off) to --epochs {self.epochs}")
        if self.swa_epochs and self.select_on != "last":
            raise ConfigError("--swa_epochs averages the last epochs into the result: use it with --select_on last")
        if self.optim not in OPTIMIZERS:
            raise ConfigError(f"--optim {self.optim}: choose one of {', '.join(OPTIMIZERS)}")
        unknown = [v for v in self.rz_interp if v not in INTERPOLATIONS]
        unknown += [v for v in self.jpg_method if v not in JPEG_METHODS]
        if unknown:
            raise ConfigError(f"unknown interpolation or JPEG method {unknown[0]!r}")
        if not self.no_resize and not self.no_crop and self.crop_size > self.load_size:
            raise ConfigError(f"--crop_size {self.crop_size} exceeds --load_size {self.load_size}")
        ignored = [("--crop_size", "--no_crop", self.no_crop and self.crop_size != defaults.crop_size),
                   ("--load_size", "--no_resize", self.no_resize and self.load_size != defaults.load_size),
                   ("--rz_interp", "--no_resize", self.no_resize and self.rz_interp != defaults.rz_interp),
                   ("--beta1", "--optim sgd", self.optim == "sgd" and self.beta1 != defaults.beta1),
                   ("--pretrained_path", "--no_pretrained", self.no_pretrained and self.pretrained_path is not None),
                   ("--init_gain", f"--arch {self.arch}", from_scratch and self.init_gain != defaults.init_gain),
                   ("--square_resize", "--no_resize", self.no_resize and self.square_resize),
                   ("--crop_grid", "--no_crop", self.no_crop and self.crop_grid != defaults.crop_grid),
                   ("--patience", "--delr_freq", self.delr_freq > 0 and self.patience != defaults.patience),
                   ("--patience", "--lr_schedule cosine",
                    self.lr_schedule == "cosine" and self.patience != defaults.patience),
                   ("--lr_schedule cosine", "--delr_freq", self.delr_freq > 0 and self.lr_schedule == "cosine"),
                   ("--lr_decay", "no --delr_freq", self.delr_freq == 0 and self.lr_decay != defaults.lr_decay),
                   ("--new_optim", "no --continue_train", self.new_optim and not self.continue_train),
                   ("--epoch", "no --continue_train", self.epoch != defaults.epoch and not self.continue_train)]
        for flag, reason, clash in ignored:
            if clash:
                raise ConfigError(f"{flag} has no effect with {reason}; leave it out")
        if not (self.epoch in ("latest", "best") or self.epoch.isdigit()):
            raise ConfigError(f"--epoch {self.epoch!r}: give latest, best or an epoch number")

    def augment(self) -> AugmentConfig:
        """The training-transform settings."""
        from data.transforms import AugmentConfig

        return AugmentConfig(load_size=self.load_size, crop_size=self.crop_size, resize=not self.no_resize,
                             square_resize=self.square_resize, crop=not self.no_crop, crop_grid=self.crop_grid,
                             flip=not self.no_flip, rz_interp=tuple(self.rz_interp),
                             blur_prob=self.blur_prob, blur_sig=tuple(self.blur_sig), jpg_prob=self.jpg_prob,
                             jpg_method=tuple(self.jpg_method), jpg_qual=tuple(self.jpg_qual))

    @property
    def run_dir(self) -> Path:
        return self.checkpoints_dir / self.name

    def test_protocol(self) -> TestProtocol:
        """How this detector is meant to be tested: no resize (the paper's protocol) or, for a detector trained
        on square-resized images, the same square resize; then a center crop of ``crop_size`` (the training
        crop) or the whole image."""
        square = self.square_resize and not self.no_resize
        return TestProtocol(crop_size=None if self.test_no_crop else self.crop_size,
                            resize=self.load_size if square else None, square=square)

    def describe_validation(self) -> str:
        whole = self.no_crop or self.test_no_crop
        return describe_preprocessing(None if self.no_resize else self.load_size, self.square_resize,
                                      None if whole else self.crop_size)


# The test-time perturbations eval.py can sweep, and the fixed-value setting each one replaces.
SWEPT_FIELD = {"blur": "blur_sigma", "jpeg": "jpeg_quality", "resize": "resize_scale"}


@dataclass(frozen=True, kw_only=True)
class EvalConfig(Runtime):
    """One eval.py run: the paper's test protocol by default. Field names are eval.py's flags."""

    dataroot: Path = Path("./dataset/test")
    """The suite's folder, in its published layout (forensynths: <set>/{0_real,1_fake} or
    <set>/<subclass>/{0_real,1_fake})."""
    suite: str = "forensynths"
    """A key of data.suites.SUITES: how the sets are laid out and which reals each fake set is scored against."""
    sets: tuple[str, ...] | None = None
    """Sets to evaluate, in this order (None: all found, in the suite's order; or the protocol's)."""
    protocol: str | None = None
    batch_size: int = 64
    max_megapixels: float = 64.0
    """Larger images (by their header) are not decoded: skipped and listed."""
    memory_budget: float | None = None
    """GiB the activations of a batch of whole images may take (None: half the free memory, at most 4)."""
    model_path: Path = Path("weights/blur_jpg_prob0.5.pth")
    arch: str | None = None
    """Backbone (None: the one saved in the checkpoint, else the family that recognizes its keys)."""
    allow_nonfinite: bool = False
    """Load weights that hold NaN or infinite values (refused by default)."""
    crop_size: int | None = None
    """Center crop side. With none of crop_size, no_crop, resize: the checkpoint's recorded test protocol, else
    its family's (the paper's for the ResNets: no resize, center crop 224)."""
    no_crop: bool = False
    """Whole images; images of equal size are batched together."""
    resize: int | None = None
    """Resize the shorter side to this (bilinear) before cropping."""
    preprocess: str | None = None
    """A named test protocol (PREPROCESSING) instead of crop_size / no_crop / resize."""
    calibrate_on: str | None = None
    """A set name under ``dataroot`` or a folder: choose a threshold there, report acc_calibrated on the others."""
    blur_sigma: float | None = None
    jpeg_quality: int | None = None
    jpeg_method: str = "pil"
    resize_scale: float | None = None
    sweep: tuple[str, tuple[float, ...]] | None = None
    """(kind, values): evaluate at each value of one perturbation (a key of SWEPT_FIELD)."""
    results_dir: Path = Path("results")
    name: str | None = None
    """Results sub-folder (None: the checkpoint file name without extension)."""
    overwrite: bool = False
    strict: bool = False
    """An unreadable image is an error (exit status 2, after the results are written)."""
    resume: bool = False
    """Continue an interrupted run in the same folder: its finished sets are kept, the others scored."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_limits(self.max_megapixels, self.memory_budget)
        if self.suite not in SUITES:
            raise ConfigError(f"--suite {self.suite}: choose one of {', '.join(SUITES)}")
        if self.protocol is not None:  # opt.json then records the sets it stands for
            protocols = SUITES[self.suite].protocols
            if not protocols:
                owners = " or ".join(name for name, suite in SUITES.items() if suite.protocols)
                raise ConfigError(f"--protocol names sets of --suite {owners}; --suite {self.suite} has none")
            object.__setattr__(self, "sets", protocol_list(self.protocol, "test_sets", self.sets, "--sets",
                                                           protocols))
        if self.preprocess is not None:
            if self.preprocess not in PREPROCESSING:
                raise ConfigError(f"--preprocess {self.preprocess}: choose one of {', '.join(PREPROCESSING)}")
            if self.no_crop or self.crop_size is not None or self.resize is not None:
                raise ConfigError("--preprocess names a whole test protocol; leave out --crop_size, --no_crop and "
                                  "--resize")
        if self.sweep is not None:
            kind = self.sweep[0]
            if kind not in SWEPT_FIELD:
                raise ConfigError(f"--sweep {kind}: choose one of {', '.join(SWEPT_FIELD)}")
            if getattr(self, SWEPT_FIELD[kind]) is not None:
                raise ConfigError(f"--sweep {kind} and --{SWEPT_FIELD[kind]} exclude each other")
        uses_jpeg = self.jpeg_quality is not None or (self.sweep is not None and self.sweep[0] == "jpeg")
        if self.jpeg_method != type(self).jpeg_method and not uses_jpeg:
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
            values[SWEPT_FIELD[self.sweep[0]]] = swept
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


