"""Detector families: the built-in specs, and a toy family defined and registered here, in the test, that goes
through train.py, eval.py, demo.py and the page's /score with no library file knowing of it."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import eval as eval_script
from commands.configs import DemoConfig
from commands.demo import run_demo
from data import Normalization, load_rgb
from data.synthetic import make_upsampling_set
from engine.configs import TrainConfig
from engine.inference import load_detector
from networks import Family, Preprocessing, build_model, family, names, recognize, register, registry
from options import parse_train_options, train_parser
from tests.helpers import ROOT, score_on_page
from train import main as train_main
from util.checkpoint import load_checkpoint
from util.errors import ConfigError

TOY_MEAN = (0.25, 0.5, 0.75)
TOY_STD = (0.5, 0.25, 0.125)


class Toy(nn.Module):
    """A stem (its "pretrained" tower, frozen) and a linear head (the only part that trains)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, stride=2)
        self.head = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.stem(x)).mean(dim=(2, 3)))


def pretrained_stem() -> dict[str, torch.Tensor]:
    """The test's stand-in for downloaded weights: fixed, whatever the global seed."""
    generator = torch.Generator().manual_seed(7)
    return {"weight": torch.randn(4, 3, 3, 3, generator=generator), "bias": torch.randn(4, generator=generator)}


def build_toy(*, pretrained: bool, pretrained_path: Path | None, init_gain: float) -> nn.Module:
    model = Toy()
    if pretrained:
        model.stem.load_state_dict(pretrained_stem())
    nn.init.normal_(model.head.weight, 0.0, init_gain)
    return model


TOY = Family(name="toy", build=build_toy, mean=TOY_MEAN, std=TOY_STD, pretrained="a fixed seed",
             recognizes=lambda keys: set(keys) == {"stem.weight", "stem.bias", "head.weight", "head.bias"},
             test_protocol=Preprocessing(crop_size=24, source="the toy's"),
             demo_protocol=Preprocessing(crop_size=None, source="the toy demo's"), recipe="wang2020",
             trained=("head.",), note="a test's")


@pytest.fixture
def toy(monkeypatch) -> Family:
    """TOY registered for one test (the registry is restored after it)."""
    monkeypatch.setattr(registry, "FAMILIES", dict(registry.FAMILIES))
    return register(TOY)


def test_names_come_without_torch():
    code = "import sys, networks; print(networks.names(), 'torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ("('resnet50', 'resnet18', 'resnet34', 'resnet101', 'efficientnet_b0', 'npr', "
                                   "'univfd') False")


@pytest.mark.slow
def test_each_built_in_family_recognizes_its_own_state_dict_and_no_other():
    for name in names():
        with torch.device("meta"):  # keys without UnivFD's 1.2 GB of random tower
            state = build_model(name, pretrained=False).state_dict()
        keys = set(family(name).stored(state))  # what its checkpoints hold
        assert [f.name for f in map(family, names()) if f.recognizes(keys)] == [name]
    assert recognize({"conv.weight"}) is None


def test_a_spec_is_checked_and_a_name_is_registered_once(toy):
    with pytest.raises(ConfigError, match="already registered"):
        register(TOY)
    with pytest.raises(ConfigError, match="three values"):
        Family(name="x", build=build_toy, mean=(0.5,), std=TOY_STD, pretrained=None, recognizes=bool,
               test_protocol=TOY.test_protocol, recipe="wang2020")


def test_what_trains_follows_the_spec(toy):
    model = build_model("toy", pretrained=True)
    assert {name for name, p in model.named_parameters() if p.requires_grad} == {"head.weight", "head.bias"}
    assert all(p.requires_grad for p in build_model("resnet18", pretrained=False).parameters())


def test_options_see_a_family_registered_at_run_time(toy):
    assert "toy (a test's)" in train_parser().format_help()
    assert parse_train_options(["--arch", "toy"]).arch == "toy"
    assert TrainConfig(arch="toy").arch == "toy"


def _expected_prob(model: nn.Module, image: np.ndarray, normalization: Normalization) -> float:
    with torch.no_grad():
        return float(torch.sigmoid(model(normalization(torch.from_numpy(image[None].copy())))).item())


@pytest.mark.slow
def test_a_toy_family_trains_evaluates_demos_and_serves(toy, tmp_path: Path, capsys, monkeypatch):
    root = make_upsampling_set(tmp_path / "data", splits={"train": 8, "val": 4}, classes=("a",), size=32)
    train_main(["--arch", "toy", "--dataroot", str(root), "--checkpoints_dir", str(tmp_path / "ck"), "--name",
                "toy", "--load_size", "32", "--crop_size", "32", "--niter", "2", "--batch_size", "4",
                "--num_workers", "0", "--lr", "1e-2"])
    run = tmp_path / "ck" / "toy"
    assert json.loads((run / "opt.json").read_text())["arch"] == "toy"
    trained = load_checkpoint(run / "latest.pth")["model"]
    torch.manual_seed(0)  # train.py's seed: the weights it started from
    start = build_model("toy", pretrained=True).state_dict()
    # Only the head trained: the "pretrained" stem is as the builder loaded it.
    assert torch.equal(trained["stem.weight"], pretrained_stem()["weight"])
    assert torch.equal(trained["stem.weight"], start["stem.weight"])
    assert not torch.equal(trained["head.weight"], start["head.weight"])

    bare = tmp_path / "bare.pth"
    torch.save(trained, bare)  # a state dict without any arch record: the spec recognizes it
    detector = load_detector(bare, None, torch.device("cpu"))
    assert (detector.arch, detector.recorded, detector.normalization) == ("toy", None, Normalization(TOY_MEAN,
                                                                                                      TOY_STD))
    capsys.readouterr()

    eval_script.main(["--dataroot", str(root / "val"), "--model_path", str(bare), "--results_dir",
                      str(tmp_path / "results"), "--num_workers", "0", "--batch_size", "4"])
    assert "test protocol: no resize, center crop 24 (the toy's; the checkpoint records none)" in \
        capsys.readouterr().out
    with open(tmp_path / "results" / "bare" / "scores.csv", newline="") as f:
        row = next(csv.DictReader(f))
    cropped = np.asarray(load_rgb(row["path"]))[4:28, 4:28]  # the center 24 of 32
    assert float(row["prob"]) == pytest.approx(_expected_prob(detector.model, cropped, detector.normalization),
                                               abs=1e-6)

    image = row["path"]
    prob = float(run_demo(DemoConfig(file=image, model_path=bare, num_workers=0)).probs[0])
    assert "test protocol: no resize, whole image (the toy demo's; the checkpoint records none)" in \
        capsys.readouterr().out
    whole = np.asarray(load_rgb(image))
    assert prob == pytest.approx(_expected_prob(detector.model, whole, detector.normalization), abs=1e-6)
    imagenet = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert abs(prob - _expected_prob(detector.model, whole, imagenet)) > 1e-3  # the spec's normalization counts

    served, verdict = score_on_page(bare, image, monkeypatch)
    assert served == pytest.approx(prob, abs=1e-6) and verdict.endswith("at threshold 50%")
