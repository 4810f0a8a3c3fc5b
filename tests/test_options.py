import argparse
import ast
import dataclasses
import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from commands.ablation import AblationConfig
from commands.benchmark import BenchmarkConfig
from commands.configs import AppConfig
from commands.demo import DemoConfig
from commands.quickstart import QuickstartConfig, train_config
from commands.ranking import RankingConfig
from commands.spectra import SpectraConfig
from data.augment import AugmentConfig
from engine.configs import RECIPES, EvalConfig, TestProtocol, TrainConfig, available_cpus, resolve_workers
from options import (
    analyze_parser,
    app_parser,
    benchmark_parser,
    demo_parser,
    eval_parser,
    parse_analyze_options,
    parse_benchmark_options,
    parse_dataset_download_options,
    parse_demo_options,
    parse_eval_options,
    parse_quickstart_options,
    parse_train_options,
    parse_weights_download_options,
    quickstart_parser,
    train_parser,
)
from tests.helpers import AUTHORS_COMMAND, ROOT
from util.errors import ConfigError
from util.fields import help_of, option_meta, options_of
from util.records import command_line, config_from_record, save_config


def test_authors_training_command_parses():
    cfg = parse_train_options(shlex.split(AUTHORS_COMMAND))
    assert isinstance(cfg, TrainConfig)
    assert cfg.augment.blur_prob == 0.5 and cfg.augment.jpg_prob == 0.5
    assert cfg.augment.blur_sig == (0.0, 3.0)
    assert cfg.augment.jpg_method == ("cv2", "pil")
    assert cfg.augment.jpg_qual == (30, 100)
    assert len(cfg.classes) == 20 and cfg.classes[0] == "airplane"
    assert cfg.arch == "resnet50" and cfg.batch_size == 64 and cfg.lr == 1e-4 and cfg.patience == 5


def test_authors_aliases_and_single_values():
    cfg = parse_train_options(
        ["--loadSize", "128", "--cropSize", "112", "--niter", "7", "--earlystop_epoch", "3", "--num_threads", "0",
         "--gpu_ids", "-1", "--blur_sig", "1.5", "--jpg_qual", "90", "--arch", "res50",
         "--rz_interp", "bicubic,nearest"]
    )
    assert (cfg.augment.load_size, cfg.augment.crop_size) == (128, 112)
    assert (cfg.epochs, cfg.patience, cfg.num_workers) == (7, 3, 0)
    assert cfg.device == "cpu"
    assert cfg.augment.blur_sig == (1.5, 1.5) and cfg.augment.jpg_qual == (90, 90)
    assert cfg.arch == "resnet50" and cfg.augment.rz_interp == ("bicubic", "nearest")
    assert parse_train_options(["--gpu_ids", "1"]).device == "cuda:1"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--blur_prob", "1.5"], "--blur_prob 1.5: give a probability in [0, 1]"),
        (["--jpg_prob", "-0.1"], "--jpg_prob -0.1: give a probability in [0, 1]"),
        (["--blur_sig=-1,2"], "--blur_sig -1.0,2.0: give a number >= 0"),
        (["--blur_sig", "3,1"], "the first value must not exceed the second"),
        (["--blur_sig", "1,2,3"], "give one value or two separated by a comma"),
        (["--jpg_qual", "0,100"], "--jpg_qual 0,100: give a value in 1..100"),
        (["--jpg_qual", "30,101"], "--jpg_qual 30,101: give a value in 1..100"),
        (["--jpg_method", "cv2,libjpeg"], "--jpg_method cv2,libjpeg: choose one or more of cv2, pil"),
        (["--rz_interp", "area"], "--rz_interp area: choose one or more of bilinear, bicubic, lanczos, nearest"),
        (["--arch", "vgg16"], "--arch vgg16: choose one of resnet50"),
        (["--batch_size", "0"], "--batch_size 0: give a number > 0"),
        (["--unknown_flag", "1"], "unrecognized arguments: --unknown_flag"),
        (["--load"], "unrecognized arguments: --load"),  # abbreviations are not accepted
        (["--crop_size", "300"], "--crop_size 300 exceeds --load_size 256"),
        (["--gpu_ids", "0,1"], "torchrun --nproc_per_node 2"),
        (["--no_pretrained", "--pretrained_path", "x.pth"], "--pretrained_path has no effect with --no_pretrained"),
        (["--epoch", "best"], "--epoch has no effect with no --continue_train"),
        (["--continue_train", "--epoch", "last"], "--epoch last: give latest, best or an epoch number"),
        (["--new_optim"], "--new_optim has no effect with no --continue_train"),
        (["--optim", "sgd", "--beta1", "0.5"], "--beta1 has no effect with --optim sgd"),
        (["--no_crop", "--crop_size", "112"], "--crop_size has no effect with --no_crop"),
        (["--no_resize", "--load_size", "300"], "--load_size has no effect with --no_resize"),
        (["--no_resize", "--rz_interp", "bicubic"], "--rz_interp has no effect with --no_resize"),
        (["--protocol", "4class", "--classes", "car"], "--protocol and --classes exclude each other"),
        (["--select_on", "last"], "--select_on last never plateaus; use it with --lr_schedule cosine or --delr_freq"),
        (["--lr_schedule", "cosine", "--patience", "3"], "--patience has no effect with --lr_schedule cosine"),
        (["--lr_schedule", "cosine", "--delr_freq", "5"], "--lr_schedule cosine has no effect with --delr_freq"),
        (["--crop_grid", "0"], "--crop_grid 0: give a number > 0"),
        (["--no_crop", "--tile"], "--tile has no effect with --no_crop"),
        (["--tile", "--test_no_crop"], "--tile has no effect with --test_no_crop"),
        (["--lr_schedule", "cosine", "--swa_epochs", "3"],
         "--swa_epochs averages the last epochs into the result: use it with --select_on last"),
        (["--lr_schedule", "cosine", "--select_on", "last", "--epochs", "4", "--swa_epochs", "5"],
         "--swa_epochs 5: give 0 (off) to --epochs 4"),
    ],
)
def test_bad_train_values_are_errors_that_say_why(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_train_options(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert err.startswith("usage: train.py") and "train.py: error: " in err and message in err


def test_configs_validate_without_a_command_line():
    with pytest.raises(ConfigError, match="--beta1 has no effect with --optim sgd"):
        TrainConfig(optim="sgd", beta1=0.5)
    with pytest.raises(ConfigError, match="--amp fp8: choose one of off, bf16, fp16"):
        EvalConfig(amp="fp8")
    with pytest.raises(ConfigError, match="--eval_crop_size has no effect with --eval_no_crop"):
        AblationConfig(eval_no_crop=True, eval_crop_size=64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().lr = 1.0  # type: ignore[misc]


def test_protocol_fills_the_lists_it_names():
    cfg = parse_train_options(["--protocol", "4class"])
    assert cfg.classes == ("car", "cat", "chair", "horse")
    assert parse_eval_options(["--protocol", "4class"]).sets[:2] == ("progan", "stylegan")
    assert parse_train_options(["--protocol", "4class", "--classes", "car,cat,chair,horse"]) == cfg


def test_gpu_ids_several_points_to_torchrun(capsys):
    with pytest.raises(SystemExit):
        parse_train_options(["--gpu_ids", "0,1"])
    assert "torchrun --nproc_per_node 2" in capsys.readouterr().err


@pytest.mark.parametrize(("parse", "cls"), [
    (parse_train_options, TrainConfig), (parse_eval_options, EvalConfig),
    (parse_quickstart_options, QuickstartConfig), (parse_benchmark_options, BenchmarkConfig),
    (lambda argv: parse_analyze_options(["spectra", *argv])[1], SpectraConfig),
    (lambda argv: parse_analyze_options(["ablation", *argv])[1], AblationConfig),
])
def test_parser_defaults_are_the_config_defaults(parse, cls):
    assert parse([]) == cls()


def test_command_line_gives_back_the_same_config():
    authors = parse_train_options(shlex.split(AUTHORS_COMMAND))
    assert parse_train_options(command_line(authors)) == authors
    quick = train_config(QuickstartConfig(size="small", seed=3, num_workers=0))
    assert parse_train_options(command_line(quick)) == quick
    flags = command_line(quick)
    assert flags[flags.index("--dataroot") + 1] == "dataset/mini" and "--no_pretrained" in flags
    assert flags[flags.index("--jpg_method") + 1] == "cv2,pil" and "--lr" in flags and "--debug" not in flags
    evaluation = parse_eval_options(["--sweep", "jpeg", "90,30", "--no_crop", "--sets", "a,b"])
    assert "--no_crop" in command_line(evaluation) and "a,b" in command_line(evaluation)


def test_save_writes_plain_json(tmp_path):
    cfg = parse_train_options(["--blur_prob", "0.5", "--name", "x"])
    save_config(cfg, tmp_path / "opt.json")
    saved = json.loads((tmp_path / "opt.json").read_text())
    assert saved["augment"]["blur_prob"] == 0.5 and saved["augment"]["blur_sig"] == [0.5, 0.5]
    assert saved["dataroot"] == "dataset"
    assert list(saved) == sorted(saved) and "protocol" in saved and "debug" in saved


def _attribute_reads() -> set[str]:
    """Every ``x.name`` read in the code the options feed (scripts, commands, engine, data, ...), leaving out the
    configs' own validation and the options package, which only builds them."""
    reads: set[str] = set()
    files = [p for p in ROOT.rglob("*.py") if not {"tests", "options", ".venv"} & set(p.relative_to(ROOT).parts)]
    for path in files:
        tree = ast.parse(path.read_text())
        skip = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name == "__post_init__"
                for n in ast.walk(f)}
        reads |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Load)
                  and id(n) not in skip}
    return reads


# Consumed by validation alone: the protocol fills --classes / --sets, which the code reads.
RESOLVED_IN_VALIDATION = {"protocol"}


@pytest.mark.parametrize("cls", [TrainConfig, EvalConfig, DemoConfig, QuickstartConfig, BenchmarkConfig,
                                 SpectraConfig, RankingConfig, AblationConfig, AppConfig])
def test_every_config_field_is_read_by_the_code(cls):
    reads = _attribute_reads()
    fields = {f.name for f in dataclasses.fields(cls)} - RESOLVED_IN_VALIDATION
    assert sorted(fields - reads) == []


@pytest.mark.parametrize("parse", [
    parse_weights_download_options, lambda argv: parse_dataset_download_options(["test", *argv])])
def test_every_download_option_is_read_by_the_code(parse):
    assert sorted(set(vars(parse([]))) - _attribute_reads()) == []


def test_eval_options():
    cfg = parse_eval_options(["--sweep", "jpeg", "100,90,30", "--jpeg_method", "cv2", "--cropSize", "112",
                              "--sets", "progan,biggan", "--blur_sigma", "1"])
    assert cfg.sweep == ("jpeg", (100, 90, 30)) and cfg.jpeg_method == "cv2" and cfg.crop_size == 112
    assert cfg.sets == ("progan", "biggan") and cfg.blur_sigma == 1.0
    assert str(cfg.dataroot) == "dataset/test" and str(cfg.model_path) == "weights/blur_jpg_prob0.5.pth"
    assert cfg.perturbation().describe() == "blur sigma 1"
    assert cfg.perturbation(swept=30).describe() == "blur sigma 1, JPEG cv2 q30"


def test_demo_keeps_the_authors_flags():
    cfg = parse_demo_options(["-f", "img.png", "-m", "w.pth", "-c", "224", "--use_cpu"])
    assert (cfg.file, str(cfg.model_path), cfg.crop, cfg.device) == ("img.png", "w.pth", 224, "cpu")
    assert parse_demo_options(["-f", "x"]).crop is None


@pytest.mark.parametrize(("argv", "message"), [
    (["--sweep", "blur", "1,-2"], "--sweep blur 1.0,-2.0: give a number >= 0"),
    (["--sweep", "jpeg", "101"], "--sweep jpeg 101: give a value in 1..100"),
    (["--sweep", "sharpen", "1"], "--sweep sharpen 1.0: choose one of blur, jpeg, resize"),
    (["--sweep", "blur", ","], "--sweep blur : give at least one value"),
    (["--sweep", "blur", "0,1", "--blur_sigma", "2"], "--sweep blur and --blur_sigma exclude each other"),
    (["--jpeg_method", "cv2"], "--jpeg_method only applies with --jpeg_quality or --sweep jpeg"),
    (["--jpeg_quality", "0"], "--jpeg_quality 0: give a value in 1..100"),
    (["--resize_scale", "0"], "--resize_scale 0.0: give a number > 0"),
    (["--no_crop", "--crop_size", "64"], "--crop_size has no effect with --no_crop"),
    (["--protocol", "4class", "--sets", "progan"], "--protocol and --sets exclude each other"),
    (["--max_sample", "0"], "--max_sample 0: give a number > 0"),
    (["--seed", "1"], "unrecognized arguments: --seed 1"),  # evaluation draws nothing at random
])
def test_bad_eval_values_are_errors_that_say_why(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_eval_options(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "eval.py: error: " in err and message in err


def test_one_debug_flag_for_every_command():
    assert parse_analyze_options(["ranking", "--scores", "x", "--debug"])[2] is True
    assert parse_analyze_options(["ablation", "--debug"])[1].train.debug is True
    assert parse_benchmark_options(["--debug"]).debug is True
    assert parse_weights_download_options(["--debug"]).debug is True


PARSERS = [train_parser, eval_parser, demo_parser, quickstart_parser, benchmark_parser, analyze_parser, app_parser]


def _all_actions(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _all_actions(sub)
        elif action.option_strings and action.dest != "help":
            yield action


@pytest.mark.parametrize("make", PARSERS)
def test_help_has_text_and_one_readable_default_per_flag(make):
    parser = make()
    for action in _all_actions(parser):
        assert action.help, action.option_strings
    text = parser.format_help() if make is not analyze_parser else "\n".join(
        sub.format_help() for sub in parser._subparsers._group_actions[0].choices.values())
    flat = " ".join(text.split())
    assert "(default: None)" not in flat and "(default: False)" not in flat and "('" not in flat
    for line in re.split(r"\n  -", text):
        assert " ".join(line.split()).count("(default") <= 1, line


def test_help_shows_lists_as_typed_and_no_default_for_required_flags():
    assert "(default: bilinear)" in " ".join(train_parser().format_help().split())
    demo_help = " ".join(demo_parser().format_help().split())
    assert "-f FILE, --file FILE an image, a folder (a 0_real/1_fake folder also reports AP) or a quoted glob -m" \
        in demo_help


def test_hyphenated_flags_are_read_as_the_underscore_ones():
    cfg = parse_eval_options(["--no-crop", "--batch-size", "8", "--results-dir=out"])
    assert cfg.no_crop and cfg.batch_size == 8 and str(cfg.results_dir) == "out"
    assert parse_analyze_options(["spectra", "--max-images", "3"])[1].max_images == 3


def test_unknown_flags_get_a_suggestion_and_stray_paths_a_glob_hint(capsys, tmp_path):
    with pytest.raises(SystemExit):
        parse_train_options(["--blur_porb", "0.5"])
    assert "--blur_porb: did you mean --blur_prob" in capsys.readouterr().err
    for name in ("a.png", "b.png", "c.png"):
        (tmp_path / name).touch()
    with pytest.raises(SystemExit):
        parse_demo_options(["-f", *(str(tmp_path / n) for n in ("a.png", "b.png", "c.png"))])
    err = capsys.readouterr().err
    assert "2 paths where one value was expected: did the shell expand a glob? Quote it" in err


def test_workers_default_to_the_machine():
    assert EvalConfig().num_workers == "auto" and parse_eval_options(["--num_workers", "auto"]).num_workers == "auto"
    assert resolve_workers("auto", torch.device("cpu")) == 0
    assert resolve_workers("auto", torch.device("cuda")) == min(available_cpus(), 16)
    assert resolve_workers(3, torch.device("cpu")) == 3
    with pytest.raises(ConfigError, match="--num_workers -1: give auto or a number >= 0"):
        EvalConfig(num_workers=-1)


# ----------------------------------------------------------------------------- recipes, records, one place
def _other_value(cls, name, rng):
    """A valid value of option ``name`` other than its default (``None`` where none is at hand)."""
    meta = option_meta(next(f for f in dataclasses.fields(cls) if f.name == name))
    default, choices = meta["default"], meta["choices"]
    if choices is not None:
        others = [c for c in choices if c not in (default if isinstance(default, tuple) else (default,))]
        if not others:
            return None
        pick = others[int(rng.integers(len(others)))]
        return (pick,) if isinstance(default, tuple) else pick
    if isinstance(default, bool):
        return not default
    if isinstance(default, int) and name not in ("seed",):
        return default + int(rng.integers(1, 4))
    if isinstance(default, float):
        return round(default * float(rng.choice([0.5, 0.8])), 6) or 0.25
    if isinstance(default, tuple) and default and isinstance(default[0], float):
        return (default[0], default[1] + 0.5)
    if isinstance(default, tuple) and default and isinstance(default[0], int):
        return (max(1, default[0] - 10), default[1])
    return None


def _flag_words(values):
    words_ = []
    for name, value in values.items():
        words_.append(f"--{name}")
        if value is False:
            words_.append("false")
        elif value is not True:
            words_.append(",".join(map(str, value)) if isinstance(value, tuple) else str(value))
    return words_


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_every_recipe_replays_from_its_recorded_command_and_opt_json(recipe, tmp_path):
    """Property: for each recipe, with random valid overrides of a sample of flags, the recorded command line and
    opt.json give back the very config, and Python construction gives the command line's config."""
    rng = np.random.default_rng(sorted(RECIPES).index(recipe))
    candidates = [(TrainConfig, f.name) for f in options_of(TrainConfig) if f.name not in ("recipe", "epoch",
                                                                                           "continue_train")]
    candidates += [(AugmentConfig, f.name) for f in options_of(AugmentConfig)]
    checked = 0
    for _ in range(120):
        values = {"recipe": recipe}
        for index in rng.choice(len(candidates), size=int(rng.integers(0, 5)), replace=False):
            cls, name = candidates[index]
            value = _other_value(cls, name, rng)
            if value is not None:
                values[name] = value
        try:
            parsed = TrainConfig.from_flags(**values)
        except ConfigError:
            continue  # a combination the config refuses (a flag that has no effect with another)
        checked += 1
        assert parse_train_options(_flag_words(values)) == parsed
        assert parse_train_options(command_line(parsed)) == parsed, command_line(parsed)
        save_config(parsed, tmp_path / "opt.json")
        assert config_from_record(TrainConfig, json.loads((tmp_path / "opt.json").read_text())) == parsed
        own = {k: v for k, v in values.items() if k not in {f.name for f in options_of(AugmentConfig)}}
        if len(own) == len(values):  # no augmentation flag: the plain constructor takes them as they are
            assert TrainConfig(**own) == parsed
    assert checked >= 40


def test_a_recipe_given_in_python_is_the_recipe():
    npr = TrainConfig(recipe="npr", dataroot=Path("d"))
    assert (npr.arch, npr.lr, npr.batch_size, npr.augment.square_resize) == ("npr", 2e-4, 32, True)
    assert npr == parse_train_options(["--recipe", "npr", "--dataroot", "d"])
    mine = parse_train_options(["--recipe", "npr", "--lr", "1e-4", "--batch_size", "64", "--name", "t"])
    assert (mine.lr, mine.batch_size) == (1e-4, 64)
    assert command_line(mine) == ["--recipe", "npr", "--batch_size", "64", "--lr", "0.0001", "--name", "t"]
    assert TrainConfig(recipe="npr", lr=1e-4, batch_size=64, name="t") == mine
    # A switch a recipe turns on can be turned off, and the record says so.
    off = parse_train_options(["--recipe", "npr", "--test_no_crop", "false"])
    assert not off.test_no_crop and "--test_no_crop" in command_line(off)
    assert parse_train_options(command_line(off)) == off


def test_npr_genimage_recipe_is_their_genimage_command():
    """NPR's README: train.py --classes sdv4 --batch_size 32 --lr 0.0002 --niter 1 --cropSize 224, seed 70,
    translate_duplicate in place of the resize; tested tiled and center-cropped."""
    cfg = parse_train_options(["--recipe", "npr_genimage", "--dataroot", "GenImage"])
    assert (cfg.arch, cfg.no_pretrained, cfg.classes, cfg.batch_size, cfg.lr, cfg.epochs, cfg.seed) == (
        "npr", True, ("sdv4",), 32, 2e-4, 1, 70)
    assert cfg.augment.no_resize and cfg.augment.tile and cfg.augment.crop_size == 224
    assert cfg.test_protocol() == TestProtocol(crop_size=224, tile=True)
    assert cfg.describe_validation() == "no resize, a side under 224 tiled up to it, center crop 224"
    assert TrainConfig(recipe="npr").seed == 100  # NPR's train.py seeds with 100
    # A flag in place of the recipe's setting drops it rather than clashing: whole-image tests, other classes.
    whole = parse_train_options(["--recipe", "npr_genimage", "--test_no_crop"])
    assert not whole.augment.tile and whole.test_protocol() == TestProtocol(crop_size=None)
    assert parse_train_options(["--recipe", "npr_genimage", "--protocol", "4class"]).classes[0] == "car"


def test_a_tiling_protocol_is_recorded_and_needs_a_crop():
    tiled = TestProtocol(crop_size=224, tile=True)
    assert tiled.record() == {"crop_size": 224, "resize": None, "square": False, "tile": True}
    assert TestProtocol(**tiled.record()) == tiled
    assert TestProtocol().record() == {"crop_size": 224, "resize": None, "square": False}  # as older releases
    assert TestProtocol(**TestProtocol().record()) == TestProtocol()
    with pytest.raises(ConfigError, match="a protocol that tiles needs a crop size"):
        TestProtocol(crop_size=None, tile=True)
    assert parse_eval_options(["--preprocess", "genimage"]).preprocess == "genimage"


def test_old_flat_records_still_load():
    flat = {"recipe": "wang2020", "arch": "resnet18", "blur_prob": 0.1, "blur_sig": [0.0, 3.0], "crop_size": 32,
            "no_resize": True, "classes": ["car", "cat"], "dataroot": "d", "jpg_qual": [30, 100], "lr": 1e-3}
    cfg = config_from_record(TrainConfig, flat)
    assert cfg.augment.blur_sig == (0.0, 3.0) and cfg.augment.crop_size == 32 and cfg.augment.no_resize
    assert cfg.classes == ("car", "cat") and cfg.dataroot == Path("d") and cfg.lr == 1e-3
    with pytest.raises(ConfigError, match="unknown options frobnicate"):
        config_from_record(TrainConfig, {"frobnicate": 1})


@pytest.mark.parametrize(("make", "message"), [
    (lambda: TrainConfig(batch_size=0), "--batch_size 0: give a number > 0"),
    (lambda: TrainConfig(lr=-1.0), "--lr -1.0: give a number > 0"),
    (lambda: TrainConfig.from_flags(blur_prob=7.0), "--blur_prob 7.0: give a probability in [0, 1]"),
    (lambda: AugmentConfig(jpg_qual=(0, 100)), "--jpg_qual 0,100: give a value in 1..100"),
    (lambda: TrainConfig(optim="lbfgs"), "--optim lbfgs: choose one of adam, sgd"),
    (lambda: TrainConfig(recipe="mine"), "--recipe mine: choose one of wang2020, npr, npr_genimage, univfd"),
    (lambda: EvalConfig(sweep=("jpeg", (101,))), "--sweep jpeg 101: give a value in 1..100"),
    (lambda: EvalConfig(batch_size=-3), "--batch_size -3: give a number > 0"),
    (lambda: DemoConfig(file="x", threshold=2.0), "--threshold 2.0: give a probability in [0, 1]"),
    (lambda: DemoConfig(), "give the image, folder or glob to score: -f/--file"),
    (lambda: BenchmarkConfig(min_seconds=0.0), "--min_seconds 0.0: give a number > 0"),
    (lambda: AppConfig(port=70000), "--port 70000: give a value in 1..65535"),
    (lambda: QuickstartConfig(size="huge"), "--size huge: choose one of tiny, small, default"),
    (lambda: SpectraConfig(max_images=0), "--max_images 0: give a number > 0"),
    (lambda: AblationConfig(num_classes=(2, 0)), "--num_classes 2,0: give a number > 0"),
])
def test_configs_check_every_range_themselves(make, message):
    with pytest.raises(ConfigError) as err:
        make()
    assert str(err.value) == message


@pytest.mark.parametrize(("parser", "classes"), [
    (train_parser, (TrainConfig, AugmentConfig)), (eval_parser, (EvalConfig,)), (demo_parser, (DemoConfig,)),
    (app_parser, (AppConfig,)), (benchmark_parser, (BenchmarkConfig,)), (quickstart_parser, (QuickstartConfig,)),
    (lambda: analyze_parser()._actions[-1].choices["ablation"], (TrainConfig, AugmentConfig, AblationConfig)),
    (lambda: analyze_parser()._actions[-1].choices["spectra"], (SpectraConfig,)),
    (lambda: analyze_parser()._actions[-1].choices["ranking"], (RankingConfig,)),
])
def test_every_flag_is_a_config_option_written_once(parser, classes):
    """The parsers are built from the configs' options: each config option is a flag whose help is the
    option's, the parser sets nothing not given, and no option is spelled out again in the options package."""
    options = {f.name: option_meta(f) for cls in classes for f in options_of(cls)}
    actions = {action.dest: action for action in _all_actions(parser()) if action.option_strings != ["--use_cpu"]}
    assert set(options) <= set(actions)
    for name, meta in options.items():
        assert actions[name].help.startswith(help_of(meta)) and actions[name].default is argparse.SUPPRESS, name
    # The download scripts, which have no config, come last and define their own flags.
    source = (ROOT / "options" / "parsers.py").read_text().split("python -m {dataset,weights}.download")[0]
    assert not [name for name in options if f'"--{name}"' in source]
