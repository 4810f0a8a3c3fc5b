"""benchmark.py in a tiny configuration, and the speed settings that must not change any score."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from commands.benchmark import DEVICE_DEFAULTS, RATIOS, _Handover, run_benchmark, write_mixed_sizes
from data import EvalTransform, scan_folder
from engine.inference import input_memory_format, score_samples
from networks import build_model
from options import parse_benchmark_options

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
        # Loader paths count the images after the first window (start-up); the bounds count every image.
        total = 16 if name == "eval_2x_images" else 8
        assert (0 < measure["images"] < total) if name.startswith(("eval", "no_crop", "train")) and \
            name != "train_step" else measure["images"] == total, name
    assert set(result["loader_ms_per_image"]) == {"train", "eval", "decode"}
    assert all(0 < ms < 1000 for ms in result["loader_ms_per_image"].values())
    assert (result["batch_size"], result["images"]) == (4, 8)
    assert set(result["ratios"]) == set(RATIOS)
    saved = json.loads((tmp_path / "benchmark.json").read_text())
    assert saved["results"][0]["ratios"] == pytest.approx(result["ratios"])
    assert "| cpu | eval / forward |" in (tmp_path / "benchmark.md").read_text()


def test_benchmark_options_are_checked(capsys):
    for argv, message in ((["--crop_size", "300"], "--crop_size 300 exceeds --image_size 256"),
                          (["--devices", "tpu"], "'tpu': choose one or more of cpu,cuda")):
        with pytest.raises(SystemExit) as exc:
            parse_benchmark_options(argv)
        assert exc.value.code == 2 and message in capsys.readouterr().err
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


def test_steady_state_drops_the_first_window():
    handover = _Handover.__new__(_Handover)
    handover.times, handover.sizes = [0.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0], [4] * 10
    # 10 batches in 5 windows: the first two batches are start-up; 8 batches of 4 from t=11 to the end at 19.
    assert _Handover.steady(handover, 19.0) == (32, 8.0)


def test_per_device_defaults():
    assert DEVICE_DEFAULTS["cpu"] == {"batch_size": 32, "images": 128}
    assert DEVICE_DEFAULTS["cuda"]["images"] >= 4096
    assert parse_benchmark_options([]).batch_size is None  # resolved per device
