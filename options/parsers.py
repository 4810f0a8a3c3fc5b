"""The command lines of every script, each parsed once into the config its command takes.

Every flag is an option field of a config (util.fields.option): its name, default, help and text parser are read
from there, so they are written once. The parser only turns text into values; every range and rule is the
config's, and its messages come back as usage errors. A flag sets a value only when given, so a recipe fills the
rest (``TrainConfig.from_flags``).

Flags use snake_case. The authors' spellings that users already type (``--loadSize``, ``--cropSize``, ``--niter``,
``--earlystop_epoch``, ``--num_threads``, ``--gpu_ids``, ``--use_cpu``) are accepted as aliases, with the authors'
comma syntax (``--blur_sig 0.0,3.0``, ``--jpg_qual 30,100``, ``--classes a,b,c``).
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from commands.configs import AblationConfig, AppConfig, BenchmarkConfig, DemoConfig, RankingConfig, SpectraConfig
from data.augment import AugmentConfig
from data.suites import SUITES
from engine.configs import EvalConfig, Runtime, TrainConfig
from networks.families.univfd import CLIP_VIT_L14
from networks.released import DEFAULT_DOWNLOADS, RELEASED
from options.types import GpuIdsAction, released_name
from util.errors import ConfigError
from util.fields import boolean, help_of, numbers, option_meta, options_of, shown, words

if TYPE_CHECKING:
    from commands.quickstart import QuickstartConfig

Config = TypeVar("Config")


# ------------------------------------------------------------------------------------------------ building
class Parser(argparse.ArgumentParser):
    """Strict, but it forgives the usual slips: ``--no-crop`` reads as ``--no_crop`` (the flags use underscores),
    an unknown flag gets a did-you-mean, and stray paths get a hint about unquoted globs."""

    def __init__(self, **kwargs: Any) -> None:
        # Abbreviations are off: a typo must not silently select another flag.
        super().__init__(allow_abbrev=False, **kwargs)

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


class _Joined(argparse.Action):
    """An option of several words (``--sweep blur 0,1,2``): its parser takes them all."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, self.const(*values))


def _text_parser(hint: str) -> Any:
    """The parser of a flag's text, from its field's type where the option names none."""
    for name, parse in (("tuple[int", numbers(int)), ("tuple[str", words), ("Path", Path), ("int", int),
                        ("float", float)):
        if name in hint:
            return parse
    return str


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *names: str) -> None:
    """``--<name>`` for each option ``names`` of ``cls`` (all of them when none are named), as the option says.
    The flag's value is set only when given (``argparse.SUPPRESS``), so the config fills the rest."""
    fields = {f.name: f for f in options_of(cls)}
    hints = typing.get_type_hints(cls)
    for name in names or fields:
        meta = option_meta(fields[name])
        assert meta is not None
        default, text = meta["default"], help_of(meta)
        if default not in (None, False, "") and "default" not in text:
            text += f" (default: {shown(default)})"
        kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": text}
        if hints[name] is bool:
            kwargs |= {"nargs": "?", "const": True, "type": boolean, "metavar": "true|false"}
        elif meta["nargs"]:
            kwargs |= {"nargs": meta["nargs"], "action": _Joined, "const": meta["parse"], "metavar": meta["metavar"]}
        else:
            kwargs |= {"type": meta["parse"] or _text_parser(str(hints[name])), "metavar": meta["metavar"]}
            if meta["choices"] is not None and kwargs["metavar"] is None:
                kwargs["metavar"] = "{" + ",".join(meta["choices"]) + "}"
        short = [f for f in meta["flags"] if not f.startswith("--")]
        parser.add_argument(*short, f"--{name}", *[f for f in meta["flags"] if f.startswith("--")], **kwargs)


def _parser(prog: str, description: str) -> Parser:
    return Parser(prog=prog, description=description)


def _add_runtime(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    if not names:
        return
    group = parser.add_argument_group("runtime")
    add_options(group, Runtime, *names)
    if "device" in names:
        group.add_argument("--gpu_ids", action=GpuIdsAction, metavar="IDS", default=argparse.SUPPRESS,
                           help="authors' spelling: -1 = cpu, N = cuda:N (sets --device)")


def _config(parser: argparse.ArgumentParser, cls: type[Config], values: dict[str, Any]) -> Config:
    """The config of the given ``values``, its validation errors reported as usage errors of ``parser``."""
    try:
        return cls.from_flags(**values)  # type: ignore[attr-defined]
    except ConfigError as err:
        parser.error(str(err))


def _parsed(parser: argparse.ArgumentParser, cls: type[Config], argv: Sequence[str] | None) -> Config:
    return _config(parser, cls, vars(parser.parse_args(argv)))


# ------------------------------------------------------------------------------------------------ train.py
# The help's sections, in order; every option of the config appears in one (``_add_groups`` checks).
TRAIN_GROUPS = {
    "": ("recipe",),
    "data": ("dataroot", "classes", "protocol", "train_split", "val_split", "max_bad_fraction", "batch_size",
             "max_megapixels", "memory_budget", "serial_batches", "class_bal"),
    "preprocessing and augmentation (training)": (*(f.name for f in options_of(AugmentConfig)), "test_no_crop",
                                                  "val_perturb"),
    "model": ("arch", "init_gain", "pretrained_path", "no_pretrained"),
    "optimization": ("optim", "lr", "beta1", "epochs", "patience", "lr_schedule", "select_on", "swa_epochs",
                     "delr_freq", "lr_decay", "seed"),
    "run folder and checkpoints": ("name", "checkpoints_dir", "loss_freq", "save_latest_freq", "save_epoch_freq",
                                   "continue_train", "epoch", "new_optim"),
}
EVAL_GROUPS = {
    "data": ("dataroot", "suite", "sets", "protocol", "max_sample", "batch_size", "max_megapixels", "memory_budget"),
    "model": ("model_path", "arch", "allow_nonfinite"),
    "preprocessing (the paper's test protocol: no resize, center crop 224)": ("crop_size", "no_crop", "resize",
                                                                               "preprocess", "calibrate_on"),
    "test-time perturbations (robustness, the paper's Fig. 5)": ("blur_sigma", "jpeg_quality", "jpeg_method",
                                                                  "resize_scale", "sweep"),
    "output": ("results_dir", "name", "overwrite", "strict", "resume"),
}
RUNTIME = ("device", "amp", "num_workers", "debug")


def _add_groups(parser: argparse.ArgumentParser, groups: dict[str, tuple[str, ...]], *classes: type) -> None:
    """The options of ``classes`` in the help sections ``groups``, then the runtime's; each option once."""
    owner = {f.name: cls for cls in classes for f in options_of(cls)}
    listed = [name for names in groups.values() for name in names]
    missing = set(owner) - set(listed) - set(RUNTIME)
    assert not missing and len(listed) == len(set(listed)), f"options not in one help section: {missing}"
    for title, names in groups.items():
        group = parser.add_argument_group(title) if title else parser
        for name in names:
            add_options(group, owner[name], name)
    _add_runtime(parser, [name for name in RUNTIME if name in owner])


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    _add_groups(parser, TRAIN_GROUPS, TrainConfig, AugmentConfig)


def train_parser() -> Parser:
    parser = _parser("train.py", "Train the real/fake detector (Wang et al., CVPR 2020 recipe).")
    _add_train_arguments(parser)
    return parser


def parse_train_options(argv: Sequence[str] | None = None) -> TrainConfig:
    return _parsed(train_parser(), TrainConfig, argv)


# ------------------------------------------------------------------------------------------ eval.py, demo.py
def eval_parser() -> argparse.ArgumentParser:
    parser = _parser("eval.py", "Evaluate a detector on every test set under --dataroot (Table 2).")
    _add_groups(parser, EVAL_GROUPS, EvalConfig)
    return parser


def parse_eval_options(argv: Sequence[str] | None = None) -> EvalConfig:
    return _parsed(eval_parser(), EvalConfig, argv)


def demo_parser() -> argparse.ArgumentParser:
    parser = _parser("demo.py", "Probability that an image (or each image of a folder or glob) is synthetic.")
    _add_groups(parser, {"": tuple(f.name for f in options_of(DemoConfig) if f.name not in RUNTIME)}, DemoConfig)
    parser.add_argument("--use_cpu", dest="device", action="store_const", const="cpu", default=argparse.SUPPRESS,
                        help="authors' spelling of --device cpu")
    return parser


def parse_demo_options(argv: Sequence[str] | None = None) -> DemoConfig:
    return _parsed(demo_parser(), DemoConfig, argv)


# ------------------------------------------------------------------------------------------------ app.py
def app_parser() -> argparse.ArgumentParser:
    parser = _parser("app.py", "A local web page (and a scripting API) for the detector: drop images, see the "
                     "probability that each is synthetic and its high-pass spectrum.")
    _add_groups(parser, {"model": ("model_path", "arch", "calibration"),
                         "server": ("host", "port", "max_upload_mb", "max_megapixels")}, AppConfig)
    return parser


def parse_app_options(argv: Sequence[str] | None = None) -> AppConfig:
    parser = app_parser()
    values = vars(parser.parse_args(argv))
    # Gradio's own variables, which a Hugging Face Space sets, come before the defaults.
    for name, variable, parse in (("host", "GRADIO_SERVER_NAME", str), ("port", "GRADIO_SERVER_PORT", int)):
        if name not in values and variable in os.environ:
            values[name] = parse(os.environ[variable])
    return _config(parser, AppConfig, values)


# ------------------------------------------------------------------------------------------- quickstart.py
def quickstart_parser() -> argparse.ArgumentParser:
    # The quickstart's presets hold the mini-benchmark's settings, which need its image libraries.
    from commands.quickstart import QuickstartConfig

    parser = _parser("quickstart.py", "Offline mini-benchmark: build it, train the detector, evaluate, demo.")
    _add_groups(parser, {"": tuple(f.name for f in options_of(QuickstartConfig) if f.name not in RUNTIME)},
                QuickstartConfig)
    return parser


def parse_quickstart_options(argv: Sequence[str] | None = None) -> QuickstartConfig:
    from commands.quickstart import QuickstartConfig

    return _parsed(quickstart_parser(), QuickstartConfig, argv)


# ---------------------------------------------------------------------------------------------- analyze.py
def _own(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in options_of(cls) if f.name not in RUNTIME)


def _add_ablation(parser: argparse.ArgumentParser) -> None:
    _add_groups(parser, TRAIN_GROUPS | {"ablation": _own(AblationConfig)}, TrainConfig, AugmentConfig,
                AblationConfig)


# name: (add the arguments, the config, what it does)
ANALYSES = {"spectra": (lambda p: _add_groups(p, {"": _own(SpectraConfig)}, SpectraConfig), SpectraConfig,
                        "mean spectra of high-pass residuals, real vs fake (Fig. 7)"),
            "ranking": (lambda p: _add_groups(p, {"": _own(RankingConfig)}, RankingConfig), RankingConfig,
                        "galleries by score percentile, mistakes, and HTML pages (Fig. 6)"),
            "ablation": (_add_ablation, AblationConfig, "train on growing class subsets, evaluate each (Fig. 3)")}


def analyze_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="analyze.py", description="The paper's analyses, written as figures and data files.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add, cls, description) in ANALYSES.items():
        sub = commands.add_parser(name, help=description, description=description)
        add(sub)
        if cls is not AblationConfig:  # the ablation's is its training runs'
            add_options(sub, Runtime, "debug")
    return parser


def parse_analyze_options(argv: Sequence[str] | None = None) -> tuple[str, Any, bool]:
    """(command, its config, --debug)."""
    parser = analyze_parser()
    values = vars(parser.parse_args(argv))
    command, debug = values.pop("command"), values.get("debug", False)
    _, cls, _ = ANALYSES[command]
    if cls is not AblationConfig:
        values.pop("debug", None)
    return command, _config(parser, cls, values), debug


# ------------------------------------------------------------------------------------------- benchmark.py
def benchmark_parser() -> argparse.ArgumentParser:
    parser = _parser("benchmark.py", "Throughput of the model alone and of eval.py's and train.py's paths, with "
                     "peak memory, on CPU and (when present) CUDA.")
    _add_groups(parser, {"": _own(BenchmarkConfig)}, BenchmarkConfig)
    return parser


def parse_benchmark_options(argv: Sequence[str] | None = None) -> BenchmarkConfig:
    return _parsed(benchmark_parser(), BenchmarkConfig, argv)


# ------------------------------------------------------------------------------- python -m {dataset,weights}.download
def _add_debug_switch(parser: argparse.ArgumentParser) -> None:
    """--debug for the download scripts, which take names after their flags (so a plain switch, without the
    options' optional true/false)."""
    meta = option_meta(next(f for f in options_of(Runtime) if f.name == "debug"))
    assert meta is not None
    parser.add_argument("--debug", action="store_true", help=meta["help"])


def dataset_download_parser() -> argparse.ArgumentParser:
    from data.forensynths import BASE_URL, SPLITS
    from data.suite_downloads import DOWNLOADS, ZENODO_API

    parser = _parser("python -m dataset.download", "Download and extract test data with resume and checksums "
                     "(ForenSynths splits from the authors' mirror, Synthbuster from Zenodo), or count what is "
                     "there; for suites without a direct link, say where to get them.")
    _add_debug_switch(parser)
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
    _add_debug_switch(parser)
    parser.add_argument("names", nargs="*", type=released_name, metavar="NAME",
                        help=f"{', '.join(RELEASED)} (default: {' and '.join(DEFAULT_DOWNLOADS)}); univfd also "
                        f"fetches OpenAI's CLIP ViT-L/14 (0.9 GB) into {CLIP_VIT_L14.path}")
    parser.add_argument("--dir", type=Path, default=Path("weights"), help="where the detectors' .pth files go")
    return parser


def parse_weights_download_options(argv: Sequence[str] | None = None) -> argparse.Namespace:
    opt = weights_download_parser().parse_args(argv)
    opt.names = opt.names or list(DEFAULT_DOWNLOADS)
    return opt
