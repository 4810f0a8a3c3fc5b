"""analyze.py: spectra (Fig. 7), fakeness ranking (Fig. 6), class-diversity ablation (Fig. 3); protocol presets."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from commands.ablation import class_subsets, run_ablation
from commands.ranking import ScoreRow, at_percentiles, misclassified, read_scores, run_ranking
from commands.spectra import highpass, run_spectra
from data import PROTOCOLS
from engine.evaluation import protocol_mean
from options import parse_analyze_options, parse_eval_options, parse_train_options
from tests.helpers import write_png
from util.errors import UserError


def _config(argv: list[str]):
    """The config analyze.py hands its command for ``argv``."""
    return parse_analyze_options(argv)[1]

SIDE = 32


def _smooth_image(rng: np.random.Generator) -> np.ndarray:
    """Camera-like content: smooth structure plus a little sensor noise, no periodic pattern."""
    base = gaussian_filter(rng.normal(size=(SIDE, SIDE, 3)), sigma=(2, 2, 0)) * 300 + 128
    return base + rng.normal(0, 4, size=base.shape)


def _periodic_set(root: Path, n: int = 12, small: bool = False) -> Path:
    """Reals: smooth content. Fakes: the same kind of content plus a period-4 pattern, as a stride-2
    upsampling stack leaves behind."""
    rng = np.random.default_rng(0)
    tile = np.tile(rng.normal(0, 12, size=(4, 4, 1)), (SIDE // 4, SIDE // 4, 3))
    for i in range(n):
        write_png(root / "gen" / "0_real" / f"{i}.png", np.clip(_smooth_image(rng), 0, 255).astype(np.uint8))
        write_png(root / "gen" / "1_fake" / f"{i}.png", np.clip(_smooth_image(rng) + tile, 0, 255).astype(np.uint8))
    if small:
        write_png(root / "gen" / "0_real" / "small.png", np.zeros((SIDE // 2, SIDE // 2, 3), np.uint8))
    return root


def test_highpass_removes_flat_and_keeps_spikes():
    image = np.full((9, 9), 50.0)
    image[4, 4] = 250.0
    residual = highpass(image)
    assert residual[4, 4] == pytest.approx(200.0)
    assert np.count_nonzero(residual) == 1


def test_periodic_upsampling_pattern_shows_as_peaks_in_the_fake_spectrum(tmp_path: Path):
    root = _periodic_set(tmp_path / "sets")
    out = tmp_path / "spectra"
    counts = run_spectra(_config(["spectra", "--dataroot", str(root), "--max_images", "10",
                                                "--crop_size", str(SIDE), "--out", str(out)]))
    assert counts == {"gen": {"real_used": 10, "real_too_small": 0, "real_unreadable": 0, "fake_used": 10,
                              "fake_too_small": 0, "fake_unreadable": 0}}
    real, fake = np.load(out / "gen_real.npy"), np.load(out / "gen_fake.npy")
    assert real.shape == fake.shape == (SIDE, SIDE)
    center, step = SIDE // 2, SIDE // 4  # zero frequency in the center; period 4 -> peaks every SIDE/4 bins
    for y, x in ((center, center + step), (center + step, center), (center + step, center + step)):
        assert fake[y, x] > 5 * real[y, x]
        assert fake[y, x] > 3 * np.median(fake)
    between = (center + step // 2, center + 1 + step // 2)  # not a multiple of SIDE/4: no peak there
    assert fake[between] < 2 * real[between]
    assert (out / "spectra.png").stat().st_size > 0 and (out / "spectra.pdf").read_bytes().startswith(b"%PDF")
    assert json.loads((out / "spectra.json").read_text())["side"] == SIDE


def test_spectra_default_side_and_small_images_left_out(tmp_path: Path):
    root = _periodic_set(tmp_path / "sets", n=3, small=True)
    (root / "gen" / "1_fake" / "broken.png").write_bytes(b"")
    out = tmp_path / "spectra"
    # All images chosen: the small one sets the side, so nothing is left out and arrays are 16 x 16.
    counts = run_spectra(_config(["spectra", "--dataroot", str(root), "--out", str(out)]))
    assert counts["gen"]["real_used"] == 4 and np.load(out / "gen_real.npy").shape == (SIDE // 2, SIDE // 2)
    assert (counts["gen"]["fake_used"], counts["gen"]["fake_unreadable"]) == (3, 1)
    again = ["spectra", "--dataroot", str(root), "--crop_size", str(SIDE), "--out", str(out)]
    with pytest.raises(UserError, match="already holds results"):
        run_spectra(_config(again))
    counts = run_spectra(_config([*again, "--overwrite"]))
    assert (counts["gen"]["real_used"], counts["gen"]["real_too_small"]) == (3, 1)


# ----------------------------------------------------------------------------------------------- ranking
def test_percentile_picks_are_in_score_order():
    items = [ScoreRow(f"{i}.png", 1, p) for i, p in enumerate([0.9, 0.1, 0.5, 0.7, 0.3])]
    assert [s.prob for s in at_percentiles(items)] == [0.1, 0.3, 0.5, 0.7, 0.9]
    assert [s.prob for s in at_percentiles(items[:1])] == [0.9] * 5


def test_misclassified_most_confident_first():
    items = [ScoreRow("r1", 0, 0.6), ScoreRow("r2", 0, 0.9), ScoreRow("r3", 0, 0.5), ScoreRow("f1", 1, 0.2),
             ScoreRow("f2", 1, 0.45), ScoreRow("f3", 1, 0.51)]
    false_fakes, false_reals = misclassified(items, 0.5, limit=5)
    assert [s.path for s in false_fakes] == ["r2", "r1"]  # 0.5 itself is "real", as accuracy counts it
    assert [s.path for s in false_reals] == ["f1", "f2"]
    assert [s.path for s in misclassified(items, 0.5, limit=1)[0]] == ["r2"]


def _scores_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for set_name in ("alpha", "beta"):
        for i in range(6):
            label = i % 2
            path = write_png(tmp_path / "img" / set_name / f"{i}.png", rng.integers(0, 256, (20, 24, 3), np.uint8))
            rows.append({"set": set_name, "subclass": "", "path": str(path), "label": label, "logit": 0.0,
                         "prob": [0.8, 0.9, 0.1, 0.2, 0.3, 0.6][i]})
    path = tmp_path / "run" / "scores.csv"
    path.parent.mkdir()
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_ranking_writes_galleries_and_pages(tmp_path: Path):
    scores = _scores_csv(tmp_path)
    assert [len(v) for v in read_scores(scores).values()] == [6, 6]
    (tmp_path / "img" / "beta" / "0.png").unlink()  # moved since it was scored: a blank, captioned cell
    out = run_ranking(_config(["ranking", "--scores", str(scores), "--thumbnail", "32"]))
    assert out == scores.parent / "ranking"
    figures = {"fakeness", "misclassified_alpha", "misclassified_beta"}
    assert {p.name for p in out.iterdir()} == {f"{f}.{ext}" for f in figures for ext in ("png", "pdf")} | {
        "alpha.html", "beta.html", "index.html"}
    assert all((out / f"{f}.pdf").read_bytes().startswith(b"%PDF") for f in figures)
    page = (out / "alpha.html").read_text()
    # Every image, most fake first; reals 0 (0.8) and 4 (0.3)... : mistakes are 0.png (real, 0.8) and 3.png
    # (fake, 0.2).
    order = [page.index(f"img/alpha/{i}.png") for i in (1, 0, 5, 4, 3, 2)]
    assert order == sorted(order)
    assert page.count('class="wrong"') == 2
    # Reals 0.8, 0.1, 0.3 and fakes 0.9, 0.2, 0.6: AP (1 + 2/3 + 3/5) / 3, 4 of 6 right at 0.5.
    assert "<b>75.6%</b>AP" in page and "<b>66.7%</b>accuracy at 0.5" in page
    index = (out / "index.html").read_text()
    assert '<a href="alpha.html">' in index and '<td class="num">75.6%</td><td class="num">66.7%</td>' in index


def test_ranking_rejects_a_file_that_is_not_scores(tmp_path: Path):
    bad = tmp_path / "scores.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="not an eval.py scores file"):
        read_scores(bad)
    with pytest.raises(UserError, match="no such file"):
        read_scores(tmp_path / "missing.csv")


# ---------------------------------------------------------------------------------------------- ablation
def test_class_subsets_are_nested_seeded_and_bounded():
    classes = [f"c{i}" for i in range(6)]
    subsets = class_subsets(classes, (1, 3, 6), seed=0)
    assert [len(s) for s in subsets] == [1, 3, 6]
    assert set(subsets[0]) <= set(subsets[1]) <= set(subsets[2]) == set(classes)
    assert class_subsets(classes, (1, 3, 6), seed=0) == subsets
    assert any(class_subsets(classes, (3,), seed=s)[0] != subsets[1] for s in range(1, 6))
    with pytest.raises(UserError, match="only 6 classes"):
        class_subsets(classes, (7,), seed=0)


@pytest.mark.slow
def test_ablation_trains_evaluates_and_reuses_runs(mini_bench: Path, tmp_path: Path):
    argv = ["ablation", "--dataroot", str(mini_bench), "--test_dataroot", str(mini_bench / "test"),
            "--num_classes", "1,3", "--name", "abl", "--checkpoints_dir", str(tmp_path / "ck"),
            "--results_dir", str(tmp_path / "res"), "--arch", "resnet18", "--no_pretrained", "--no_resize",
            "--crop_size", "24", "--batch_size", "8", "--epochs", "1", "--eval_no_crop", "--num_workers", "0",
            "--device", "cpu"]
    cfg = _config(argv)
    rows = run_ablation(cfg)
    assert [r["num_classes"] for r in rows] == [1, 3]
    assert set(rows[0]["classes"].split()) < set(rows[1]["classes"].split()) == {"group0", "group1", "group2"}
    sets = ["nearest", "bilinear", "transposed", "pixelshuffle"]
    for row in rows:
        assert 0.0 <= row["mean_ap"] <= 1.0
        assert row["mean_ap"] == pytest.approx(np.mean([row[s] for s in sets]))
    out = tmp_path / "res" / "abl"
    with open(out / "ablation.csv") as f:
        assert len(list(csv.DictReader(f))) == 2
    assert (out / "ablation.png").stat().st_size > 0 and "| 3 |" in (out / "ablation.md").read_text()
    saved = json.loads((tmp_path / "ck" / "abl_classes1" / "opt.json").read_text())
    assert saved["classes"] == rows[0]["classes"].split() and "num_classes" not in saved

    best = tmp_path / "ck" / "abl_classes3" / "best.pth"
    mtime = best.stat().st_mtime_ns
    with pytest.raises(UserError, match="already holds results"):
        run_ablation(cfg)
    again = run_ablation(_config([*argv, "--overwrite"]))
    assert best.stat().st_mtime_ns == mtime  # reused, not retrained
    assert [r["mean_ap"] for r in again] == [r["mean_ap"] for r in rows]


# --------------------------------------------------------------------------------------------- protocols
def test_protocols_select_classes_and_sets():
    assert parse_train_options(["--protocol", "4class"]).classes == ("car", "cat", "chair", "horse")
    assert len(parse_train_options(["--protocol", "wang2020"]).classes) == 20
    assert parse_eval_options(["--protocol", "4class"]).sets == PROTOCOLS["4class"].test_sets
    assert parse_eval_options(["--protocol", "wang2020"]).sets[-1] == "whichfaceisreal"
    cfg = _config(["ablation", "--protocol", "4class"])
    assert cfg.test_sets == PROTOCOLS["4class"].test_sets and cfg.train.classes == PROTOCOLS["4class"].classes


def test_protocol_mean_needs_every_headline_set():
    rows = [{"set": s, "n_real": 1, "n_fake": 1, "n_skipped": 0, "ap": 0.5 + 0.05 * i, "acc": 0.5, "r_acc": 1.0,
             "f_acc": 0.0, "auc": 0.5, "acc_calibrated": None} for i, s in enumerate(PROTOCOLS["4class"].test_sets)]
    mean = protocol_mean(rows, PROTOCOLS["4class"].mean_sets)
    assert mean["ap"] == pytest.approx(0.5 + 0.05 * 3.5)
    assert protocol_mean(rows[:-1], PROTOCOLS["4class"].mean_sets) is None
    assert protocol_mean(rows, PROTOCOLS["wang2020"].mean_sets) is None
