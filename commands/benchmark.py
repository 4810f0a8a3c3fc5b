"""benchmark.py: throughput of the model alone (the bound) and of eval.py's and train.py's data paths, on each
device, with peak memory.

Measurements (images/s), each on freshly generated PNGs of ``image_size`` px (smooth colour fields with heavy
noise, which decode more slowly than photographs: a conservative case for the data path):

- ``forward``: the model alone on ready tensors already on the device (the bound for evaluation);
- ``eval``: eval.py's scoring path end to end (decode, center crop, normalize, copy, forward), on ``images`` and
  on twice as many images, whose peak memory shows that evaluation does not grow with the dataset;
- ``train_step``: one optimization step on ready tensors (the bound for training);
- ``train``: train.py end to end for one epoch with the paper's Blur+JPEG (0.5) augmentation, as train.py logs it;
- ``no_crop_batched`` / ``no_crop_b1``: whole images of four sizes, batched by size vs one at a time.

Peak memory is the device's: CUDA's peak allocation, or on CPU the process's peak resident set (reset before each
measurement; DataLoader workers are separate processes and not included).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from data import EvalTransform, scan_folder
from data.synthetic import make_upsampling_set, smooth_image
from engine.inference import autocast, check_runtime, input_memory_format, memory_format, resolve_workers, score_samples
from engine.training import TrainConfig, train, train_step
from networks import ARCHS, build_model
from util.distributed import resolve_device
from util.errors import ConfigError
from util.records import config_dict
from util.report import claim_folder, markdown_table

DEVICES = ("cpu", "cuda")
CHANNELS_LAST = ("auto", "on", "off")


@dataclass(frozen=True, kw_only=True)
class BenchmarkConfig:
    """One benchmark.py run. Field names are its flags."""

    devices: tuple[str, ...] | None = None
    """cpu and/or cuda (None: cpu, and cuda when available)."""
    amp: str = "off"
    num_workers: int | str = "auto"
    debug: bool = False
    arch: str = "resnet50"
    batch_size: int = 32
    channels_last: str = "auto"
    """Model and batch layout; auto = what eval.py/train.py use (channels_last on CUDA)."""
    images: int = 128
    """Images per measurement (the memory check also evaluates twice as many)."""
    image_size: int = 256
    crop_size: int = 224
    out: Path = Path("results/benchmark")
    overwrite: bool = False

    def __post_init__(self) -> None:
        check_runtime(self.amp, self.num_workers)
        if any(d not in DEVICES for d in self.devices or ()):
            raise ConfigError(f"--devices {','.join(self.devices or ())}: choose from {', '.join(DEVICES)}")
        if self.arch not in ARCHS:
            raise ConfigError(f"--arch {self.arch}: choose one of {', '.join(ARCHS)}")
        if self.channels_last not in CHANNELS_LAST:
            raise ConfigError(f"--channels_last {self.channels_last}: choose one of {', '.join(CHANNELS_LAST)}")
        if self.crop_size > self.image_size:
            raise ConfigError(f"--crop_size {self.crop_size} exceeds --image_size {self.image_size}")

WARMUP_BATCHES = 2
RATIOS = {"eval / forward": ("eval", "forward"), "train / train_step": ("train", "train_step"),
          "no_crop batched / batch 1": ("no_crop_batched", "no_crop_b1")}


@dataclass(frozen=True)
class Measure:
    images: int
    seconds: float
    peak_mb: float | None

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_peak_mb() -> float | None:
    with contextlib.suppress(OSError):
        match = re.search(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())
        if match:
            return int(match.group(1)) / 1024
    return None


@contextlib.contextmanager
def _peak_memory(device: torch.device) -> Iterator[list[float | None]]:
    """Yields a list that holds the peak memory (MB) of the block once it ends; None where it cannot be read."""
    result: list[float | None] = [None]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        with contextlib.suppress(OSError):  # Linux: "5" resets the peak resident set of this process
            Path("/proc/self/clear_refs").write_text("5")
    yield result
    result[0] = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else _cpu_peak_mb()


def _timed(device: torch.device, images: int, run: Callable[[], None]) -> Measure:
    with _peak_memory(device) as peak:
        _sync(device)
        start = time.perf_counter()
        run()
        _sync(device)
        seconds = time.perf_counter() - start
    return Measure(images, seconds, peak[0])


def _batches(images: int, batch_size: int) -> int:
    return max(1, math.ceil(images / batch_size))


def measure_forward(model: nn.Module, device: torch.device, cfg: BenchmarkConfig) -> Measure:
    batch = torch.randn(cfg.batch_size, 3, cfg.crop_size, cfg.crop_size, device=device).contiguous(
        memory_format=input_memory_format(model))
    model.eval()

    @torch.no_grad()
    def run(batches: int) -> None:
        for _ in range(batches):
            with autocast(device, cfg.amp):
                model(batch)

    run(WARMUP_BATCHES)
    batches = _batches(cfg.images, cfg.batch_size)
    return _timed(device, batches * cfg.batch_size, lambda: run(batches))


def measure_train_step(model: nn.Module, device: torch.device, cfg: BenchmarkConfig) -> Measure:
    images = torch.randn(cfg.batch_size, 3, cfg.crop_size, cfg.crop_size, device=device).contiguous(
        memory_format=input_memory_format(model))
    labels = torch.arange(cfg.batch_size, device=device) % 2
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999))
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    model.train()

    def run(batches: int) -> None:
        for _ in range(batches):
            train_step(model, images=images, labels=labels, optimizer=optimizer, scaler=scaler, device=device,
                       amp=cfg.amp)

    run(WARMUP_BATCHES)
    batches = _batches(cfg.images, cfg.batch_size)
    return _timed(device, batches * cfg.batch_size, lambda: run(batches))


def measure_eval(model: nn.Module, device: torch.device, folder: Path, cfg: BenchmarkConfig,
                 crop_size: int | None, batch_size: int) -> Measure:
    samples = scan_folder(folder)

    def run() -> None:
        score_samples(model, samples, EvalTransform(crop_size=crop_size), batch_size=batch_size,
                      num_workers=resolve_workers(cfg.num_workers, device), device=device, amp=cfg.amp,
                      progress=False)

    return _timed(device, len(samples), run)


def measure_train(device: torch.device, root: Path, cfg: BenchmarkConfig) -> Measure:
    """train.py for one epoch on ``root``; its own log gives the training loop's throughput (validation and
    checkpoint writing excluded)."""
    run_dir = root / "run"
    batches = len(scan_folder(root / "train")) // cfg.batch_size
    train_cfg = TrainConfig(
        dataroot=root, name="run", checkpoints_dir=root, arch=cfg.arch, no_pretrained=True,
        batch_size=cfg.batch_size, crop_size=cfg.crop_size, load_size=cfg.image_size, blur_prob=0.5,
        blur_sig=(0.0, 3.0), jpg_prob=0.5, jpg_method=("cv2", "pil"), jpg_qual=(30, 100), epochs=1,
        loss_freq=batches, save_latest_freq=10 * batches, device=str(device), amp=cfg.amp,
        num_workers=cfg.num_workers)
    with _peak_memory(device) as peak:
        train(train_cfg)
    records = (json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines())
    record = next(r for r in records if r["type"] == "train")
    images = batches * cfg.batch_size
    return Measure(images, images / record["images_per_s"], peak[0])


def write_mixed_sizes(folder: Path, count: int, side: int, seed: int = 0) -> None:
    """``count`` PNGs cycling through four sizes (square, landscape, portrait, smaller), half of them "fake"."""
    sizes = [(side, side), (side * 5 // 4, side), (side, side * 5 // 4), (side * 3 // 4, side * 3 // 4)]
    rng = np.random.default_rng(seed)
    for i in range(count):
        width, height = sizes[i % len(sizes)]
        out = folder / ("0_real" if i % 2 == 0 else "1_fake")
        out.mkdir(parents=True, exist_ok=True)
        Image.fromarray(smooth_image(rng, max(width, height))[:height, :width]).save(out / f"{i:05d}.png")


def _layout(device: torch.device, setting: str) -> bool:
    return memory_format(device) == torch.channels_last if setting == "auto" else setting == "on"


def benchmark_device(device: torch.device, cfg: BenchmarkConfig, work: Path) -> dict[str, Any]:
    channels_last = _layout(device, cfg.channels_last)
    model = build_model(cfg.arch, pretrained=False).to(
        device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    half = cfg.images // 2
    make_upsampling_set(work / "eval", splits={"x": half}, classes=("set",), size=cfg.image_size)
    make_upsampling_set(work / "eval2", splits={"x": cfg.images}, classes=("set",), size=cfg.image_size)
    make_upsampling_set(work / "train", splits={"train": half, "val": 1}, classes=("set",), size=cfg.image_size)
    write_mixed_sizes(work / "mixed", cfg.images, cfg.image_size)

    measures: dict[str, Measure] = {}

    def note(name: str, measure: Measure) -> None:
        measures[name] = measure
        memory = "" if measure.peak_mb is None else f", peak {measure.peak_mb:.0f} MB"
        print(f"{device}: {name:16s} {measure.images_per_s:8.1f} images/s ({measure.images} images in "
              f"{measure.seconds:.1f} s{memory})", flush=True)

    note("forward", measure_forward(model, device, cfg))
    note("eval", measure_eval(model, device, work / "eval" / "x" / "set", cfg, cfg.crop_size, cfg.batch_size))
    note("eval_2x_images", measure_eval(model, device, work / "eval2" / "x" / "set", cfg, cfg.crop_size,
                                        cfg.batch_size))
    note("no_crop_batched", measure_eval(model, device, work / "mixed", cfg, None, cfg.batch_size))
    note("no_crop_b1", measure_eval(model, device, work / "mixed", cfg, None, 1))
    note("train_step", measure_train_step(model, device, cfg))
    if channels_last == (memory_format(device) == torch.channels_last):
        note("train", measure_train(device, work / "train", cfg))
    else:  # train.py lays the model out by device; another layout would measure something else
        print(f"{device}: train skipped: train.py uses {memory_format(device)} on {device.type}")
    ratios = {name: measures[a].images_per_s / measures[b].images_per_s
              for name, (a, b) in RATIOS.items() if a in measures and b in measures}
    return {"device": str(device), "hardware": _hardware(device), "channels_last": channels_last,
            "num_workers": resolve_workers(cfg.num_workers, device),
            "measures": {k: {**asdict(m), "images_per_s": m.images_per_s} for k, m in measures.items()},
            "ratios": ratios}


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{_cpu_name()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads"


def _markdown(results: list[dict[str, Any]], cfg: BenchmarkConfig) -> str:
    rows = [[r["device"], name, f"{m['images_per_s']:.1f}", f"{m['images']}",
             "" if m["peak_mb"] is None else f"{m['peak_mb']:.0f}"]
            for r in results for name, m in r["measures"].items()]
    ratios = [[r["device"], name, f"{value:.2f}"] for r in results for name, value in r["ratios"].items()]
    settings = (f"{cfg.arch}, batch {cfg.batch_size}, workers {cfg.num_workers}, amp {cfg.amp}, "
                f"{cfg.image_size} px PNGs, crop {cfg.crop_size}, torch {torch.__version__}")
    hardware = "; ".join(f"{r['device']}: {r['hardware']}, {r['num_workers']} loader workers" for r in results)
    return "\n".join([f"Settings: {settings}. Hardware: {hardware}.", "",
                      markdown_table(["device", "measurement", "images/s", "images", "peak memory MB"], rows), "",
                      markdown_table(["device", "ratio", "value"], ratios), ""])


def run_benchmark(cfg: BenchmarkConfig) -> list[dict[str, Any]]:
    devices = cfg.devices or (("cpu", "cuda") if torch.cuda.is_available() else ("cpu",))
    claim_folder(cfg.out, ("benchmark.json", "benchmark.md"), cfg.overwrite, elsewhere="--out")
    results = []
    for name in devices:
        device = resolve_device(name)
        with tempfile.TemporaryDirectory(prefix="benchmark_") as work:
            results.append(benchmark_device(device, cfg, Path(work)))
    settings = config_dict(cfg)
    (cfg.out / "benchmark.json").write_text(json.dumps({"settings": settings, "torch": torch.__version__,
                                                        "results": results}, indent=2) + "\n")
    text = _markdown(results, cfg)
    (cfg.out / "benchmark.md").write_text("# benchmark.py\n\n" + text)
    print("\n" + text)
    return results
