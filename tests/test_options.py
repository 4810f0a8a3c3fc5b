import argparse
import ast
import dataclasses
import json
import re
import shlex

import pytest
import torch

from commands.ablation import AblationConfig
from commands.benchmark import BenchmarkConfig
from commands.configs import AppConfig
from commands.demo import DemoConfig
from commands.quickstart import QuickstartConfig, train_config
from commands.ranking import RankingConfig
from commands.spectra import SpectraConfig
from engine.configs import EvalConfig, TrainConfig, available_cpus, resolve_workers
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
from util.records import command_line, save_config


def test_authors_training_command_parses():
    cfg = parse_train_options(shlex.split(AUTHORS_COMMAND))
    assert isinstance(cfg, TrainConfig)
    assert cfg.blur_prob == 0.5 and cfg.jpg_prob == 0.5
    assert cfg.blur_sig == (0.0, 3.0)
    assert cfg.jpg_method == ("cv2", "pil")
    assert cfg.jpg_qual == (30, 100)
    assert len(cfg.classes) == 20 and cfg.classes[0] == "airplane"
    assert cfg.arch == "resnet50" and cfg.batch_size == 64 and cfg.lr == 1e-4 and cfg.patience == 5


def test_authors_aliases_and_single_values():
    cfg = parse_train_options(
        ["--loadSize", "128", "--cropSize", "112", "--niter", "7", "--earlystop_epoch", "3", "--num_threads", "0",
         "--gpu_ids", "-1", "--blur_sig", "1.5", "--jpg_qual", "90", "--arch", "res50",
         "--rz_interp", "bicubic,nearest"]
    )
    assert (cfg.load_size, cfg.crop_size, cfg.epochs, cfg.patience, cfg.num_workers) == (128, 112, 7, 3, 0)
    assert cfg.device == "cpu"
    assert cfg.blur_sig == (1.5, 1.5) and cfg.jpg_qual == (90, 90)
    assert cfg.arch == "resnet50" and cfg.rz_interp == ("bicubic", "nearest")
    assert parse_train_options(["--gpu_ids", "1"]).device == "cuda:1"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--blur_prob", "1.5"], "'1.5' is not a probability in [0, 1]"),
        (["--jpg_prob", "-0.1"], "'-0.1' is not a probability"),
        (["--blur_sig=-1,2"], "blur sigmas must be non-negative"),
        (["--blur_sig", "3,1"], "the first value must not exceed the second"),
        (["--blur_sig", "1,2,3"], "give one value or two separated by a comma"),
        (["--jpg_qual", "0,100"], "JPEG qualities must lie in 1..100"),
        (["--jpg_qual", "30,101"], "JPEG qualities must lie in 1..100"),
        (["--jpg_method", "cv2,libjpeg"], "choose one or more of cv2,pil"),
        (["--rz_interp", "area"], "choose one or more of bilinear,bicubic,lanczos,nearest"),
        (["--arch", "vgg16"], "'vgg16': choose one of resnet50"),
        (["--batch_size", "0"], "'0' is not a positive integer"),
        (["--unknown_flag", "1"], "unrecognized arguments: --unknown_flag"),
        (["--load"], "unrecognized arguments: --load"),  # abbreviations are not accepted
        (["--crop_size", "300"], "--crop_size 300 exceeds --load_size 256"),
        (["--gpu_ids", "0,1"], "torchrun --nproc_per_node 2"),
        (["--no_pretrained", "--pretrained_path", "x.pth"], "--pretrained_path has no effect with --no_pretrained"),
        (["--epoch", "last"], "--epoch has no effect with no --continue_train"),
        (["--continue_train", "--epoch", "last"], "--epoch 'last': give latest, best or an epoch number"),
        (["--new_optim"], "--new_optim has no effect with no --continue_train"),
        (["--optim", "sgd", "--beta1", "0.5"], "--beta1 has no effect with --optim sgd"),
        (["--no_crop", "--crop_size", "112"], "--crop_size has no effect with --no_crop"),
        (["--no_resize", "--load_size", "300"], "--load_size has no effect with --no_resize"),
        (["--no_resize", "--rz_interp", "bicubic"], "--rz_interp has no effect with --no_resize"),
        (["--protocol", "4class", "--classes", "car"], "--protocol and --classes exclude each other"),
        (["--select_on", "last"], "--select_on last never plateaus; use it with --lr_schedule cosine or --delr_freq"),
        (["--lr_schedule", "cosine", "--patience", "3"], "--patience has no effect with --lr_schedule cosine"),
        (["--lr_schedule", "cosine", "--delr_freq", "5"], "--lr_schedule cosine has no effect with --delr_freq"),
        (["--crop_grid", "0"], "'0' is not a positive integer"),
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
    assert saved["blur_prob"] == 0.5 and saved["blur_sig"] == [0.5, 0.5] and saved["dataroot"] == "dataset"
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
    (["--sweep", "blur", "1,-2"], "--sweep blur 1,-2: '-2' is not a non-negative number"),
    (["--sweep", "jpeg", "101"], "JPEG quality must lie in 1..100"),
    (["--sweep", "sharpen", "1"], "--sweep sharpen: choose one of blur, jpeg, resize"),
    (["--sweep", "blur", ","], "--sweep blur: give at least one value"),
    (["--sweep", "blur", "0,1", "--blur_sigma", "2"], "--sweep blur and --blur_sigma exclude each other"),
    (["--jpeg_method", "cv2"], "--jpeg_method only applies with --jpeg_quality or --sweep jpeg"),
    (["--jpeg_quality", "0"], "'0': JPEG quality must lie in 1..100"),
    (["--resize_scale", "0"], "'0' is not a positive number"),
    (["--no_crop", "--crop_size", "64"], "--crop_size has no effect with --no_crop"),
    (["--protocol", "4class", "--sets", "progan"], "--protocol and --sets exclude each other"),
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
    source = (ROOT / "options" / "parsers.py").read_text()
    assert source.count('"--debug"') == 1 and source.count('"--amp"') == 1


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
    assert "-f FILE, --file FILE an image, a folder (a 0_real/1_fake folder also reports AP) or a quoted glob -c" \
        in demo_help
    assert "gradient scaler" not in " ".join(eval_parser().format_help().split())
    assert "gradient scaler" in " ".join(train_parser().format_help().split())


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
