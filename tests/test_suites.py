"""The test suites by name, each on a layout the test writes in the suite's published form; and suites defined
here, registered and scored through eval.py."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from data.datasets import Sample
from data.names import PAPER_MEAN_SETS, PROTOCOLS
from data.suites import SUITES, FolderSuite, Headline, LoadedSet, Suite, SuiteError, SuiteSet
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
    found, missing = SUITES["univfd"].locate(root)
    assert [(n, r.relative_to(root).as_posix(), f.relative_to(root).as_posix()) for n, r, f in found] == [
        ("guided", "imagenet/0_real", "guided/1_fake"), ("ldm_200", "laion/0_real", "ldm_200/1_fake"),
        ("dalle", "laion/0_real", "dalle/1_fake")]
    assert [m.split()[0] for m in missing] == ["ldm_200_cfg", "ldm_100", "glide_100_27", "glide_50_27",
                                               "glide_100_10"]


def test_synthbuster_scores_each_generator_against_raise(tmp_path: Path):
    root = _layout(tmp_path / "synthbuster", {"raise1k": 3, "dalle2": 2, "stable-diffusion-xl": 1})
    found, missing = SUITES["synthbuster"].locate(root)
    assert [(n, r.name, f.name) for n, r, f in found] == [("dalle2", "raise1k", "dalle2"),
                                                          ("stable-diffusion-xl", "raise1k", "stable-diffusion-xl")]
    assert len(missing) == 7


def test_genimage_finds_the_subfolder_of_each_generator(tmp_path: Path):
    root = _layout(tmp_path / "GenImage", {"ADM/imagenet_ai_0508_adm/val/ai": 2,
                                           "ADM/imagenet_ai_0508_adm/val/nature": 3,
                                           "BigGAN/imagenet_ai_0419_biggan/val/ai": 1,
                                           "BigGAN/imagenet_ai_0419_biggan/val/nature": 1,
                                           "wukong/imagenet_ai_0424_wukong/train/ai": 1})  # train only: missing
    found, missing = SUITES["genimage"].locate(root, ["BigGAN", "ADM", "wukong"])
    assert [(n, r.parent.parent.name) for n, r, _ in found] == [("BigGAN", "imagenet_ai_0419_biggan"),
                                                                ("ADM", "imagenet_ai_0508_adm")]
    assert missing == ["wukong (wukong/*/val/ai and wukong/*/val/nature)"]
    _images(root / "ADM" / "second" / "val" / "ai", 1, 9)
    with pytest.raises(SuiteError, match="ADM/\\*/val/ai matches 2 folders"):
        SUITES["genimage"].locate(root)


def test_wildrf_reads_its_test_split(tmp_path: Path):
    root = _layout(tmp_path / "WildRF", {f"test/{p}/{label}": 1 for p in ("reddit", "twitter", "facebook")
                                         for label in ("0_real", "1_fake")})
    found, missing = SUITES["wildrf"].locate(root)
    assert [n for n, _, _ in found] == ["reddit", "twitter", "facebook"] and not missing
    assert found[1][1] == root / "test" / "twitter" / "0_real"


def test_an_empty_folder_and_unknown_sets_are_clear_errors(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SuiteError, match="none of the univfd sets is there .*drive.google.com"):
        SUITES["univfd"].locate(tmp_path / "empty")
    with pytest.raises(SuiteError, match="--sets foo: not in --suite wildrf"):
        SUITES["wildrf"].locate(tmp_path / "empty", ["foo"])


def test_every_suite_defines_its_headline_sets():
    for name, suite in SUITES.items():
        assert suite.name == name
        if isinstance(suite, FolderSuite):
            assert set(suite.mean_sets) == {s.name for s in suite.sets}, name
    forensynths = SUITES["forensynths"]
    assert forensynths.headline() == Headline(PAPER_MEAN_SETS, "the 11 sets of the wang2020 protocol")
    assert forensynths.headline("4class") == Headline(PROTOCOLS["4class"].mean_sets,
                                                      "the 8 sets of the 4class protocol")
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
    assert code == 2 and "--protocol names sets of --suite forensynths; --suite wildrf has none" in err


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


# ------------------------------------------------------------------------------ a suite the library does not know
def _brightness_detector(path: Path) -> Path:
    """A ResNet-18 checkpoint whose logit rises with the gray level of a uniform image, with the sign of that level
    once normalized (above about 114 of 255: fake). The stem averages the pixels into channel 0, every residual
    branch is zero and every shortcut passes channel 0 on, so the ranking of such images is known in advance."""
    model = build_model("resnet18", pretrained=False)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.zero_()
            elif isinstance(module, torch.nn.BatchNorm2d):
                module.reset_parameters()  # the identity, up to its epsilon
        model.conv1.weight[0] = 1 / model.conv1.weight[0].numel()
        model.bn1.bias[0] = 3.0  # above every window mean of normalized pixels: the ReLU keeps the order
        for stage in (model.layer2, model.layer3, model.layer4):
            stage[0].downsample[0].weight[0, 0] = 1.0
        model.fc.weight.zero_()
        model.fc.weight[0, 0] = 1.0
        model.fc.bias.fill_(-3.0)
    save_checkpoint(path, {"model": model.state_dict(), "options": {"arch": "resnet18"}})
    return path


def _gray(path: Path, level: int) -> None:
    write_png(path, np.full((32, 32, 3), level, np.uint8))


def _eval_registered(suite: Suite, root: Path, tmp_path: Path, capsys, monkeypatch) -> tuple[str, Path]:
    """eval.py --suite on ``suite``, registered for this test only: (stdout, results folder)."""
    monkeypatch.setitem(SUITES, suite.name, suite)
    model = _brightness_detector(tmp_path / "brightness.pth")
    code, out, _ = run_main(eval_main, ["--suite", suite.name, "--dataroot", str(root), "-m", str(model), "--no_crop",
                                        "--results_dir", str(tmp_path / "results"), "--num_workers", "0"], capsys)
    assert code == 0
    return out, tmp_path / "results" / "brightness"


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# Gray levels: the shared reals, and the fakes of each set. Ranked by level, "gan" reads F R F R R: AP (1 + 2/3) / 2;
# "diffusion" reads F F R R F R: AP (1 + 1 + 3/5) / 3. At 0.5, levels above 114 are called fake.
REALS = (20, 60, 210)
FAKES = {"gan": (230, 100), "diffusion": (240, 250, 30)}
EXPECTED = {"gan": (5 / 6, 3 / 5), "diffusion": (2.6 / 3, 4 / 6)}  # AP, accuracy


def test_a_suite_defined_here_is_scored_by_eval_with_its_reals_shared(tmp_path: Path, capsys, monkeypatch):
    root = tmp_path / "toy"
    for i, level in enumerate(REALS):
        _gray(root / "photos" / f"r{i}.png", level)
    for name, levels in FAKES.items():
        for i, level in enumerate(levels):
            _gray(root / "generated" / name / f"f{i}.png", level)
    suite = FolderSuite(name="toy", title="Toy", source="made by the test", mean_sets=("gan", "diffusion"),
                        sets=(SuiteSet("gan", "generated/gan", "photos"),
                              SuiteSet("diffusion", "generated/diffusion", "photos"),
                              SuiteSet("vae", "generated/vae", "photos")),
                        mean_what="AP averaged over two generators")
    out, results = _eval_registered(suite, root, tmp_path, capsys, monkeypatch)
    assert "toy: 1 sets not under" in out and "vae (generated/vae and photos)" in out

    scores = _read(results / "scores.csv")
    for name, levels in FAKES.items():
        rows = [r for r in scores if r["set"] == name]
        assert sorted(Path(r["path"]).relative_to(root).as_posix() for r in rows if r["label"] == "0") == [
            "photos/r0.png", "photos/r1.png", "photos/r2.png"]
        assert sum(r["label"] == "1" for r in rows) == len(levels)
    summary = {r["set"]: r for r in _read(results / "summary.csv")}
    assert list(summary) == ["gan", "diffusion", "mean"]
    for name, (ap, acc) in EXPECTED.items():
        assert float(summary[name]["ap"]) == pytest.approx(ap) and float(summary[name]["acc"]) == pytest.approx(acc)
        assert (summary[name]["n_real"], summary[name]["n_fake"]) == ("3", str(len(FAKES[name])))
    assert float(summary["mean"]["ap"]) == pytest.approx(0.85)
    assert ("Mean over the 2 sets of Toy (AP averaged over two generators): AP 85.0, acc 63.3."
            in (results / "summary.md").read_text())


@dataclass(frozen=True, kw_only=True)
class LabelsFileSuite(Suite):
    """One flat folder of images and ``labels.csv`` (``file,source``): the ``real`` rows are the reals, and each
    other source is a fake set scored against all of them."""

    sources: tuple[str, ...]

    def load(self, root: Path, names: Sequence[str] | None = None) -> list[LoadedSet]:
        rows = _read(root / "labels.csv")
        reals = [Sample(str(root / r["file"]), 0, "") for r in rows if r["source"] == "real"]
        return [LoadedSet(name, root, reals + [Sample(str(root / r["file"]), 1, "") for r in rows
                                               if r["source"] == name])
                for name in names or self.sources]

    def own_headline(self) -> Headline:
        return Headline(self.sources, f"the {len(self.sources)} generators of {self.title}")


def test_a_suite_with_a_layout_of_its_own_is_scored_by_eval(tmp_path: Path, capsys, monkeypatch):
    root = tmp_path / "flat"
    labels = [("real", level) for level in REALS] + [(name, level) for name in FAKES for level in FAKES[name]]
    for i, (_, level) in enumerate(labels):
        _gray(root / f"{i:02d}.png", level)
    (root / "labels.csv").write_text("file,source\n" + "".join(f"{i:02d}.png,{source}\n"
                                                                for i, (source, _) in enumerate(labels)))
    suite = LabelsFileSuite(name="flat", title="Flat", source="made by the test", sources=tuple(FAKES))
    _, results = _eval_registered(suite, root, tmp_path, capsys, monkeypatch)

    summary = {r["set"]: r for r in _read(results / "summary.csv")}
    for name, (ap, acc) in EXPECTED.items():
        assert float(summary[name]["ap"]) == pytest.approx(ap) and float(summary[name]["acc"]) == pytest.approx(acc)
    assert len(_read(results / "scores.csv")) == 2 * len(REALS) + sum(map(len, FAKES.values()))
    assert "Mean over the 2 generators of Flat: AP 85.0, acc 63.3." in (results / "summary.md").read_text()
    code, _, err = run_main(eval_main, ["--suite", "flat", "--protocol", "4class"], capsys)
    assert code == 2 and "--protocol names sets of --suite forensynths; --suite flat has none" in err
