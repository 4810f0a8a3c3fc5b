"""One strict argparse module for every script.

Flags use snake_case. The authors' spellings that users already type (``--loadSize``, ``--cropSize``,
``--niter``, ``--earlystop_epoch``, ``--num_threads``, ``--gpu_ids``) are accepted as aliases, with the
authors' comma syntax (``--blur_sig 0.0,3.0``, ``--jpg_qual 30,100``, ``--classes a,b,c``). Ranges and lists
are parsed once, here, into tuples; nothing downstream re-parses strings.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from data.datasets import PROTOCOLS
from data.forensynths import BASE_URL, SPLITS
from data.transforms import JPEG_ENCODERS, PIL_INTERPOLATION
from networks import ARCHS
from networks.released import RELEASED, model_path

INTERPOLATIONS = tuple(PIL_INTERPOLATION)
JPEG_METHODS = tuple(JPEG_ENCODERS)
# The authors' option spelled `res50`; it still selects ResNet-50.
ARCH_ALIASES = {"res50": "resnet50"}


# ----------------------------------------------------------------------------------------------- value types
def probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability in [0, 1]")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def nonneg_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative integer")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def nonneg_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative number")
    return value


def jpeg_quality(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text!r}: JPEG quality must lie in 1..100")
    return value


def _pair(text: str, convert: Callable[[str], Any]) -> tuple[Any, Any]:
    parts = [p for p in text.split(",") if p.strip()]
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"{text!r}: give one value or two separated by a comma")
    values = [convert(p.strip()) for p in parts]
    lo, hi = values[0], values[-1]
    if lo > hi:
        raise argparse.ArgumentTypeError(f"{text!r}: the first value must not exceed the second")
    return lo, hi


def sigma_range(text: str) -> tuple[float, float]:
    """``"0.0,3.0"`` -> (0.0, 3.0), sigma drawn uniformly; ``"1.5"`` -> (1.5, 1.5), a fixed sigma."""
    lo, hi = _pair(text, float)
    if lo < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: blur sigmas must be non-negative")
    return lo, hi


def quality_range(text: str) -> tuple[int, int]:
    """``"30,100"`` -> (30, 100), an inclusive integer range as the authors' code reads it."""
    lo, hi = _pair(text, int)
    if lo < 1 or hi > 100:
        raise argparse.ArgumentTypeError(f"{text!r}: JPEG qualities must lie in 1..100")
    return lo, hi


def subset_of(choices: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        values = tuple(v.strip() for v in text.split(",") if v.strip())
        unknown = [v for v in values if v not in choices]
        if not values or unknown:
            raise argparse.ArgumentTypeError(f"{text!r}: choose one or more of {','.join(choices)}")
        return values

    parse.__name__ = "list"
    return parse


def positive_int_list(text: str) -> tuple[int, ...]:
    values = tuple(positive_int(v.strip()) for v in text.split(",") if v.strip())
    if not values:
        raise argparse.ArgumentTypeError("give at least one number")
    return values


def name_list(text: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    if not values:
        raise argparse.ArgumentTypeError("give at least one name")
    return values


def arch_name(text: str) -> str:
    name = ARCH_ALIASES.get(text, text)
    if name not in ARCHS:
        raise argparse.ArgumentTypeError(f"{text!r}: choose one of {', '.join(ARCHS)}")
    return name


def released_name(text: str) -> str:
    if text not in RELEASED:
        raise argparse.ArgumentTypeError(f"{text!r}: choose one of {', '.join(RELEASED)}")
    return text


def device_name(text: str) -> str:
    if text in ("auto", "cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: choose auto, cpu, cuda or cuda:N")


class GpuIdsAction(argparse.Action):
    """The authors' ``--gpu_ids``: ``-1`` means CPU, ``N`` means ``cuda:N``; several GPUs go through torchrun."""

    def __call__(self, parser, namespace, values, option_string=None):
        ids = [v.strip() for v in str(values).split(",") if v.strip()]
        if ids == ["-1"]:
            namespace.device = "cpu"
        elif len(ids) == 1 and ids[0].isdigit():
            namespace.device = f"cuda:{ids[0]}"
        elif len(ids) > 1 and all(i.isdigit() for i in ids):
            parser.error(
                f"--gpu_ids {values}: one process drives one GPU here; for {len(ids)} GPUs run "
                f"`torchrun --nproc_per_node {len(ids)} train.py ...` (CUDA_VISIBLE_DEVICES={values} selects them)"
            )
        else:
            parser.error(f"--gpu_ids {values!r}: give -1 (CPU) or a GPU index")


# Test-time perturbations that eval.py can sweep: the type of their values and the fixed-value flag each stands for.
SWEEP_KINDS: dict[str, Callable[[str], Any]] = {"blur": nonneg_float, "jpeg": jpeg_quality, "resize": positive_float}
SWEPT_FLAG = {"blur": "blur_sigma", "jpeg": "jpeg_quality", "resize": "resize_scale"}


class SweepAction(argparse.Action):
    """``--sweep KIND V1,V2,...`` -> (kind, (v1, v2, ...)), each value checked by the kind's type."""

    def __call__(self, parser, namespace, values, option_string=None):
        kind, text = values
        if kind not in SWEEP_KINDS:
            parser.error(f"--sweep {kind}: choose one of {', '.join(SWEEP_KINDS)}")
        try:
            points = tuple(SWEEP_KINDS[kind](v.strip()) for v in text.split(",") if v.strip())
        except (argparse.ArgumentTypeError, ValueError) as err:
            parser.error(f"--sweep {kind} {text}: {err}")
        if not points:
            parser.error(f"--sweep {kind}: give at least one value")
        setattr(namespace, self.dest, (kind, points))


# -------------------------------------------------------------------------------------------------- parsers
def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    # Abbreviations are off: a typo must not silently select another flag.
    return argparse.ArgumentParser(prog=prog, description=description, allow_abbrev=False,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def _add_runtime(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("runtime")
    group.add_argument("--device", type=device_name, default="auto",
                       help="auto = cuda when available, else cpu; under torchrun each process takes cuda:LOCAL_RANK")
    group.add_argument("--gpu_ids", action=GpuIdsAction, metavar="IDS", default=argparse.SUPPRESS,
                       help="authors' spelling: -1 = cpu, N = cuda:N (sets --device)")
    group.add_argument("--amp", choices=("off", "bf16", "fp16"), default="off",
                       help="autocast precision; fp16 also uses a gradient scaler")
    group.add_argument("--num_workers", "--num_threads", type=nonneg_int, default=4,
                       help="DataLoader worker processes (0 = load in the main process)")
    group.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")


def runtime_flags(opt: argparse.Namespace) -> list[str]:
    """The runtime options of ``opt`` as command-line flags, for a script that runs another one's code."""
    return ["--device", opt.device, "--amp", opt.amp, "--num_workers", str(opt.num_workers)]


def _add_overwrite(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the files of an earlier run in the output folder (otherwise an error)")


def _add_augmentation(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("preprocessing and augmentation (training)")
    group.add_argument("--load_size", "--loadSize", type=positive_int, default=256,
                       help="resize the shorter side to this many pixels before cropping")
    group.add_argument("--crop_size", "--cropSize", type=positive_int, default=224, help="crop side in pixels")
    group.add_argument("--no_resize", action="store_true", help="skip the resize to --load_size")
    group.add_argument("--no_crop", action="store_true", help="skip the random crop (whole images; batch 1 "
                       "unless all images share a size)")
    group.add_argument("--no_flip", action="store_true", help="no random horizontal flip")
    group.add_argument("--rz_interp", type=subset_of(INTERPOLATIONS), default=("bilinear",),
                       help="resize interpolations, one drawn per image: " + ",".join(INTERPOLATIONS))
    group.add_argument("--blur_prob", type=probability, default=0.0, help="probability of Gaussian blur")
    group.add_argument("--blur_sig", type=sigma_range, default=(0.5, 0.5),
                       help="blur sigma: one value, or lo,hi for sigma ~ U[lo, hi]")
    group.add_argument("--jpg_prob", type=probability, default=0.0, help="probability of JPEG compression")
    group.add_argument("--jpg_method", type=subset_of(JPEG_METHODS), default=("cv2",),
                       help="JPEG encoders, one drawn per image: cv2,pil")
    group.add_argument("--jpg_qual", type=quality_range, default=(75, 75),
                       help="JPEG quality: one value, or lo,hi for a uniform integer in [lo, hi] (inclusive)")
    group.add_argument("--val_perturb", action="store_true",
                       help="also blur/JPEG the validation images as the authors' code did (sigma and quality "
                       "at the middle of their ranges, PIL JPEG); the draws are fixed per image, same every epoch")


def train_parser() -> argparse.ArgumentParser:
    parser = _parser("train.py", "Train the real/fake detector (Wang et al., CVPR 2020 recipe).")
    _add_train_arguments(parser)
    return parser


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--dataroot", type=Path, default=Path("./dataset/"),
                       help="folder holding <train_split>/<class>/{0_real,1_fake} and <val_split>/...")
    group.add_argument("--classes", type=name_list, default=None,
                       help="comma-separated classes to train on (default: every class folder found)")
    _add_protocol(group, "--classes")
    group.add_argument("--train_split", default="train", help="sub-folder of --dataroot used for training")
    group.add_argument("--val_split", default="val", help="sub-folder of --dataroot used for validation")
    group.add_argument("--max_bad_fraction", type=probability, default=0.01,
                       help="unreadable images are skipped and listed in skipped.csv; more than this fraction "
                       "of a split is an error")
    group.add_argument("--batch_size", type=positive_int, default=64, help="images per step (per process)")
    group.add_argument("--serial_batches", action="store_true", help="keep file order instead of shuffling")
    group.add_argument("--class_bal", action="store_true",
                       help="sample real and fake images with equal probability (with replacement)")
    _add_augmentation(parser)

    group = parser.add_argument_group("model")
    group.add_argument("--arch", type=arch_name, default="resnet50", help="backbone: " + ", ".join(ARCHS))
    group.add_argument("--init_gain", type=positive_float, default=0.02, help="std of the new final layer's weights")
    group.add_argument("--pretrained_path", type=Path, default=None,
                       help="ImageNet state dict of the backbone (instead of torchvision's download)")
    group.add_argument("--no_pretrained", action="store_true", help="start the backbone from random weights")

    group = parser.add_argument_group("optimization")
    group.add_argument("--optim", choices=("adam", "sgd"), default="adam")
    group.add_argument("--lr", type=positive_float, default=1e-4, help="initial learning rate")
    group.add_argument("--beta1", type=probability, default=0.9, help="Adam beta1 (beta2 is 0.999)")
    group.add_argument("--epochs", "--niter", type=positive_int, default=10000,
                       help="maximum number of epochs (early stopping usually ends training sooner)")
    group.add_argument("--patience", "--earlystop_epoch", type=positive_int, default=5,
                       help="epochs without validation-accuracy gain before the LR is divided by 10")

    group = parser.add_argument_group("run folder and checkpoints")
    group.add_argument("--name", default="experiment_name", help="run folder name under --checkpoints_dir")
    group.add_argument("--checkpoints_dir", type=Path, default=Path("./checkpoints"))
    group.add_argument("--loss_freq", type=positive_int, default=400, help="log the training loss every N steps")
    group.add_argument("--save_latest_freq", type=positive_int, default=2000,
                       help="also write the `latest` checkpoint every N steps")
    group.add_argument("--save_epoch_freq", type=positive_int, default=20, help="keep `epoch_<k>` every N epochs")
    group.add_argument("--continue_train", action="store_true", help="resume the run named --name")
    group.add_argument("--epoch", default="latest", help="checkpoint to resume from: latest, best or a number")
    group.add_argument("--new_optim", action="store_true", help="on resume, start a fresh optimizer")
    _add_runtime(parser)
    parser.add_argument("--seed", type=nonneg_int, default=0,
                        help="seeds weights of the new layer, data order and every augmentation draw")


def _add_protocol(group: argparse._ArgumentGroup, replaces: str) -> None:
    group.add_argument("--protocol", choices=tuple(PROTOCOLS), default=None,
                       help=f"sets {replaces} by name: " + "; ".join(f"{k} = {p.description}"
                                                                     for k, p in PROTOCOLS.items()))


def _apply_protocol(parser: argparse.ArgumentParser, opt: argparse.Namespace, field: str, attr: str) -> None:
    """Write the protocol's list into ``opt.<field>`` so that opt.json records what was used."""
    if opt.protocol is None:
        return
    if getattr(opt, field) is not None:
        parser.error(f"--protocol and --{field} exclude each other")
    setattr(opt, field, getattr(PROTOCOLS[opt.protocol], attr))


def _validate_train(parser: argparse.ArgumentParser, opt: argparse.Namespace) -> None:
    _apply_protocol(parser, opt, "classes", "classes")
    if not opt.no_resize and not opt.no_crop and opt.crop_size > opt.load_size:
        parser.error(f"--crop_size {opt.crop_size} exceeds --load_size {opt.load_size}")
    if opt.no_pretrained and opt.pretrained_path is not None:
        parser.error("--no_pretrained and --pretrained_path exclude each other")
    if not (opt.epoch in ("latest", "best") or opt.epoch.isdigit()):
        parser.error(f"--epoch {opt.epoch!r}: give latest, best or an epoch number")
    if opt.new_optim and not opt.continue_train:
        parser.error("--new_optim only applies with --continue_train")


def parse_train_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = train_parser()
    opt = parser.parse_args(argv)
    _validate_train(parser, opt)
    return opt


def _add_model(parser: argparse.ArgumentParser, *flags: str) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(*flags, "--model_path", type=model_path, default=Path("weights/blur_jpg_prob0.5.pth"),
                       help="checkpoint: the authors' release, a training checkpoint or a bare state dict; "
                       f"{' or '.join(RELEASED)} name a released model in weights/")
    group.add_argument("--arch", type=arch_name, default=None,
                       help="backbone (default: the one saved in the checkpoint, else resnet50)")


def eval_parser() -> argparse.ArgumentParser:
    parser = _parser("eval.py", "Evaluate a detector on every test set under --dataroot (Table 2).")
    group = parser.add_argument_group("data")
    group.add_argument("--dataroot", type=Path, default=Path("./dataset/test"),
                       help="folder of test sets <set>/{0_real,1_fake} or <set>/<subclass>/{0_real,1_fake}")
    group.add_argument("--sets", type=name_list, default=None,
                       help="comma-separated sets to evaluate, in this order (default: all found, Table 2 order)")
    _add_protocol(group, "--sets")
    group.add_argument("--batch_size", type=positive_int, default=64, help="images per forward pass")
    _add_model(parser)

    group = parser.add_argument_group("preprocessing (the paper's test protocol: no resize, center crop 224)")
    group.add_argument("--crop_size", "--cropSize", type=positive_int, default=224, help="center crop side")
    group.add_argument("--no_crop", action="store_true",
                       help="whole images; images of equal size are batched together")
    group.add_argument("--resize", type=positive_int, default=None, metavar="N",
                       help="resize the shorter side to N (bilinear) before cropping")
    group.add_argument("--calibrate_on", default=None, metavar="SET_OR_DIR",
                       help="choose a threshold on this set (a set name under --dataroot or a folder, e.g. the "
                       "ProGAN val split) and report acc_calibrated on the others")

    group = parser.add_argument_group("test-time perturbations (robustness, the paper's Fig. 5)")
    group.add_argument("--blur_sigma", type=nonneg_float, default=None, help="Gaussian blur of every test image")
    group.add_argument("--jpeg_quality", type=jpeg_quality, default=None, help="JPEG-compress every test image")
    group.add_argument("--jpeg_method", choices=JPEG_METHODS, default="pil",
                       help="JPEG encoder for --jpeg_quality and --sweep jpeg")
    group.add_argument("--resize_scale", type=positive_float, default=None,
                       help="rescale every test image by this factor (bilinear)")
    group.add_argument("--sweep", action=SweepAction, nargs=2, metavar=("KIND", "VALUES"), default=None,
                       help="evaluate at each value: blur 0,1,2,3 | jpeg 100,90,...,30 | resize 1,0.75,0.5; "
                       "writes sweep_<kind>.csv and .png")

    group = parser.add_argument_group("output")
    group.add_argument("--results_dir", type=Path, default=Path("results"),
                       help="results go to <results_dir>/<name>/")
    group.add_argument("--name", default=None,
                       help="results sub-folder (default: the checkpoint file name without extension)")
    _add_overwrite(group)
    group.add_argument("--strict", action="store_true",
                       help="an unreadable image is an error (default: skipped and listed in skipped.csv)")
    _add_runtime(parser)
    return parser


def parse_eval_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = eval_parser()
    opt = parser.parse_args(argv)
    _apply_protocol(parser, opt, "sets", "test_sets")
    if opt.sweep is not None and getattr(opt, SWEPT_FLAG[opt.sweep[0]]) is not None:
        parser.error(f"--sweep {opt.sweep[0]} and --{SWEPT_FLAG[opt.sweep[0]]} exclude each other")
    uses_jpeg = opt.jpeg_quality is not None or (opt.sweep is not None and opt.sweep[0] == "jpeg")
    if opt.jpeg_method != parser.get_default("jpeg_method") and not uses_jpeg:
        parser.error("--jpeg_method only applies with --jpeg_quality or --sweep jpeg")
    return opt


def demo_parser() -> argparse.ArgumentParser:
    parser = _parser("demo.py", "Probability that an image (or each image of a folder or glob) is synthetic.")
    parser.add_argument("-f", "--file", required=True,
                        help="an image, a folder (a 0_real/1_fake folder also reports AP) or a quoted glob")
    _add_model(parser, "-m")
    parser.add_argument("-c", "--crop", type=positive_int, default=None,
                        help="center-crop to this size first (default: whole image, as the authors' demo)")
    parser.add_argument("--out", type=Path, default=None, help="also write path,probability rows to this CSV")
    parser.add_argument("--batch_size", type=positive_int, default=16, help="images per forward pass (folders)")
    parser.add_argument("--strict", action="store_true",
                        help="in a folder, an unreadable image is an error (default: skipped and reported)")
    parser.add_argument("--use_cpu", dest="device", action="store_const", const="cpu", default=argparse.SUPPRESS,
                        help="authors' spelling of --device cpu")
    _add_runtime(parser)
    return parser


def parse_demo_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return demo_parser().parse_args(argv)


# The presets themselves live in util.quickstart.PRESETS (a test keeps the two in step).
QUICKSTART_SIZES = ("tiny", "small", "default")


def quickstart_parser() -> argparse.ArgumentParser:
    parser = _parser("quickstart.py", "Offline mini-benchmark: build it, train the detector, evaluate, demo.")
    parser.add_argument("--root", type=Path, default=Path("dataset/mini"), help="where the benchmark is built")
    parser.add_argument("--size", choices=QUICKSTART_SIZES, default="default",
                        help="tiny: seconds, for tests; small: fewer images, fewer epochs; default: the measured run")
    parser.add_argument("--seed", type=nonneg_int, default=0, help="seeds the benchmark and the training")
    parser.add_argument("--real_dir", type=Path, default=None,
                        help="your own folder of photographs instead of the packaged ones")
    parser.add_argument("--retrain", action="store_true", help="train again even if this detector exists")
    parser.add_argument("--checkpoints_dir", type=Path, default=Path("./checkpoints"))
    parser.add_argument("--results_dir", type=Path, default=Path("results"))
    _add_runtime(parser)
    return parser


def parse_quickstart_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return quickstart_parser().parse_args(argv)




def _add_spectra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataroot", type=Path, default=Path("./dataset/test"), help="folder of test sets")
    parser.add_argument("--sets", type=name_list, default=None, help="comma-separated sets (default: all found)")
    parser.add_argument("--max_images", type=positive_int, default=2000,
                        help="images per set and label, a seeded random choice (the paper: 2000)")
    parser.add_argument("--crop_size", type=positive_int, default=None,
                        help="center-crop side (default: the smallest side among the images, at most 256)")
    parser.add_argument("--seed", type=nonneg_int, default=0, help="seeds the choice of images")
    parser.add_argument("--out", type=Path, default=Path("results/spectra"), help="output folder")
    _add_overwrite(parser)


def _add_ranking(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scores", type=Path, required=True, help="an eval.py scores.csv")
    parser.add_argument("--threshold", type=probability, default=0.5, help="fake when P(fake) > threshold")
    parser.add_argument("--max_images", type=positive_int, default=8,
                        help="misclassified images shown per kind of mistake and set")
    parser.add_argument("--thumbnail", type=positive_int, default=128, help="thumbnail side in pixels")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: ranking/ beside --scores)")
    _add_overwrite(parser)


def _add_ablation(parser: argparse.ArgumentParser) -> None:
    _add_train_arguments(parser)
    group = parser.add_argument_group("ablation")
    group.add_argument("--num_classes", type=positive_int_list, default=(2, 4, 8, 16, 20),
                       help="training-class counts; nested subsets, chosen by --seed")
    group.add_argument("--test_dataroot", type=Path, default=Path("./dataset/test"), help="folder of test sets")
    group.add_argument("--test_sets", type=name_list, default=None,
                       help="comma-separated test sets (default: --protocol's, else every set found)")
    group.add_argument("--eval_crop_size", type=positive_int, default=224, help="center crop of the test images")
    group.add_argument("--eval_no_crop", action="store_true", help="evaluate whole test images")
    group.add_argument("--eval_batch_size", type=positive_int, default=64, help="images per forward pass in eval")
    group.add_argument("--results_dir", type=Path, default=Path("results"),
                       help="ablation.csv/.md/.png go to <results_dir>/<name>/")
    _add_overwrite(group)


ANALYSES = {"spectra": (_add_spectra, "mean spectra of high-pass residuals, real vs fake (Fig. 7)"),
            "ranking": (_add_ranking, "galleries by score percentile, mistakes, and HTML pages (Fig. 6)"),
            "ablation": (_add_ablation, "train on growing class subsets, evaluate each (Fig. 3)")}


def analyze_parser() -> argparse.ArgumentParser:
    parser = _parser("analyze.py", "The paper's analyses, written as figures and data files.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add, description) in ANALYSES.items():
        sub = commands.add_parser(name, help=description, description=description, allow_abbrev=False,
                                  formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        add(sub)
        if name != "ablation":  # the training options already include --debug
            sub.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    return parser


def parse_analyze_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = analyze_parser()
    opt = parser.parse_args(argv)
    if opt.command == "ablation":
        _validate_train(parser, opt)
        if opt.protocol is not None and opt.test_sets is None:
            opt.test_sets = PROTOCOLS[opt.protocol].test_sets
    return opt


def train_options(opt: argparse.Namespace) -> argparse.Namespace:
    """The train.py options inside a namespace that holds more (analyze.py ablation)."""
    keys = {action.dest for action in train_parser()._actions if action.dest != "help"}
    return argparse.Namespace(**{k: v for k, v in vars(opt).items() if k in keys})


def benchmark_parser() -> argparse.ArgumentParser:
    parser = _parser("benchmark.py", "Throughput of the model alone and of eval.py's and train.py's paths, with "
                     "peak memory, on CPU and (when present) CUDA.")
    parser.add_argument("--devices", type=subset_of(("cpu", "cuda")), default=None,
                        help="comma-separated (default: cpu, and cuda when available)")
    parser.add_argument("--arch", type=arch_name, default="resnet50", help="backbone: " + ", ".join(ARCHS))
    parser.add_argument("--batch_size", type=positive_int, default=32, help="images per batch")
    parser.add_argument("--num_workers", type=nonneg_int, default=4, help="DataLoader worker processes")
    parser.add_argument("--amp", choices=("off", "bf16", "fp16"), default="off", help="autocast precision")
    parser.add_argument("--channels_last", choices=("auto", "on", "off"), default="auto",
                        help="model and batch layout; auto = what eval.py/train.py use (channels_last on CUDA)")
    parser.add_argument("--images", type=positive_int, default=128,
                        help="images per measurement (the memory check also evaluates twice as many)")
    parser.add_argument("--image_size", type=positive_int, default=256, help="side of the generated PNGs")
    parser.add_argument("--crop_size", type=positive_int, default=224, help="center / random crop side")
    parser.add_argument("--out", type=Path, default=Path("results/benchmark"),
                        help="benchmark.json and benchmark.md go here")
    _add_overwrite(parser)
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    return parser


def parse_benchmark_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = benchmark_parser()
    opt = parser.parse_args(argv)
    if opt.crop_size > opt.image_size:
        parser.error(f"--crop_size {opt.crop_size} exceeds --image_size {opt.image_size}")
    return opt


def dataset_download_parser() -> argparse.ArgumentParser:
    parser = _parser("python -m dataset.download", "Download and extract the ForenSynths data (the authors' "
                     "mirror), with resume and checksums; or count what is there.")
    parser.add_argument("splits", nargs="+", choices=tuple(SPLITS),
                        help="; ".join(f"{k}: {v.size}" for k, v in SPLITS.items()))
    parser.add_argument("--root", type=Path, default=Path("dataset"),
                        help="splits go to <root>/<split>/, archives and SHA256SUMS.json to <root>/downloads/")
    parser.add_argument("--base_url", default=BASE_URL, help="the mirror to download from")
    parser.add_argument("--verify", action="store_true",
                        help="download nothing: count the images of each split against the reference counts")
    parser.add_argument("--delete_archives", action="store_true",
                        help="delete each split's archives once it is extracted (their checksums stay recorded)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    return parser


def parse_dataset_download_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return dataset_download_parser().parse_args(argv)


def weights_download_parser() -> argparse.ArgumentParser:
    parser = _parser("python -m weights.download", "Download the authors' released models and check their sha256.")
    parser.add_argument("names", nargs="*", type=released_name, metavar="NAME",
                        help=f"{', '.join(RELEASED)} (default: both)")
    parser.add_argument("--dir", type=Path, default=Path("weights"), help="where the .pth files go")
    parser.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    return parser


def parse_weights_download_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    opt = weights_download_parser().parse_args(argv)
    opt.names = opt.names or list(RELEASED)
    return opt


# ------------------------------------------------------------------------------------------ show and save
def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def options_dict(opt: argparse.Namespace) -> dict[str, Any]:
    """The options as JSON-able plain types (also what checkpoints store)."""
    return {k: _plain(v) for k, v in sorted(vars(opt).items())}


def describe_options(parser: argparse.ArgumentParser, opt: argparse.Namespace) -> str:
    lines = ["----------------- options ---------------"]
    for key, value in sorted(vars(opt).items()):
        default = parser.get_default(key)
        mark = "" if value == default else f"\t[default: {_plain(default)}]"
        lines.append(f"{key:>20}: {_plain(value)}{mark}")
    lines.append("----------------- end -------------------")
    return "\n".join(lines)


def save_options(opt: argparse.Namespace, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(options_dict(opt), indent=2) + "\n")
    os.replace(tmp, path)
