import csv
import re
from pathlib import Path

import pytest

import quickstart
from util.checkpoint import load_checkpoint
from util.errors import UserError

pytestmark = pytest.mark.slow


def test_tiny_quickstart_builds_trains_evaluates_and_demos(tmp_path, capsys):
    argv = ["--size", "tiny", "--root", str(tmp_path / "mini"), "--checkpoints_dir", str(tmp_path / "ck"),
            "--results_dir", str(tmp_path / "res"), "--device", "cpu"]  # workers: the default, auto
    quickstart.main(argv)
    out, err = capsys.readouterr()
    results = tmp_path / "res" / "quickstart_tiny_seed0"
    assert {"scores.csv", "summary.csv", "summary.md", "calibration.json", "quickstart.csv", "quickstart.md",
            "opt.json"} <= {p.name for p in results.iterdir()}
    with open(results / "quickstart.csv", newline="") as f:
        table = {r["generator"]: r for r in csv.DictReader(f)}
    assert list(table) == ["nearest", "bilinear", "transposed", "pixelshuffle"]
    assert table["nearest"]["role"] == "training" and table["bilinear"]["role"] == "unseen"
    assert float(table["nearest"]["ap"]) > 0.6  # the detector beats chance on its own generator
    assert out.count("probability of being synthetic:") == 2
    assert re.search(r"probability of being synthetic: \d+\.\d\d% \((real|synthetic) at threshold 50%\)", out)
    assert "is not meant for images from elsewhere" in out and "Use this detector: python eval.py -m" in out
    assert "----------------- options" not in out and "worker processes in total" not in err
    assert load_checkpoint(tmp_path / "ck" / "quickstart_tiny_seed0" / "best.pth")["test_protocol"] == {
        "crop_size": None, "resize": None, "square": False}
    assert (tmp_path / "mini" / "test" / "nearest" / "1_fake" / "00000.png").is_file()

    quickstart.main([*argv, "--num_workers", "1"])  # the same recipe: benchmark and detector are reused
    out = capsys.readouterr().out
    assert "using the cached build" in out and "reusing" in out
    with pytest.raises(SystemExit) as exc:  # another recipe never silently reuses or replaces the run
        quickstart.main([*argv, "--amp", "bf16"])
    assert exc.value.code == 2 and "--retrain" in capsys.readouterr().err


def test_unfinished_run_needs_retrain(tmp_path):
    run = tmp_path / "ck" / "quickstart_tiny_seed0"
    run.mkdir(parents=True)
    with pytest.raises(UserError, match="--retrain"):
        from commands.quickstart import run_quickstart
        from options import parse_quickstart_options

        run_quickstart(parse_quickstart_options(["--size", "tiny", "--root", str(tmp_path / "mini"),
                                                 "--checkpoints_dir", str(tmp_path / "ck"), "--results_dir",
                                                 str(tmp_path / "res"), "--num_workers", "0"]))
    assert Path(run).is_dir()
