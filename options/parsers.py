"""The command lines of every script, each parsed once into the config its command takes.

Flags use snake_case and are the configs' field names. The authors' spellings that users already type
(``--loadSize``, ``--cropSize``, ``--niter``, ``--earlystop_epoch``, ``--num_threads``, ``--gpu_ids``) are accepted
as aliases, with the authors' comma syntax (``--blur_sig 0.0,3.0``, ``--jpg_qual 30,100``, ``--classes a,b,c``).
Defaults come from the configs; rules that join several flags live in the configs' validation, reported here as
usage errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from commands.configs import (
    CHANNELS_LAST,
    DEVICES,
    AblationConfig,
    AppConfig,
    BenchmarkConfig,
    DemoConfig,
    RankingConfig,
    SpectraConfig,
)
from data.names import INTERPOLATIONS, JPEG_METHODS, PROTOCOLS, Protocol
from data.suites import SUITES
from engine.configs import (
    AMP_CHOICES,
    LR_SCHEDULES,
    MAX_AUTO_WORKERS,
    OPTIMIZERS,
    PREPROCESSING,
    RECIPES,
    WATCHED,
    EvalConfig,
    Runtime,
    TrainConfig,
    apply_recipe,
)
from networks import help_text
from networks.released import RELEASED, model_path
from options.types import (
    GpuIdsAction,
    SweepAction,
    arch_name,
    device_name,
    jpeg_quality,
    name_list,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
    positive_int_list,
    probability,
    quality_range,
    released_name,
    sigma_range,
    subset_of,
    workers,
)
from util.errors import ConfigError

if TYPE_CHECKING:
    from commands.quickstart import QuickstartConfig

Config = TypeVar("Config")


# ------------------------------------------------------------------------------------------------ building
class HelpFormatter(argparse.HelpFormatter):
    """Help lines end with the default, once, readably (lists comma-joined, as they are typed); flags that are off
    by default, have no default or already describe it show none."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (not action.option_strings or action.required or "default" in text
                or default in (None, False, argparse.SUPPRESS)):
            return text
        shown = ",".join(map(str, default)) if isinstance(default, (tuple, list)) else str(default)
        return f"{text} (default: {shown})"


class Parser(argparse.ArgumentParser):
    """Strict, but it forgives the usual slips: ``--no-crop`` reads as ``--no_crop`` (the flags use underscores),
    an unknown flag gets a did-you-mean, and stray paths get a hint about unquoted globs."""

    def __init__(self, **kwargs: Any) -> None:
        # Abbreviations are off: a typo must not silently select another flag.
        super().__init__(allow_abbrev=False, formatter_class=HelpFormatter, **kwargs)

    def _flags(self) -> set[str]:
        flags = set(self._option_string_actions)
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    flags |= set(sub._option_string_actions)
        return flags

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:
        flags = self._flags()
        given = list(sys.argv[1:] if args is None else args)
        return super().parse_args([_underscored(arg, flags) for arg in given], namespace)

    def given(self, args: Sequence[str] | None = None) -> set[str]:
        """The destinations that ``args`` set explicitly (whatever their value), sub-commands included."""
        parsers, actions = [self], []
        while parsers:
            parser = parsers.pop()
            for action in parser._actions:
                actions.append((action, action.default))
                if isinstance(action, argparse._SubParsersAction):
                    parsers += action.choices.values()
        try:
            for action, _ in actions:
                action.default = argparse.SUPPRESS
            return set(vars(self.parse_args(args)))
        finally:
            for action, default in actions:
                action.default = default

    def error(self, message: str) -> NoReturn:
        prefix = "unrecognized arguments: "
        if message.startswith(prefix):
            message += _hints(message[len(prefix):].split(), self._flags())
        super().error(message)


def _underscored(arg: str, flags: set[str]) -> str:
    """``--no-crop`` -> ``--no_crop`` when only the underscore spelling is a flag."""
    name, equals, value = arg.partition("=")
    if name.startswith("--") and name not in flags:
        spelled = "--" + name[2:].replace("-", "_")
        if spelled in flags:
            return spelled + equals + value
    return arg


def _hints(unknown: list[str], flags: set[str]) -> str:
    hints = []
    for token in unknown:
        if token.startswith("-"):
            close = difflib.get_close_matches(token.split("=")[0].replace("-", "_").replace("__", "--", 1),
                                              sorted(flags), n=2, cutoff=0.6)
            if close:
                hints.append(f"{token}: did you mean {' or '.join(close)}?")
    paths = [t for t in unknown if not t.startswith("-") and os.path.exists(t)]
    if len(paths) >= 2:
        hints.append(f"{len(paths)} paths where one value was expected: did the shell expand a glob? Quote it, "
                     f"e.g. -f \"photos/*.jpg\"")
    return "".join(f"\n  {hint}" for hint in hints)


def _parser(prog: str, description: str) -> Parser:
    parser = Parser(prog=prog, description=description)
    _add_debug(parser)
    return parser


def _add_debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")


def _add_runtime(parser: argparse.ArgumentParser, device: bool = True, training: bool = False) -> None:
    group = parser.add_argument_group("runtime")
    if device:
        group.add_argument("--device", type=device_name, default=Runtime.device,
                           help="auto = cuda when available, else cpu; under torchrun each process takes "
                           "cuda:LOCAL_RANK")
        group.add_argument("--gpu_ids", action=GpuIdsAction, metavar="IDS", default=argparse.SUPPRESS,
                           help="authors' spelling: -1 = cpu, N = cuda:N (sets --device)")
    group.add_argument("--amp", choices=AMP_CHOICES, default=Runtime.amp,
                       help="autocast precision" + ("; fp16 also uses a gradient scaler" if training else ""))
    group.add_argument("--num_workers", "--num_threads", type=workers, default=Runtime.num_workers,
                       help="DataLoader worker processes: auto = one per available CPU (at most "
                       f"{MAX_AUTO_WORKERS}) on CUDA, 0 on CPU; 0 = load in the main process")


def _add_limits(group: argparse._ArgumentGroup, default: type, whole: bool = True) -> None:
    group.add_argument("--max_megapixels", type=positive_float, default=default.max_megapixels,
                       help="larger images (by their header) are not decoded: skipped and listed")
    if whole:
        group.add_argument("--memory_budget", type=positive_float, default=None, metavar="GIB",
                           help="memory for a batch of whole images: they are batched within it, and one that alone "
                           "needs more is listed (default: half the free memory, at most 4 GiB)")


def _add_overwrite(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the files of an earlier run in the output folder (otherwise an error)")


def _add_protocol(group: argparse._ArgumentGroup, replaces: str, protocols: Mapping[str, Protocol] = PROTOCOLS
                  ) -> None:
    group.add_argument("--protocol", choices=tuple(protocols), default=None,
                       help=f"sets {replaces} by name: " + "; ".join(f"{k} = {p.description}"
                                                                     for k, p in protocols.items()))


def _config(parser: argparse.ArgumentParser, cls: type[Config], values: dict[str, Any]) -> Config:
    """``cls(**values)``, its validation errors reported as usage errors of ``parser``."""
    try:
        return cls(**values)
    except ConfigError as err:
        parser.error(str(err))


def _parsed(parser: argparse.ArgumentParser, cls: type[Config], argv: Sequence[str] | None) -> Config:
    return _config(parser, cls, vars(parser.parse_args(argv)))


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


# ------------------------------------------------------------------------------------------------ train.py
def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    d = TrainConfig
    parser.add_argument("--recipe", choices=tuple(RECIPES), default=d.recipe,
                        help="named defaults (flags you give win): wang2020 = the paper's (the defaults below); npr "
                        "= NPR's (" + ", ".join(f"{k} {v}" for k, v in RECIPES["npr"].items()) + ")")
    group = parser.add_argument_group("data")
    group.add_argument("--dataroot", type=Path, default=d.dataroot,
                       help="folder holding <train_split>/<class>/{0_real,1_fake} and <val_split>/...")
    group.add_argument("--classes", type=name_list, default=d.classes,
                       help="comma-separated classes to train on (default: every class folder found)")
    _add_protocol(group, "--classes")
    group.add_argument("--train_split", default=d.train_split, help="sub-folder of --dataroot used for training")
    group.add_argument("--val_split", default=d.val_split, help="sub-folder of --dataroot used for validation")
    group.add_argument("--max_bad_fraction", type=probability, default=d.max_bad_fraction,
                       help="unreadable images are skipped and listed in skipped.csv; more than this fraction "
                       "of a split is an error")
    group.add_argument("--batch_size", type=positive_int, default=d.batch_size, help="images per step (per process)")
    _add_limits(group, d, whole=False)
    group.add_argument("--serial_batches", action="store_true", help="keep file order instead of shuffling")
    group.add_argument("--class_bal", action="store_true",
                       help="sample real and fake images with equal probability (with replacement)")

    group = parser.add_argument_group("preprocessing and augmentation (training)")
    group.add_argument("--load_size", "--loadSize", type=positive_int, default=d.load_size,
                       help="resize the shorter side to this many pixels before cropping")
    group.add_argument("--crop_size", "--cropSize", type=positive_int, default=d.crop_size,
                       help="crop side in pixels")
    group.add_argument("--square_resize", action="store_true",
                       help="resize to --load_size x --load_size, not keeping the aspect ratio (NPR); the detector "
                       "is then tested resized so too")
    group.add_argument("--no_resize", action="store_true", help="skip the resize to --load_size")
    group.add_argument("--no_crop", action="store_true", help="skip the random crop (whole images; batch 1 "
                       "unless all images share a size)")
    group.add_argument("--crop_grid", type=positive_int, default=d.crop_grid,
                       help="random crops start at multiples of this many pixels, in phase with a generator's "
                       "upsampling grid (4 for two 2x upsamplings) as whole test images are")
    group.add_argument("--no_flip", action="store_true", help="no random horizontal flip")
    group.add_argument("--rz_interp", type=subset_of(INTERPOLATIONS), default=d.rz_interp,
                       help="resize interpolations, one drawn per image: " + ",".join(INTERPOLATIONS))
    group.add_argument("--blur_prob", type=probability, default=d.blur_prob, help="probability of Gaussian blur")
    group.add_argument("--blur_sig", type=sigma_range, default=d.blur_sig,
                       help="blur sigma: one value, or lo,hi for sigma ~ U[lo, hi]")
    group.add_argument("--jpg_prob", type=probability, default=d.jpg_prob, help="probability of JPEG compression")
    group.add_argument("--jpg_method", type=subset_of(JPEG_METHODS), default=d.jpg_method,
                       help="JPEG encoders, one drawn per image: cv2,pil")
    group.add_argument("--jpg_qual", type=quality_range, default=d.jpg_qual,
                       help="JPEG quality: one value, or lo,hi for a uniform integer in [lo, hi] (inclusive)")
    group.add_argument("--test_no_crop", action="store_true",
                       help="the detector is tested, and so validated, on whole images rather than center crops "
                       "of --crop_size; recorded in its checkpoints, which eval.py and demo.py follow")
    group.add_argument("--val_perturb", action="store_true",
                       help="also blur/JPEG the validation images as the authors' code did (sigma and quality "
                       "at the middle of their ranges, PIL JPEG); the draws are fixed per image, same every epoch")

    group = parser.add_argument_group("model")
    group.add_argument("--arch", type=arch_name, default=d.arch,
                       help="backbone: " + help_text())
    group.add_argument("--init_gain", type=positive_float, default=d.init_gain,
                       help="std of the new final layer's weights")
    group.add_argument("--pretrained_path", type=Path, default=d.pretrained_path,
                       help="ImageNet state dict of the backbone (instead of torchvision's download)")
    group.add_argument("--no_pretrained", action="store_true", help="start the backbone from random weights")

    group = parser.add_argument_group("optimization")
    group.add_argument("--optim", choices=OPTIMIZERS, default=d.optim, help="optimizer (SGD without momentum)")
    group.add_argument("--lr", type=positive_float, default=d.lr, help="initial learning rate")
    group.add_argument("--beta1", type=probability, default=d.beta1, help="Adam beta1 (beta2 is 0.999)")
    group.add_argument("--epochs", "--niter", type=positive_int, default=d.epochs,
                       help="maximum number of epochs (early stopping usually ends training sooner); the length of "
                       "--lr_schedule cosine")
    group.add_argument("--patience", "--earlystop_epoch", type=positive_int, default=d.patience,
                       help="epochs without a gain of the --select_on metric before the LR is divided by 10")
    group.add_argument("--lr_schedule", choices=LR_SCHEDULES, default=d.lr_schedule,
                       help="plateau = the paper's early stopping; cosine = half a cosine from --lr over --epochs, "
                       "every epoch run")
    group.add_argument("--select_on", choices=WATCHED, default=d.select_on,
                       help="validation metric that early stopping watches and best.pth follows: acc (at 0.5, the "
                       "paper's), ap or loss; last: best.pth is the last epoch (with a fixed-length schedule)")
    group.add_argument("--swa_epochs", type=nonneg_int, default=d.swa_epochs,
                       help="N > 0: the final weights are the mean of the last N epochs', BatchNorm statistics "
                       "recomputed on the training set (with --select_on last)")
    group.add_argument("--delr_freq", type=nonneg_int, default=d.delr_freq,
                       help="0 = --lr_schedule; N = NPR's schedule: LR x --lr_decay every N epochs, "
                       "every epoch run")
    group.add_argument("--lr_decay", type=probability, default=d.lr_decay, help="LR factor of --delr_freq")
    group.add_argument("--seed", type=nonneg_int, default=d.seed,
                       help="seeds weights of the new layer, data order and every augmentation draw")

    group = parser.add_argument_group("run folder and checkpoints")
    group.add_argument("--name", default=d.name, help="run folder name under --checkpoints_dir")
    group.add_argument("--checkpoints_dir", type=Path, default=d.checkpoints_dir,
                       help="run folders go to <checkpoints_dir>/<name>/")
    group.add_argument("--loss_freq", type=positive_int, default=d.loss_freq,
                       help="log the training loss every N steps")
    group.add_argument("--save_latest_freq", type=positive_int, default=d.save_latest_freq,
                       help="also write the `latest` checkpoint every N steps")
    group.add_argument("--save_epoch_freq", type=positive_int, default=d.save_epoch_freq,
                       help="keep `epoch_<k>` every N epochs")
    group.add_argument("--continue_train", action="store_true", help="resume the run named --name")
    group.add_argument("--epoch", default=d.epoch, help="checkpoint to resume from: latest, best or a number")
    group.add_argument("--new_optim", action="store_true", help="on resume, start a fresh optimizer")
    _add_runtime(parser, training=True)


def train_parser() -> Parser:
    parser = _parser("train.py", "Train the real/fake detector (Wang et al., CVPR 2020 recipe).")
    _add_train_arguments(parser)
    return parser


def _train_values(parser: Parser, argv: Sequence[str] | None, values: dict[str, Any]) -> dict[str, Any]:
    """train.py's ``values`` with the recipe's defaults filled in where ``argv`` sets nothing."""
    return apply_recipe(values, parser.given(argv))


def parse_train_options(argv: Sequence[str] | None = None) -> TrainConfig:
    parser = train_parser()
    return _config(parser, TrainConfig, _train_values(parser, argv, vars(parser.parse_args(argv))))


# ------------------------------------------------------------------------------------------ eval.py, demo.py
def _add_model(parser: argparse.ArgumentParser, *flags: str, default: Path | None = EvalConfig.model_path,
               default_help: str = "") -> argparse._ArgumentGroup:
    group = parser.add_argument_group("model")
    group.add_argument(*flags, "--model_path", type=model_path, default=default,
                       help="checkpoint: the authors' release, a training checkpoint or a bare state dict; "
                       f"{' or '.join(RELEASED)} name a released model in weights/, a training run's folder its "
                       f"best.pth{default_help}")
    group.add_argument("--arch", type=arch_name, default=None,
                       help="backbone (default: the one saved in the checkpoint, else the family that recognizes its "
                       "keys, e.g. npr for NPR's)")
    return group


def _add_nonfinite(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--allow_nonfinite", action="store_true",
                       help="load weights that hold NaN or infinite values (refused by default)")


def eval_parser() -> argparse.ArgumentParser:
    d = EvalConfig
    parser = _parser("eval.py", "Evaluate a detector on every test set under --dataroot (Table 2).")
    group = parser.add_argument_group("data")
    group.add_argument("--dataroot", type=Path, default=d.dataroot,
                       help="the suite's folder in its published layout (forensynths: <set>/{0_real,1_fake} or "
                       "<set>/<subclass>/{0_real,1_fake})")
    group.add_argument("--suite", choices=tuple(SUITES), default=d.suite,
                       help="test suite: " + "; ".join(f"{k} = {v.title}" for k, v in SUITES.items()))
    group.add_argument("--sets", type=name_list, default=d.sets,
                       help="comma-separated sets to evaluate, in this order (default: all found, Table 2 order)")
    _add_protocol(group, "--sets", {k: p for suite in SUITES.values() for k, p in suite.protocols.items()})
    group.add_argument("--batch_size", type=positive_int, default=d.batch_size, help="images per forward pass")
    _add_limits(group, d)
    _add_nonfinite(_add_model(parser, "-m"))

    group = parser.add_argument_group("preprocessing (the paper's test protocol: no resize, center crop 224)")
    group.add_argument("--crop_size", "--cropSize", type=positive_int, default=d.crop_size,
                       help="center crop side (default: the checkpoint's test protocol, else 224)")
    group.add_argument("--no_crop", action="store_true",
                       help="whole images; images of equal size are batched together")
    group.add_argument("--resize", type=positive_int, default=d.resize, metavar="N",
                       help="resize the shorter side to N (bilinear) before cropping")
    group.add_argument("--preprocess", choices=tuple(PREPROCESSING), default=d.preprocess,
                       help="a named test protocol instead of the three flags above: " + "; ".join(
                           f"{k} = {v.describe()}" for k, v in PREPROCESSING.items()))
    group.add_argument("--calibrate_on", default=d.calibrate_on, metavar="SET_OR_DIR",
                       help="choose a threshold on this set (a set name under --dataroot or a folder, e.g. the "
                       "ProGAN val split) and report acc_calibrated on the others")

    group = parser.add_argument_group("test-time perturbations (robustness, the paper's Fig. 5)")
    group.add_argument("--blur_sigma", type=nonneg_float, default=d.blur_sigma,
                       help="Gaussian blur of every test image")
    group.add_argument("--jpeg_quality", type=jpeg_quality, default=d.jpeg_quality,
                       help="JPEG-compress every test image")
    group.add_argument("--jpeg_method", choices=JPEG_METHODS, default=d.jpeg_method,
                       help="JPEG encoder for --jpeg_quality and --sweep jpeg")
    group.add_argument("--resize_scale", type=positive_float, default=d.resize_scale,
                       help="rescale every test image by this factor (bilinear)")
    group.add_argument("--sweep", action=SweepAction, nargs=2, metavar=("KIND", "VALUES"), default=d.sweep,
                       help="evaluate at each value: blur 0,1,2,3 | jpeg 100,90,...,30 | resize 1,0.75,0.5; "
                       "writes sweep_<kind>.csv and .png")

    group = parser.add_argument_group("output")
    group.add_argument("--results_dir", type=Path, default=d.results_dir,
                       help="results go to <results_dir>/<name>/")
    group.add_argument("--name", default=d.name,
                       help="results sub-folder (default: the checkpoint file name without extension)")
    _add_overwrite(group)
    group.add_argument("--strict", action="store_true",
                       help="an unreadable image is an error (default: skipped and listed in skipped.csv)")
    group.add_argument("--resume", action="store_true",
                       help="continue an interrupted run in its folder: keep its finished sets, score the rest")
    _add_runtime(parser)
    return parser


def parse_eval_options(argv: Sequence[str] | None = None) -> EvalConfig:
    return _parsed(eval_parser(), EvalConfig, argv)


def demo_parser() -> argparse.ArgumentParser:
    d = DemoConfig
    parser = _parser("demo.py", "Probability that an image (or each image of a folder or glob) is synthetic.")
    parser.add_argument("-f", "--file", required=True,
                        help="an image, a folder (a 0_real/1_fake folder also reports AP) or a quoted glob")
    _add_nonfinite(_add_model(parser, "-m"))
    parser.add_argument("-c", "--crop", type=positive_int, default=d.crop,
                        help="center-crop to this size first (default: the checkpoint's test protocol, else the "
                        "whole image, as the authors' demo)")
    parser.add_argument("--no_crop", action="store_true", help="score the whole image whatever the checkpoint "
                        "records")
    parser.add_argument("--threshold", type=probability, default=d.threshold,
                        help="called synthetic when the probability exceeds this")
    parser.add_argument("--out", type=Path, default=d.out, help="also write path,probability rows to this CSV")
    parser.add_argument("--batch_size", type=positive_int, default=d.batch_size,
                        help="images per forward pass (folders)")
    _add_limits(parser.add_argument_group("limits"), d)
    parser.add_argument("--strict", action="store_true",
                        help="in a folder, an unreadable image is an error (default: skipped and reported)")
    parser.add_argument("--use_cpu", dest="device", action="store_const", const="cpu", default=argparse.SUPPRESS,
                        help="authors' spelling of --device cpu")
    _add_runtime(parser)
    return parser


def parse_demo_options(argv: Sequence[str] | None = None) -> DemoConfig:
    return _parsed(demo_parser(), DemoConfig, argv)


# ------------------------------------------------------------------------------------------------ app.py
def app_parser() -> argparse.ArgumentParser:
    d = AppConfig
    parser = _parser("app.py", "A local web page (and a scripting API) for the detector: drop images, see the "
                     "probability that each is synthetic and its high-pass spectrum.")
    group = _add_model(parser, "-m", default=d.model_path, default_help=" (default: the quickstart's detector)")
    group.add_argument("--calibration", type=Path, default=d.calibration,
                       help="an eval.py calibration.json: its threshold is the page's default")
    group = parser.add_argument_group("server")
    # Gradio's own variables, which a Hugging Face Space sets, are the defaults when present.
    group.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", d.host),
                       help="interface to serve on; 0.0.0.0 exposes the page to your network (default: "
                       "$GRADIO_SERVER_NAME, else 127.0.0.1)")
    group.add_argument("--port", type=positive_int, default=int(os.environ.get("GRADIO_SERVER_PORT", d.port)),
                       help="TCP port (default: $GRADIO_SERVER_PORT, else 7860)")
    group.add_argument("--max_upload_mb", type=positive_float, default=d.max_upload_mb,
                       help="refuse uploads larger than this")
    group.add_argument("--max_megapixels", type=positive_float, default=d.max_megapixels,
                       help="refuse larger images when the detector scores whole images (demo.py scores them)")
    _add_runtime(parser)
    return parser


def parse_app_options(argv: Sequence[str] | None = None) -> AppConfig:
    return _parsed(app_parser(), AppConfig, argv)


# ------------------------------------------------------------------------------------------- quickstart.py
def quickstart_parser() -> argparse.ArgumentParser:
    # The quickstart's presets hold the mini-benchmark's settings, which need its image libraries.
    from commands.quickstart import PRESETS, QuickstartConfig

    d = QuickstartConfig
    parser = _parser("quickstart.py", "Offline mini-benchmark: build it, train the detector, evaluate, demo.")
    parser.add_argument("--root", type=Path, default=d.root, help="where the benchmark is built")
    parser.add_argument("--size", choices=tuple(PRESETS), default=d.size,
                        help="preset: tiny (seconds, for tests), small (fewer images and epochs) or default (the "
                        "measured run)")
    parser.add_argument("--seed", type=nonneg_int, default=d.seed, help="seeds the detector's training")
    parser.add_argument("--bench_seed", type=nonneg_int, default=d.bench_seed,
                        help="seeds the benchmark build (another value rebuilds --root)")
    parser.add_argument("--arch", type=arch_name, default=d.arch,
                        help="the detector's network (from scratch, same recipe): e.g. npr to compare with NPR")
    parser.add_argument("--real_dir", type=Path, default=d.real_dir,
                        help="your own folder of photographs instead of the packaged ones")
    parser.add_argument("--retrain", action="store_true", help="train again even if this detector exists")
    parser.add_argument("--checkpoints_dir", type=Path, default=d.checkpoints_dir,
                        help="the detector goes to <checkpoints_dir>/<run>/, where <run> is "
                        "quickstart_<size>_seed<seed>[_bench<bench_seed>][_<arch>]")
    parser.add_argument("--results_dir", type=Path, default=d.results_dir,
                        help="the tables go to <results_dir>/<run>/")
    _add_runtime(parser)
    return parser


def parse_quickstart_options(argv: Sequence[str] | None = None) -> QuickstartConfig:
    from commands.quickstart import QuickstartConfig

    return _parsed(quickstart_parser(), QuickstartConfig, argv)


# ---------------------------------------------------------------------------------------------- analyze.py
def _add_spectra(parser: argparse.ArgumentParser) -> None:
    d = SpectraConfig
    parser.add_argument("--dataroot", type=Path, default=d.dataroot, help="folder of test sets")
    parser.add_argument("--sets", type=name_list, default=d.sets, help="comma-separated sets (default: all found)")
    parser.add_argument("--max_images", type=positive_int, default=d.max_images,
                        help="images per set and label, a seeded random choice (the paper: 2000)")
    parser.add_argument("--crop_size", type=positive_int, default=d.crop_size,
                        help="center-crop side (default: the smallest side among the images, at most 256)")
    parser.add_argument("--seed", type=nonneg_int, default=d.seed, help="seeds the choice of images")
    parser.add_argument("--out", type=Path, default=d.out, help="output folder")
    _add_overwrite(parser)


def _add_ranking(parser: argparse.ArgumentParser) -> None:
    d = RankingConfig
    parser.add_argument("--scores", type=Path, required=True, help="an eval.py scores.csv")
    parser.add_argument("--threshold", type=probability, default=d.threshold, help="fake when P(fake) > threshold")
    parser.add_argument("--max_images", type=positive_int, default=d.max_images,
                        help="misclassified images shown per kind of mistake and set")
    parser.add_argument("--thumbnail", type=positive_int, default=d.thumbnail, help="thumbnail side in pixels")
    parser.add_argument("--out", type=Path, default=d.out, help="output folder (default: ranking/ beside --scores)")
    _add_overwrite(parser)


def _add_ablation(parser: argparse.ArgumentParser) -> None:
    d = AblationConfig
    _add_train_arguments(parser)
    group = parser.add_argument_group("ablation")
    group.add_argument("--num_classes", type=positive_int_list, default=d.num_classes,
                       help="training-class counts; nested subsets, chosen by --seed")
    group.add_argument("--test_dataroot", type=Path, default=d.test_dataroot, help="folder of test sets")
    group.add_argument("--test_sets", type=name_list, default=d.test_sets,
                       help="comma-separated test sets (default: --protocol's, else every set found)")
    group.add_argument("--eval_crop_size", type=positive_int, default=d.eval_crop_size,
                       help="center crop of the test images (default: the runs' test protocol)")
    group.add_argument("--eval_no_crop", action="store_true", help="evaluate whole test images")
    group.add_argument("--eval_batch_size", type=positive_int, default=d.eval_batch_size,
                       help="images per forward pass in eval")
    group.add_argument("--results_dir", type=Path, default=d.results_dir,
                       help="ablation.csv/.md/.png go to <results_dir>/<name>/")
    _add_overwrite(group)


# name: (add the arguments, the config, what it does)
ANALYSES = {"spectra": (_add_spectra, SpectraConfig, "mean spectra of high-pass residuals, real vs fake (Fig. 7)"),
            "ranking": (_add_ranking, RankingConfig, "galleries by score percentile, mistakes, and HTML pages "
                        "(Fig. 6)"),
            "ablation": (_add_ablation, AblationConfig, "train on growing class subsets, evaluate each (Fig. 3)")}


def analyze_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="analyze.py", description="The paper's analyses, written as figures and data files.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add, _, description) in ANALYSES.items():
        sub = commands.add_parser(name, help=description, description=description)
        add(sub)
        _add_debug(sub)
    return parser


def parse_analyze_options(argv: Sequence[str] | None = None) -> tuple[str, Any, bool]:
    """(command, its config, --debug)."""
    parser = analyze_parser()
    values = vars(parser.parse_args(argv))
    command, debug = values.pop("command"), values["debug"]
    _, cls, _ = ANALYSES[command]
    if cls is AblationConfig:
        train_keys = _fields(TrainConfig)
        values = _train_values(parser, argv, values)
        train = _config(parser, TrainConfig, {k: v for k, v in values.items() if k in train_keys})
        values = {k: v for k, v in values.items() if k not in train_keys} | {"train": train}
    else:
        values.pop("debug")
    return command, _config(parser, cls, values), debug


# ------------------------------------------------------------------------------------------- benchmark.py
def benchmark_parser() -> argparse.ArgumentParser:
    d = BenchmarkConfig
    parser = _parser("benchmark.py", "Throughput of the model alone and of eval.py's and train.py's paths, with "
                     "peak memory, on CPU and (when present) CUDA.")
    parser.add_argument("--devices", type=subset_of(DEVICES), default=d.devices,
                        help="comma-separated (default: cpu, and cuda when available)")
    parser.add_argument("--arch", type=arch_name, default=d.arch, help="backbone: " + help_text())
    parser.add_argument("--batch_size", type=positive_int, default=d.batch_size, help="images per batch")
    parser.add_argument("--channels_last", choices=CHANNELS_LAST, default=d.channels_last,
                        help="model and batch layout; auto = what eval.py/train.py use (channels_last on CUDA)")
    parser.add_argument("--images", type=positive_int, default=d.images,
                        help="distinct images generated per set (default: 128 on CPU, 4096 on CUDA)")
    parser.add_argument("--min_seconds", type=positive_float, default=d.min_seconds,
                        help="each measured span lasts at least this long, after warm-up and the loader's queue")
    parser.add_argument("--e2e_images", type=positive_int, default=d.e2e_images,
                        help="images of the end-to-end train.py and eval.py runs (default: 128 on CPU, 65536 on "
                        "CUDA)")
    parser.add_argument("--image_size", type=positive_int, default=d.image_size, help="side of the generated PNGs")
    parser.add_argument("--crop_size", type=positive_int, default=d.crop_size, help="center / random crop side")
    parser.add_argument("--out", type=Path, default=d.out, help="benchmark.json and benchmark.md go here")
    _add_overwrite(parser)
    _add_runtime(parser, device=False)
    return parser


def parse_benchmark_options(argv: Sequence[str] | None = None) -> BenchmarkConfig:
    return _parsed(benchmark_parser(), BenchmarkConfig, argv)


# ------------------------------------------------------------------------------- python -m {dataset,weights}.download
def dataset_download_parser() -> argparse.ArgumentParser:
    from data.forensynths import BASE_URL, SPLITS
    from data.suite_downloads import DOWNLOADS, ZENODO_API

    parser = _parser("python -m dataset.download", "Download and extract test data with resume and checksums "
                     "(ForenSynths splits from the authors' mirror, Synthbuster from Zenodo), or count what is "
                     "there; for suites without a direct link, say where to get them.")
    parser.add_argument("names", nargs="+", choices=(*SPLITS, *SUITES), metavar="NAME",
                        help="ForenSynths splits: " + "; ".join(f"{k} ({v.size})" for k, v in SPLITS.items())
                        + "; suites: " + ", ".join(f"{n} ({'download' if n in DOWNLOADS else 'where to get it'})"
                                                   for n in SUITES))
    parser.add_argument("--root", type=Path, default=Path("dataset"),
                        help="data goes to <root>/<name>/, archives and SHA256SUMS.json to <root>/downloads/")
    parser.add_argument("--base_url", default=BASE_URL, help="the ForenSynths mirror to download from")
    parser.add_argument("--zenodo_api", default=ZENODO_API, help="Zenodo's records API (Synthbuster)")
    parser.add_argument("--verify", action="store_true",
                        help="download nothing: count the images of each ForenSynths split against the reference "
                        "counts")
    parser.add_argument("--delete_archives", action="store_true",
                        help="delete the archives once extracted (their checksums stay recorded)")
    return parser


def parse_dataset_download_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return dataset_download_parser().parse_args(argv)


def weights_download_parser() -> argparse.ArgumentParser:
    parser = _parser("python -m weights.download", "Download the authors' released models and check their sha256.")
    parser.add_argument("names", nargs="*", type=released_name, metavar="NAME",
                        help=f"{', '.join(RELEASED)} (default: both)")
    parser.add_argument("--dir", type=Path, default=Path("weights"), help="where the .pth files go")
    return parser


def parse_weights_download_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    opt = weights_download_parser().parse_args(argv)
    opt.names = opt.names or list(RELEASED)
    return opt
