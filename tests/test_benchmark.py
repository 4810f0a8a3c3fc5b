"""benchmark.py in a tiny configuration, and the speed settings that must not change any score."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from commands.benchmark import (
    DEVICE_DEFAULTS,
    RATIOS,
    Measure,
    _Handover,
    checked,
    planned_images,
    queued_images,
    run_benchmark,
    steady_problems,
    write_mixed_sizes,
)
from data import EvalTransform, Normalization, scan_folder
from engine.inference import input_memory_format, score_samples
from networks import build_model
from networks.registry import IMAGENET_MEAN, IMAGENET_STD
from options import parse_benchmark_options
from util.errors import UserError

MEASURES = {"forward", "eval", "eval_2x_images", "no_crop_batched", "no_crop_b1", "train_step", "train"}


@pytest.mark.slow
def test_benchmark_produces_every_number(tmp_path: Path):
    # One thread: on a 2-core machine, two threads share the cores with everything else that runs, and a bound
    # measured in a busy moment made a sound path look faster than it (13% beside another job, once in a full run).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _benchmark_produces_every_number(tmp_path)
    finally:
        torch.set_num_threads(threads)


def _benchmark_produces_every_number(tmp_path: Path) -> None:
    opt = parse_benchmark_options(["--arch", "resnet18", "--images", "8", "--batch_size", "4", "--image_size", "40",
                                   "--crop_size", "32", "--num_workers", "0", "--devices", "cpu", "--min_seconds",
                                   "2", "--e2e_images", "8", "--out", str(tmp_path)])
    try:
        (result,) = run_benchmark(opt)
    except UserError:  # refused: the numbers are written all the same
        (result,) = json.loads((tmp_path / "benchmark.json").read_text())["results"]
    # An open measuring problem: in some runs on this 2-core VM train.py's steps on real images ran 15-20% faster
    # than its bound's on a synthetic batch (51.0-54.4 against 43.5-46.5 images/s, one thread, 2026-12-04; the
    # bound's best of four). The benchmark then refuses train, and must say why; every other path must pass.
    refused = {name for name, measure in result["measures"].items() if not measure["valid"]}
    assert refused <= {"train"}
    if refused:
        assert all(problem.startswith("faster than its bound train_step (")
                   for problem in result["measures"]["train"]["problems"])
    assert set(result["measures"]) == MEASURES
    for name, measure in result["measures"].items():
        # Every span is a steady state of at least --min_seconds (no loader queue with 0 workers), and possible
        # (0.5 s spans were too noisy for the 3% a path may beat its bound by).
        assert measure["valid"] or name in refused, name
        assert measure["seconds"] >= 2 and measure["images"] >= 4, name
        assert measure["images_per_s"] == pytest.approx(measure["images"] / measure["seconds"])
    measures = result["measures"]
    assert measures["eval"]["images_per_s"] <= 1.03 * measures["forward"]["images_per_s"]
    assert (measures["train"]["images_per_s"] <= 1.03 * measures["train_step"]["images_per_s"]) == (not refused)
    assert set(result["loader_ms_per_image"]) == {"train", "eval", "decode"}
    assert all(0 < ms < 1000 for ms in result["loader_ms_per_image"].values())
    assert result["loader_ceiling"]["eval"] == pytest.approx(1000 / result["loader_ms_per_image"]["eval"])
    assert (result["batch_size"], result["images"]) == (4, 8)
    assert set(result["ratios"]) == set(RATIOS)
    e2e = result["end_to_end"]
    assert e2e["images"] == 8 and all(e2e[run][f"{script}_s"] > 1 for run in ("one_batch", "all")
                                      for script in ("train_py", "eval_py"))
    saved = json.loads((tmp_path / "benchmark.json").read_text())
    assert saved["results"][0]["ratios"] == pytest.approx(result["ratios"])
    table = (tmp_path / "benchmark.md").read_text()
    assert "| cpu | eval / forward |" in table and "| cpu | eval_py | 8 |" in table


def test_a_path_faster_than_its_bound_or_its_loader_is_refused():
    measures = {"forward": Measure(100, 1.0, None), "eval": Measure(104, 1.0, None),
                "train_step": Measure(50, 1.0, None), "train": Measure(51, 1.0, None)}
    result = checked(measures, {"eval": 1000.0, "train": 40.0})
    assert result["eval"].problems == ("faster than its bound forward (104.0 > 100.0 images/s)",)
    assert result["train"].problems == ("faster than its loader can feed it (51.0 > 40.0 images/s)",)
    assert result["forward"].valid and not result["eval"].valid
    assert checked({**measures, "eval": Measure(103, 1.0, None)}, {"eval": 1000.0, "train": 60.0})["eval"].valid


def test_a_span_must_be_long_or_cover_many_loader_queues():
    assert steady_problems(images=50, seconds=20.0, queued=512, min_seconds=20) == ()
    assert steady_problems(images=5120, seconds=2.0, queued=512, min_seconds=20) == ()
    assert steady_problems(images=5000, seconds=2.0, queued=512, min_seconds=20) == (
        "not a steady state: 5000 images in 2.0 s, under 20 s or 5120 images",)
    assert steady_problems(images=5000, seconds=2.0, queued=0, min_seconds=20) == (
        "not a steady state: 5000 images in 2.0 s, under 20 s",)
    # With 16 workers the loader holds 16 x 4 batches before the model asks: data sized past that and 20 s.
    assert queued_images(16, 64) == 4096
    assert planned_images(rate=1000.0, queued=4096, batch_size=64, min_seconds=20) == 2 * 64 + 4096 + 24000


def test_an_invalid_measurement_is_written_and_fails_the_run(tmp_path, monkeypatch):
    import commands.benchmark

    def fake_device(device, cfg, work):
        measures = checked({"forward": Measure(100, 1.0, None), "eval": Measure(110, 1.0, None)},
                           {"eval": 1000.0, "train": 1000.0})
        return {"device": "cpu", "hardware": "test", "batch_size": 4, "num_workers": 0,
                "loader_ms_per_image": {"train": 1.0, "eval": 1.0},
                "measures": {k: m.record() for k, m in measures.items()}, "ratios": {},
                "end_to_end": {"images": 8, "all": {"train_py_s": 2.0, "eval_py_s": 2.0},
                               "one_batch": {"train_py_s": 1.0, "eval_py_s": 1.0}}}

    monkeypatch.setattr(commands.benchmark, "benchmark_device", fake_device)
    with pytest.raises(UserError, match="cpu eval not valid"):
        run_benchmark(parse_benchmark_options(["--devices", "cpu", "--out", str(tmp_path)]))
    saved = json.loads((tmp_path / "benchmark.json").read_text())["results"][0]["measures"]
    assert saved["eval"]["valid"] is False and saved["forward"]["valid"] is True
    assert saved["eval"]["problems"] == ["faster than its bound forward (110.0 > 100.0 images/s)"]


def test_benchmark_options_are_checked(capsys):
    for argv, message in ((["--crop_size", "300"], "--crop_size 300 exceeds --image_size 256"),
                          (["--devices", "tpu"], "--devices tpu: choose one or more of cpu, cuda")):
        with pytest.raises(SystemExit) as exc:
            parse_benchmark_options(argv)
        assert exc.value.code == 2 and message in capsys.readouterr().err
    assert parse_benchmark_options(["--devices", "cpu,cuda"]).devices == ("cpu", "cuda")


def test_input_layout_follows_the_model():
    model = build_model("resnet18", pretrained=False)
    assert input_memory_format(model) == torch.contiguous_format
    assert input_memory_format(model.to(memory_format=torch.channels_last)) == torch.channels_last


def _scores(model, samples, **kwargs) -> np.ndarray:
    defaults = {"batch_size": 4, "num_workers": 0, "device": torch.device("cpu"), "amp": "off", "progress": False,
                "normalization": Normalization(IMAGENET_MEAN, IMAGENET_STD)}
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


def test_steady_state_starts_after_warm_up_and_the_queue():
    handover = _Handover.__new__(_Handover)
    handover.times, handover.sizes = [0.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0], [4] * 10
    # Skipping 3 batches (warm-up and what was queued): 7 batches of 4 from t=12 to the end at 19.
    assert _Handover.steady(handover, 19.0, 3) == (28, 7.0)


def test_per_device_defaults():
    assert DEVICE_DEFAULTS["cpu"] == {"batch_size": 32, "images": 128, "e2e_images": 128}
    assert DEVICE_DEFAULTS["cuda"]["images"] >= 4096 and DEVICE_DEFAULTS["cuda"]["e2e_images"] == 65536
    assert parse_benchmark_options([]).batch_size is None  # resolved per device
