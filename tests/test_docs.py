"""Every command shown in README.md and docs/ works as written: each parses with its script's options (a renamed
or mistyped flag fails here), and the cheap ones (evaluation, demo and analyses on the mini-benchmark) run in a
folder laid out as after the quickstart."""

import re
import shlex
import shutil
from pathlib import Path

import pytest
import torch

import analyze
import demo
import eval as eval_script
from networks import build_model
from networks.released import RELEASED
from options import (
    parse_analyze_options,
    parse_app_options,
    parse_benchmark_options,
    parse_dataset_download_options,
    parse_demo_options,
    parse_eval_options,
    parse_quickstart_options,
    parse_train_options,
    parse_weights_download_options,
)
from tests.helpers import ROOT
from util.checkpoint import save_checkpoint

PARSERS = {"train.py": parse_train_options, "eval.py": parse_eval_options, "demo.py": parse_demo_options,
           "quickstart.py": parse_quickstart_options, "analyze.py": parse_analyze_options,
           "benchmark.py": parse_benchmark_options, "dataset.download": parse_dataset_download_options,
           "weights.download": parse_weights_download_options, "app.py": parse_app_options}
RUNS = {"eval.py": eval_script.main, "demo.py": demo.main, "analyze.py": analyze.main}
NOT_OURS = ("pip", "python3", ".", "torchrun")  # set-up lines and torchrun's own flags


def documented_commands() -> list[tuple[str, str, list[str]]]:
    """(where, script, argv) of every `python ...` command in the bash blocks of the README and docs/."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                for command in line.split("&&"):
                    words = shlex.split(command, comments=True)
                    if not words or words[0] in NOT_OURS or "..." in words:
                        continue
                    assert words[0] == "python", f"{path.name}: {command}"
                    if words[1] == "-m" and words[2] == "pytest":
                        continue
                    script, argv = (words[2], words[3:]) if words[1] == "-m" else (words[1], words[2:])
                    found.append((path.name, script, argv))
    return found


COMMANDS = documented_commands()


def test_the_docs_show_commands():
    scripts = {script for _, script, _ in COMMANDS}
    assert {"train.py", "eval.py", "demo.py", "quickstart.py", "analyze.py", "benchmark.py", "app.py"} <= scripts


@pytest.mark.parametrize(("where", "script", "argv"), COMMANDS, ids=[f"{w}:{' '.join(a)[:60]}" for w, _, a in
                                                                     COMMANDS])
def test_documented_command_parses(where, script, argv):
    PARSERS[script](argv)


@pytest.fixture(scope="module")
def after_quickstart(mini_bench, tmp_path_factory) -> Path:
    """A working folder as the quickstart leaves it (tiny sizes): the benchmark, a detector, its results."""
    root = tmp_path_factory.mktemp("after_quickstart")
    shutil.copytree(mini_bench, root / "dataset" / "mini")
    run = root / "checkpoints" / "quickstart_default_seed0"
    run.mkdir(parents=True)
    (run / "opt.json").write_text("{}")
    torch.manual_seed(0)
    save_checkpoint(run / "best.pth", {"model": build_model("resnet18", pretrained=False).state_dict(),
                                       "options": {"arch": "resnet18"},
                                       "test_protocol": {"crop_size": None, "resize": None}})
    eval_script.main(["-m", str(run / "best.pth"), "--dataroot", str(root / "dataset" / "mini" / "test"),
                      "--results_dir", str(root / "results"), "--name", "quickstart_default_seed0"])
    return root


def _runnable(script: str, argv: list[str]) -> bool:
    mini = any("dataset/mini" in a or "results/quickstart" in a for a in argv)
    released = any(a in RELEASED for a in argv)  # not downloadable here
    return not released and script in RUNS and mini and (script != "analyze.py" or argv[0] in ("spectra", "ranking"))


@pytest.mark.slow
@pytest.mark.parametrize(("where", "script", "argv"), [c for c in COMMANDS if _runnable(*c[1:])])
def test_documented_command_runs(after_quickstart, monkeypatch, capsys, where, script, argv):
    monkeypatch.chdir(after_quickstart)
    RUNS[script](argv)
    assert "error" not in capsys.readouterr().err
