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
from data.suites import (
    GENIMAGE_TRAINING,
    SUITES,
    FolderSuite,
    Headline,
    Layout,
    LoadedSet,
    Suite,
    SuiteError,
    SuiteSet,
    at_most,
)
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


def _pairs(found, root: Path) -> list[tuple[str, str, str]]:
    return [(f.name, f.reals.relative_to(root).as_posix(), f.fakes.relative_to(root).as_posix()) for f in found]


def test_univfd_pairs_guided_with_imagenet_and_the_others_with_laion(tmp_path: Path):
    root = _layout(tmp_path / "diffusion_datasets", UNIVFD)
    found, missing = SUITES["univfd"].locate(root)
    assert _pairs(found, root) == [("guided", "imagenet/0_real", "guided/1_fake"),
                                   ("ldm_200", "laion/0_real", "ldm_200/1_fake"),
                                   ("dalle", "laion/0_real", "dalle/1_fake")]
    assert {f.layout for f in found} == {"UnivFD's zip (reals in imagenet/ and laion/)"}
    assert [m.split()[0] for m in missing] == ["ldm_200_cfg", "ldm_100", "glide_100_27", "glide_50_27",
                                               "glide_100_10"]
    assert missing[0] == ("ldm_200_cfg (ldm_200_cfg/1_fake and laion/0_real or ldm_200_cfg/1_fake and "
                          "ldm_200_cfg/0_real)")


def test_univfd_reads_npr_copy_with_each_set_against_its_own_reals(tmp_path: Path, capsys):
    root = _layout(tmp_path / "UniversalFakeDetect", {"guided/0_real": 2, "guided/1_fake": 3, "dalle/0_real": 1,
                                                      "dalle/1_fake": 2})
    suite = SUITES["univfd"]
    found, _ = suite.locate(root)
    assert _pairs(found, root) == [("guided", "guided/0_real", "guided/1_fake"),
                                   ("dalle", "dalle/0_real", "dalle/1_fake")]
    loaded = suite.load(root)
    assert "univfd, read as NPR's copy (<set>/{0_real,1_fake}): guided, dalle" in capsys.readouterr().out
    assert [(s.name, sum(x.label == 0 for x in s.samples), sum(x.label == 1 for x in s.samples)) for s in loaded] == [
        ("guided", 2, 3), ("dalle", 1, 2)]
    # UnivFD's reals beside NPR's copy: which reals guided is scored against is no longer clear.
    _images(root / "imagenet" / "0_real", 1, 5)
    with pytest.raises(SuiteError, match=r"guided is there both as UnivFD's zip .* and as NPR's copy .* "
                                         r"\(guided/1_fake with imagenet/0_real, guided/1_fake with guided/0_real\); "
                                         r"keep one"):
        suite.locate(root)


def test_a_suite_whose_layouts_hold_other_sets_is_refused():
    with pytest.raises(SuiteError, match="every layout must hold the sets a, b in this order, .*differ: second"):
        FolderSuite(name="x", title="X", source="-", mean_sets=("a",), mean_what="-",
                    layouts=(Layout("first", (SuiteSet("a", "a", "r"), SuiteSet("b", "b", "r"))),
                             Layout("second", (SuiteSet("a", "a", "r"),))))
    with pytest.raises(SuiteError, match="the mean must be over some of them"):
        FolderSuite(name="x", title="X", source="-", mean_sets=("c",), mean_what="-",
                    layouts=(Layout("first", (SuiteSet("a", "a", "r"),)),))


def test_synthbuster_scores_each_generator_against_raise(tmp_path: Path):
    root = _layout(tmp_path / "synthbuster", {"raise1k": 3, "dalle2": 2, "stable-diffusion-xl": 1})
    found, missing = SUITES["synthbuster"].locate(root)
    assert [(f.name, f.reals.name, f.fakes.name) for f in found] == [("dalle2", "raise1k", "dalle2"),
                                                          ("stable-diffusion-xl", "raise1k", "stable-diffusion-xl")]
    assert len(missing) == 7


def test_genimage_finds_the_subfolder_of_each_generator(tmp_path: Path):
    root = _layout(tmp_path / "GenImage", {"ADM/imagenet_ai_0508_adm/val/ai": 2,
                                           "ADM/imagenet_ai_0508_adm/val/nature": 3,
                                           "BigGAN/imagenet_ai_0419_biggan/val/ai": 1,
                                           "BigGAN/imagenet_ai_0419_biggan/val/nature": 1,
                                           "wukong/imagenet_ai_0424_wukong/train/ai": 1})  # train only: missing
    found, missing = SUITES["genimage"].locate(root, ["BigGAN", "ADM", "wukong"])
    assert [(f.name, f.reals.parent.parent.name) for f in found] == [("BigGAN", "imagenet_ai_0419_biggan"),
                                                                     ("ADM", "imagenet_ai_0508_adm")]
    assert missing == ["wukong (wukong/*/val/ai and wukong/*/val/nature or wukong/val/ai and wukong/val/nature)"]
    _images(root / "ADM" / "second" / "val" / "ai", 1, 9)
    with pytest.raises(SuiteError, match="ADM/\\*/val/ai matches 2 folders"):
        SUITES["genimage"].locate(root)


def test_genimage_also_reads_its_readme_tree_generator_by_generator(tmp_path: Path):
    root = _layout(tmp_path / "GenImage", {"VQDM/val/ai": 2, "VQDM/val/nature": 2, "VQDM/train/ai": 1,
                                           "glide/imagenet_glide/val/ai": 1, "glide/imagenet_glide/val/nature": 1})
    found, _ = SUITES["genimage"].locate(root)
    assert [(f.name, f.fakes.relative_to(root).as_posix(), f.layout) for f in found] == [
        ("glide", "glide/imagenet_glide/val/ai", "the archives' layout (<generator>/<subfolder>/val)"),
        ("VQDM", "VQDM/val/ai", "GenImage's README tree (<generator>/val)")]


def test_wildrf_reads_its_test_split(tmp_path: Path):
    root = _layout(tmp_path / "WildRF", {f"test/{p}/{label}": 1 for p in ("reddit", "twitter", "facebook")
                                         for label in ("0_real", "1_fake")})
    found, missing = SUITES["wildrf"].locate(root)
    assert [f.name for f in found] == ["reddit", "twitter", "facebook"] and not missing
    assert found[1].reals == root / "test" / "twitter" / "0_real"


def test_an_empty_folder_and_unknown_sets_are_clear_errors(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SuiteError, match="none of the univfd sets is there .*drive.google.com"):
        SUITES["univfd"].locate(tmp_path / "empty")
    with pytest.raises(SuiteError, match="--sets foo: not in --suite wildrf"):
        SUITES["wildrf"].locate(tmp_path / "empty", ["foo"])


def test_every_suite_defines_its_headline_sets():
    for name, suite in SUITES.items():
        assert suite.name == name
        if isinstance(suite, FolderSuite) and name != "genimage":
            assert suite.mean_sets == suite.set_names, name
    forensynths = SUITES["forensynths"]
    assert forensynths.headline() == Headline(PAPER_MEAN_SETS, "the 11 sets of the wang2020 protocol")
    assert forensynths.headline("4class") == Headline(PROTOCOLS["4class"].mean_sets,
                                                      "the 8 sets of the 4class protocol")
    assert len(SUITES["univfd"].mean_sets) == 8 and len(SUITES["synthbuster"].mean_sets) == 9
    assert len(SUITES["wildrf"].mean_sets) == 3
    # NPR's GenImage mean leaves out its training set, sdv4.
    genimage = SUITES["genimage"]
    assert genimage.mean_sets == tuple(n for n in genimage.set_names if n != "stable_diffusion_v_1_4")
    assert GENIMAGE_TRAINING == "stable_diffusion_v_1_4" and len(genimage.mean_sets) == 7
    assert "the 7 sets of GenImage (Zhu et al., NeurIPS 2023) (NPR's mean" in genimage.headline().what


def _eval_suite(suite: str, root: Path, tmp_path: Path, capsys, *flags: str) -> tuple[int, str]:
    """eval.py --suite with a random tiny ResNet-18 on whole images: (exit status, stdout); results in
    <tmp_path>/results/tiny/."""
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "tiny.pth", {"model": build_model("resnet18", pretrained=False).state_dict(),
                                            "options": {"arch": "resnet18"}})
    code, out, _ = run_main(eval_main, ["--suite", suite, "--dataroot", str(root), "-m", str(tmp_path / "tiny.pth"),
                                        "--no_crop", "--results_dir", str(tmp_path / "results"), "--num_workers", "0",
                                        *flags], capsys)
    return code, out


def test_eval_on_a_suite_scores_each_fake_set_with_its_reals(tmp_path: Path, capsys):
    root = _layout(tmp_path / "diffusion_datasets", UNIVFD)
    (root / "guided" / "1_fake" / "prompts.txt").write_text("not an image\n")
    code, out = _eval_suite("univfd", root, tmp_path, capsys)
    assert code == 0
    assert "guided (" in out and "1 file left out (not images): .txt" in out
    assert "univfd: 5 sets not under" in out and "ldm_100 (ldm_100/1_fake and laion/0_real or " in out
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


def test_at_most_keeps_a_seeded_draw_of_each_label_in_listed_order():
    samples = [Sample(f"r{i}.png", 0, "") for i in range(5)] + [Sample(f"f{i}.png", 1, "") for i in range(3)]
    loaded = LoadedSet("set", Path("set"), samples)
    kept = at_most(loaded, 2).samples
    reals = [f"r{i}.png" for i in sorted(np.random.default_rng(0).permutation(5)[:2])]
    permutation = np.random.default_rng(0)
    permutation.permutation(5)  # the reals' draw comes first
    fakes = [f"f{i}.png" for i in sorted(permutation.permutation(3)[:2])]
    assert [s.path for s in kept] == reals + fakes
    assert at_most(loaded, 2) == at_most(loaded, 2) and at_most(loaded, 2, seed=1) != at_most(loaded, 2)
    assert at_most(loaded, 5).samples == samples  # no more than there are


def test_max_sample_scores_at_most_that_many_of_each_label(tmp_path: Path, capsys):
    root = _layout(tmp_path / "diffusion_datasets", UNIVFD)
    code, _ = _eval_suite("univfd", root, tmp_path, capsys, "--max_sample", "2")
    assert code == 0
    rows = {r["set"]: r for r in _read(tmp_path / "results" / "tiny" / "summary.csv")}
    assert [(rows[s]["n_real"], rows[s]["n_fake"]) for s in ("guided", "ldm_200", "dalle")] == [
        ("2", "2"), ("2", "2"), ("2", "1")]
    assert "At most 2 reals and 2 fakes of each set (--max_sample, a shuffle seeded with 0)." in (
        tmp_path / "results" / "tiny" / "summary.md").read_text()


def test_genimage_is_scored_tiled_and_center_cropped_unless_the_flags_say_otherwise(tmp_path: Path, capsys):
    """32 px uniform images: tiled up to the 224 crop they stay uniform, and the brightness detector calls the
    bright fakes fake and the dark reals real; zero-padded, every crop is mostly black and looks real."""
    root = tmp_path / "GenImage"
    for i, level in enumerate((20, 60)):
        _gray(root / "ADM" / "val" / "nature" / f"{i}.png", level)
    for i, level in enumerate((230, 240)):
        _gray(root / "ADM" / "val" / "ai" / f"{i}.png", level)
    model = _brightness_detector(tmp_path / "brightness.pth")
    accuracy = {}
    for name, flags in (("suite", []), ("padded", ["--crop_size", "224"])):
        code, out, _ = run_main(eval_main, ["--suite", "genimage", "--dataroot", str(root), "-m", str(model),
                                            "--results_dir", str(tmp_path / "results"), "--name", name,
                                            "--num_workers", "0", *flags], capsys)
        assert code == 0
        accuracy[name] = float(_read(tmp_path / "results" / name / "summary.csv")[0]["acc"])
        if name == "suite":
            assert ("test protocol: no resize, a side under 224 tiled up to it, center crop 224 (NPR's GenImage "
                    "protocol, the suite's own; --preprocess or the crop flags choose another)") in out
            assert "zero-padded" not in out
    assert accuracy == {"suite": 1.0, "padded": 0.5}


def test_the_headline_mean_is_written_when_every_set_is_there(tmp_path: Path, capsys):
    root = _layout(tmp_path / "WildRF", {f"test/{p}/{label}": 2 for p in ("reddit", "twitter", "facebook")
                                         for label in ("0_real", "1_fake")})
    code, _ = _eval_suite("wildrf", root, tmp_path, capsys)
    assert code == 0
    with open(tmp_path / "results" / "tiny" / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    mean_acc = np.mean([float(r["acc"]) for r in rows if r["set"] != "mean"])
    summary = (tmp_path / "results" / "tiny" / "summary.md").read_text()
    assert "Mean over the 3 sets of WildRF (Cavia et al., 2024) (the mean AP is the mAP of the WildRF README's " \
           "headline" in summary
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
                        layouts=(Layout("the test's", (SuiteSet("gan", "generated/gan", "photos"),
                                                       SuiteSet("diffusion", "generated/diffusion", "photos"),
                                                       SuiteSet("vae", "generated/vae", "photos"))),),
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
