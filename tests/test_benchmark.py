"""benchmark.py in a tiny configuration, and the speed settings that must not change any score."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from data import EvalTransform, scan_folder
from networks import build_model
from options.options import parse_benchmark_options
from util.benchmark import RATIOS, run_benchmark, write_mixed_sizes
from util.engine import input_memory_format
from util.evaluation import score_samples

MEASURES = {"forward", "eval", "eval_2x_images", "no_crop_batched", "no_crop_b1", "train_step", "train"}


@pytest.mark.slow
def test_benchmark_produces_every_number(tmp_path: Path):
    opt = parse_benchmark_options(["--arch", "resnet18", "--images", "8", "--batch_size", "4", "--image_size", "40",
                                   "--crop_size", "32", "--num_workers", "0", "--devices", "cpu",
                                   "--out", str(tmp_path)])
    (result,) = run_benchmark(opt)
    assert set(result["measures"]) == MEASURES
    for name, measure in result["measures"].items():
        assert measure["images_per_s"] > 0 and measure["seconds"] > 0, name
        assert measure["images"] == (16 if name == "eval_2x_images" else 8), name
    assert set(result["ratios"]) == set(RATIOS)
    saved = json.loads((tmp_path / "benchmark.json").read_text())
    assert saved["results"][0]["ratios"] == pytest.approx(result["ratios"])
    assert "| cpu | eval / forward |" in (tmp_path / "benchmark.md").read_text()


def test_benchmark_options_are_checked():
    with pytest.raises(SystemExit):
        parse_benchmark_options(["--crop_size", "300"])
    with pytest.raises(SystemExit):
        parse_benchmark_options(["--devices", "tpu"])
    assert parse_benchmark_options(["--devices", "cpu,cuda"]).devices == ("cpu", "cuda")


def test_input_layout_follows_the_model():
    model = build_model("resnet18", pretrained=False)
    assert input_memory_format(model) == torch.contiguous_format
    assert input_memory_format(model.to(memory_format=torch.channels_last)) == torch.channels_last


def _scores(model, samples, **kwargs) -> np.ndarray:
    defaults = {"batch_size": 4, "num_workers": 0, "device": torch.device("cpu"), "amp": "off", "progress": False}
    scored, skipped = score_samples(model, samples, EvalTransform(crop_size=None), **{**defaults, **kwargs})
    assert skipped == [] and [s.path for s in scored.samples] == [s.path for s in samples]
    return scored.logits


def test_speed_settings_leave_the_scores_unchanged(tmp_path: Path):
    """Workers, batch size and layout change how fast scores come, not what they are."""
    write_mixed_sizes(tmp_path / "mixed", 12, side=32)
    samples = scan_folder(tmp_path / "mixed")
    torch.manual_seed(0)
    model = build_model("resnet18", pretrained=False).eval()
    reference = _scores(model, samples, batch_size=1)
    assert np.array_equal(_scores(model, samples, num_workers=2), _scores(model, samples))
    np.testing.assert_allclose(_scores(model, samples), reference, atol=1e-5)
    np.testing.assert_allclose(_scores(model.to(memory_format=torch.channels_last), samples), reference, atol=1e-5)
