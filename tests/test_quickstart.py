import csv
import re
from pathlib import Path

import pytest
import torch

import quickstart
from util.checkpoint import load_checkpoint
from util.errors import UserError

pytestmark = pytest.mark.slow

# The tiny preset's band (AP %), measured on the 2-core development machine (2026-12-03) with training seeds 0-2,
# each with 1 and 2 threads, on the one tiny build: training generator 87.6-96.3, mean of the unseen ones
# 59.0-78.6 (seed 0: 72.4 and 78.6), one set's change between the two thread counts at most 10.0 (seed 0), 3.4
# (seed 1), 3.6 (seed 2). The earlier recipe on seed 0: mean unseen 61.7 with 2 threads, changes up to 13.4. The
# test runs seed 0.
TINY_BAND = {"training": 80.0, "unseen_mean": 65.0, "thread_change": 12.0}


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
    assert out.count("demo on a typical") == 2 and "(the median score of its label)" in out
    assert re.search(r"epoch 1: val acc .*; about \d+ s left \(5 epochs\)", out)  # the progress line
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


def test_the_mini_recipe_holds_its_band_under_another_thread_count(tmp_path):
    """The regression check of the recipe's sturdiness. One or two intra-op threads sum in another order, as another
    CPU would, and send training down another path; the tiny preset's AP must stay inside the band measured over
    seeds 0-2 with 1 and 2 threads (docs/mini-benchmark.md). The earlier, fragile recipe (unaligned crops, sigma up
    to 3, the epoch of best validation accuracy) falls out of it."""
    from commands.quickstart import QuickstartConfig, run_quickstart

    before = torch.get_num_threads()
    aps = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            rows = run_quickstart(QuickstartConfig(size="tiny", root=tmp_path / "mini", device="cpu", num_workers=0,
                                                   checkpoints_dir=tmp_path / f"ck{threads}",
                                                   results_dir=tmp_path / f"res{threads}"))
            aps[threads] = {row["generator"]: row["ap"] for row in rows}
    finally:
        torch.set_num_threads(before)
    for threads, ap in aps.items():
        assert 100 * ap["nearest"] >= TINY_BAND["training"], (threads, ap)
        unseen = [100 * ap[g] for g in ("bilinear", "transposed", "pixelshuffle")]
        assert sum(unseen) / len(unseen) >= TINY_BAND["unseen_mean"], (threads, ap)
    assert max(100 * abs(aps[1][g] - aps[2][g]) for g in aps[1]) <= TINY_BAND["thread_change"], aps
