import re
import shlex
from pathlib import Path

import pytest

from options import parse_demo_options, parse_eval_options, parse_train_options, train_parser
from options.options import (
    describe_options,
    parse_analyze_options,
    parse_benchmark_options,
    parse_dataset_download_options,
    parse_quickstart_options,
    parse_weights_download_options,
    save_options,
)

ROOT = Path(__file__).resolve().parents[1]
AUTHORS_COMMAND = (
    "--name blur_jpg_prob0.5 --blur_prob 0.5 --blur_sig 0.0,3.0 --jpg_prob 0.5 --jpg_method cv2,pil "
    "--jpg_qual 30,100 --dataroot ./dataset/ --classes airplane,bird,bicycle,boat,bottle,bus,car,cat,cow,chair,"
    "diningtable,dog,person,pottedplant,motorbike,tvmonitor,train,sheep,sofa,horse"
)


def test_authors_training_command_parses():
    opt = parse_train_options(shlex.split(AUTHORS_COMMAND))
    assert opt.blur_prob == 0.5 and opt.jpg_prob == 0.5
    assert opt.blur_sig == (0.0, 3.0)
    assert opt.jpg_method == ("cv2", "pil")
    assert opt.jpg_qual == (30, 100)
    assert len(opt.classes) == 20 and opt.classes[0] == "airplane"
    assert opt.arch == "resnet50" and opt.batch_size == 64 and opt.lr == 1e-4 and opt.patience == 5


def test_authors_aliases_and_single_values():
    opt = parse_train_options(
        ["--loadSize", "128", "--cropSize", "112", "--niter", "7", "--earlystop_epoch", "3", "--num_threads", "0",
         "--gpu_ids", "-1", "--blur_sig", "1.5", "--jpg_qual", "90", "--arch", "res50",
         "--rz_interp", "bicubic,nearest"]
    )
    assert (opt.load_size, opt.crop_size, opt.epochs, opt.patience, opt.num_workers) == (128, 112, 7, 3, 0)
    assert opt.device == "cpu"
    assert opt.blur_sig == (1.5, 1.5) and opt.jpg_qual == (90, 90)
    assert opt.arch == "resnet50" and opt.rz_interp == ("bicubic", "nearest")
    assert parse_train_options(["--gpu_ids", "1"]).device == "cuda:1"


@pytest.mark.parametrize(
    "argv",
    [
        ["--blur_prob", "1.5"],
        ["--jpg_prob", "-0.1"],
        ["--blur_sig", "-1,2"],
        ["--blur_sig", "3,1"],
        ["--blur_sig", "1,2,3"],
        ["--jpg_qual", "0,100"],
        ["--jpg_qual", "30,101"],
        ["--jpg_method", "cv2,libjpeg"],
        ["--rz_interp", "area"],
        ["--arch", "vgg16"],
        ["--batch_size", "0"],
        ["--unknown_flag", "1"],
        ["--load"],  # abbreviations are not accepted
        ["--crop_size", "300"],  # larger than load_size
        ["--gpu_ids", "0,1"],
        ["--no_pretrained", "--pretrained_path", "x.pth"],
        ["--epoch", "last"],
        ["--new_optim"],
    ],
)
def test_bad_values_are_errors(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_train_options(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_gpu_ids_several_points_to_torchrun(capsys):
    with pytest.raises(SystemExit):
        parse_train_options(["--gpu_ids", "0,1"])
    assert "torchrun --nproc_per_node 2" in capsys.readouterr().err


def test_describe_marks_non_defaults_and_save_writes_json(tmp_path):
    import json

    opt = parse_train_options(["--blur_prob", "0.5", "--name", "x"])
    text = describe_options(train_parser(), opt)
    assert re.search(r"blur_prob: 0\.5\t\[default: 0\.0\]", text)
    assert re.search(r"lr: 0\.0001$", text, flags=re.M)
    save_options(opt, tmp_path / "opt.json")
    saved = json.loads((tmp_path / "opt.json").read_text())
    assert saved["blur_prob"] == 0.5 and saved["blur_sig"] == [0.5, 0.5] and saved["dataroot"] == "dataset"


def _library_sources() -> str:
    files = [p for p in ROOT.rglob("*.py") if not {"tests", "options", ".venv"} & set(p.relative_to(ROOT).parts)]
    return "\n".join(p.read_text() for p in files)


# Options that the parser itself turns into others (--protocol fills --classes / --sets).
RESOLVED_BY_PARSER = {"protocol"}


@pytest.mark.parametrize("parse", [
    parse_train_options, parse_eval_options, parse_quickstart_options, parse_weights_download_options,
    parse_benchmark_options,
    lambda argv: parse_demo_options(["-f", "x", *argv]),
    lambda argv: parse_dataset_download_options(["test", *argv]),
    lambda argv: parse_analyze_options(["spectra", *argv]),
    lambda argv: parse_analyze_options(["ranking", "--scores", "x", *argv]),
    lambda argv: parse_analyze_options(["ablation", *argv]),
])
def test_every_option_is_used_by_the_code(parse):
    sources = _library_sources()
    opt = parse([])
    unused = [k for k in vars(opt) if k not in RESOLVED_BY_PARSER and not re.search(rf"\bopt\.{k}\b", sources)]
    assert unused == []


def test_eval_options():
    opt = parse_eval_options(["--sweep", "jpeg", "100,90,30", "--jpeg_method", "cv2", "--cropSize", "112",
                              "--sets", "progan,biggan", "--blur_sigma", "1"])
    assert opt.sweep == ("jpeg", (100, 90, 30)) and opt.jpeg_method == "cv2" and opt.crop_size == 112
    assert opt.sets == ("progan", "biggan") and opt.blur_sigma == 1.0
    assert str(opt.dataroot) == "dataset/test" and str(opt.model_path) == "weights/blur_jpg_prob0.5.pth"


def test_demo_keeps_the_authors_flags():
    opt = parse_demo_options(["-f", "img.png", "-m", "w.pth", "-c", "224", "--use_cpu"])
    assert (opt.file, str(opt.model_path), opt.crop, opt.device) == ("img.png", "w.pth", 224, "cpu")
    assert parse_demo_options(["-f", "x"]).crop is None


@pytest.mark.parametrize("argv", [
    ["--sweep", "blur", "1,-2"],
    ["--sweep", "jpeg", "101"],
    ["--sweep", "sharpen", "1"],
    ["--sweep", "blur", ","],
    ["--sweep", "blur", "0,1", "--blur_sigma", "2"],
    ["--jpeg_method", "cv2"],  # no JPEG requested
    ["--jpeg_quality", "0"],
    ["--resize_scale", "0"],
    ["--seed", "1"],  # evaluation draws nothing at random
])
def test_bad_eval_values_are_errors(argv):
    with pytest.raises(SystemExit) as exc:
        parse_eval_options(argv)
    assert exc.value.code == 2
