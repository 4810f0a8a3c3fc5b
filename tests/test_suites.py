"""The test suites by name, each on a layout the test writes in the suite's published form."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from data.suites import SUITES, SuiteError, find_suite_sets
from eval import main as eval_main
from networks import build_model
from tests.helpers import random_image, run_main, write_png
from util.checkpoint import save_checkpoint


def _images(folder: Path, count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for i in range(count):
        write_png(folder / f"{i}.png", random_image(rng, 8, 8))


def _layout(root: Path, folders: dict[str, int]) -> Path:
    for seed, (folder, count) in enumerate(folders.items()):
        _images(root / folder, count, seed)
    return root


UNIVFD = {"imagenet/0_real": 2, "laion/0_real": 3, "guided/1_fake": 4, "ldm_200/1_fake": 5, "dalle/1_fake": 1}


def test_univfd_pairs_guided_with_imagenet_and_the_others_with_laion(tmp_path: Path):
    root = _layout(tmp_path / "diffusion_datasets", UNIVFD)
    found, missing = find_suite_sets("univfd", root)
    assert [(n, r.relative_to(root).as_posix(), f.relative_to(root).as_posix()) for n, r, f in found] == [
        ("guided", "imagenet/0_real", "guided/1_fake"), ("ldm_200", "laion/0_real", "ldm_200/1_fake"),
        ("dalle", "laion/0_real", "dalle/1_fake")]
    assert [m.split()[0] for m in missing] == ["ldm_200_cfg", "ldm_100", "glide_100_27", "glide_50_27",
                                               "glide_100_10"]


def test_synthbuster_scores_each_generator_against_raise(tmp_path: Path):
    root = _layout(tmp_path / "synthbuster", {"raise1k": 3, "dalle2": 2, "stable-diffusion-xl": 1})
    found, missing = find_suite_sets("synthbuster", root)
    assert [(n, r.name, f.name) for n, r, f in found] == [("dalle2", "raise1k", "dalle2"),
                                                          ("stable-diffusion-xl", "raise1k", "stable-diffusion-xl")]
    assert len(missing) == 7


def test_genimage_finds_the_subfolder_of_each_generator(tmp_path: Path):
    root = _layout(tmp_path / "GenImage", {"ADM/imagenet_ai_0508_adm/val/ai": 2,
                                           "ADM/imagenet_ai_0508_adm/val/nature": 3,
                                           "BigGAN/imagenet_ai_0419_biggan/val/ai": 1,
                                           "BigGAN/imagenet_ai_0419_biggan/val/nature": 1,
                                           "wukong/imagenet_ai_0424_wukong/train/ai": 1})  # train only: missing
    found, missing = find_suite_sets("genimage", root, ["BigGAN", "ADM", "wukong"])
    assert [(n, r.parent.parent.name) for n, r, _ in found] == [("BigGAN", "imagenet_ai_0419_biggan"),
                                                                ("ADM", "imagenet_ai_0508_adm")]
    assert missing == ["wukong (wukong/*/val/ai and wukong/*/val/nature)"]
    _images(root / "ADM" / "second" / "val" / "ai", 1, 9)
    with pytest.raises(SuiteError, match="ADM/\\*/val/ai matches 2 folders"):
        find_suite_sets("genimage", root)


def test_wildrf_reads_its_test_split(tmp_path: Path):
    root = _layout(tmp_path / "WildRF", {f"test/{p}/{label}": 1 for p in ("reddit", "twitter", "facebook")
                                         for label in ("0_real", "1_fake")})
    found, missing = find_suite_sets("wildrf", root)
    assert [n for n, _, _ in found] == ["reddit", "twitter", "facebook"] and not missing
    assert found[1][1] == root / "test" / "twitter" / "0_real"


def test_an_empty_folder_and_unknown_sets_are_clear_errors(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SuiteError, match="none of the univfd sets is there .*drive.google.com"):
        find_suite_sets("univfd", tmp_path / "empty")
    with pytest.raises(SuiteError, match="--sets foo: not in --suite wildrf"):
        find_suite_sets("wildrf", tmp_path / "empty", ["foo"])


def test_every_suite_defines_its_headline_sets():
    for name, suite in SUITES.items():
        if suite.sets is not None:
            assert set(suite.mean_sets) == {s.name for s in suite.sets}, name
    assert len(SUITES["univfd"].mean_sets) == 8 and len(SUITES["synthbuster"].mean_sets) == 9
    assert len(SUITES["genimage"].mean_sets) == 8 and len(SUITES["wildrf"].mean_sets) == 3


def _eval_suite(suite: str, root: Path, tmp_path: Path, capsys) -> tuple[int, str]:
    """eval.py --suite with a random tiny ResNet-18 on whole images: (exit status, stdout); results in
    <tmp_path>/results/tiny/."""
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "tiny.pth", {"model": build_model("resnet18", pretrained=False).state_dict(),
                                            "options": {"arch": "resnet18"}})
    code, out, _ = run_main(eval_main, ["--suite", suite, "--dataroot", str(root), "-m", str(tmp_path / "tiny.pth"),
                                        "--no_crop", "--results_dir", str(tmp_path / "results"), "--num_workers", "0"],
                            capsys)
    return code, out


def test_eval_on_a_suite_scores_each_fake_set_with_its_reals(tmp_path: Path, capsys):
    root = _layout(tmp_path / "diffusion_datasets", UNIVFD)
    (root / "guided" / "1_fake" / "prompts.txt").write_text("not an image\n")
    code, out = _eval_suite("univfd", root, tmp_path, capsys)
    assert code == 0
    assert "guided (" in out and "1 file left out (not images): .txt" in out
    assert "univfd: 5 sets not under" in out and "ldm_100 (ldm_100/1_fake and laion/0_real)" in out
    with open(tmp_path / "results" / "tiny" / "summary.csv", newline="") as f:
        rows = {r["set"]: r for r in csv.DictReader(f)}
    assert [(s, rows[s]["n_real"], rows[s]["n_fake"]) for s in ("guided", "ldm_200", "dalle")] == [
        ("guided", "2", "4"), ("ldm_200", "3", "5"), ("dalle", "3", "1")]
    with open(tmp_path / "results" / "tiny" / "scores.csv", newline="") as f:
        guided = [r for r in csv.DictReader(f) if r["set"] == "guided"]
    assert {Path(r["path"]).parent.parent.name for r in guided if r["label"] == "0"} == {"imagenet"}
    # The headline mean needs all 8 sets: with 3 of them it is not printed.
    assert "Mean over the 8 sets" not in out
    code, _, err = run_main(eval_main, ["--suite", "wildrf", "--protocol", "4class"], capsys)
    assert code == 2 and "--protocol names ForenSynths sets" in err


def test_the_headline_mean_is_written_when_every_set_is_there(tmp_path: Path, capsys):
    root = _layout(tmp_path / "WildRF", {f"test/{p}/{label}": 2 for p in ("reddit", "twitter", "facebook")
                                         for label in ("0_real", "1_fake")})
    code, _ = _eval_suite("wildrf", root, tmp_path, capsys)
    assert code == 0
    with open(tmp_path / "results" / "tiny" / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    mean_acc = np.mean([float(r["acc"]) for r in rows if r["set"] != "mean"])
    summary = (tmp_path / "results" / "tiny" / "summary.md").read_text()
    assert "Mean over the 3 sets of WildRF (Cavia et al., 2024) (accuracy averaged over its 3 platforms" in summary
    assert f"acc {100 * mean_acc:.1f}." in summary
