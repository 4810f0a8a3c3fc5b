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
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from commands.configs import BenchmarkConfig
from data import Batch, EvalTransform, ImageDataset, TrainTransform, collate, load_rgb, scan_folder
from data.synthetic import make_upsampling_set, smooth_image
from engine.configs import TrainConfig, available_cpus, resolve_workers
from engine.inference import autocast, eval_loader, input_memory_format, memory_format, predict
from engine.training import train, train_step
from networks import build_model
from util.distributed import resolve_device
from util.records import config_dict
from util.report import claim_folder, markdown_table

WARMUP_BATCHES = 2
# Per-device defaults: a CPU measures in minutes at 128 images; a GPU needs thousands to reach its steady state.
DEVICE_DEFAULTS = {"cpu": {"batch_size": 32, "images": 128}, "cuda": {"batch_size": 128, "images": 4096}}
WINDOWS = 5  # throughput is measured over the windows after the first (start-up, warm-up)
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


def measure_forward(model: nn.Module, device: torch.device, cfg: BenchmarkConfig, batch_size: int,
                    count: int) -> Measure:
    batch = torch.randn(batch_size, 3, cfg.crop_size, cfg.crop_size, device=device).contiguous(
        memory_format=input_memory_format(model))
    model.eval()

    @torch.no_grad()
    def run(batches: int) -> None:
        for _ in range(batches):
            with autocast(device, cfg.amp):
                model(batch)

    run(WARMUP_BATCHES)
    batches = _batches(count, batch_size)
    return _timed(device, batches * batch_size, lambda: run(batches))


def measure_train_step(model: nn.Module, device: torch.device, cfg: BenchmarkConfig, batch_size: int,
                       count: int) -> Measure:
    images = torch.randn(batch_size, 3, cfg.crop_size, cfg.crop_size, device=device).contiguous(
        memory_format=input_memory_format(model))
    labels = torch.arange(batch_size, device=device) % 2
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999))
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    model.train()

    def run(batches: int) -> None:
        for _ in range(batches):
            train_step(model, images=images, labels=labels, optimizer=optimizer, scaler=scaler, device=device,
                       amp=cfg.amp)

    run(WARMUP_BATCHES)
    batches = _batches(count, batch_size)
    return _timed(device, batches * batch_size, lambda: run(batches))


class _Handover:
    """Iterates a DataLoader and notes when each batch is handed to the model, so throughput can be measured
    after the first window (worker start-up, cuDNN autotuning)."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader, self.dataset = loader, loader.dataset
        self.times: list[float] = []
        self.sizes: list[int] = []

    def __iter__(self) -> Iterator[Batch]:
        for batch in self.loader:
            self.times.append(time.perf_counter())
            self.sizes.append(len(batch.indices))
            yield batch

    def steady(self, end: float) -> tuple[int, float]:
        """(images, seconds) from the start of the second window to ``end``."""
        first = max(1, len(self.times) // WINDOWS)
        return sum(self.sizes[first:]), end - self.times[first]


def measure_eval(model: nn.Module, device: torch.device, folder: Path, cfg: BenchmarkConfig,
                 crop_size: int | None, batch_size: int) -> Measure:
    """eval.py's scoring path (``score_samples``: its loader, ``predict``), in the steady state."""
    samples = scan_folder(folder)
    loader = eval_loader(samples, EvalTransform(crop_size=crop_size), batch_size=batch_size, device=device,
                         num_workers=resolve_workers(cfg.num_workers, device))
    handover = _Handover(loader)
    with _peak_memory(device) as peak:
        predict(model, handover, device, cfg.amp)  # returns gathered on the host: the device is done
        images, seconds = handover.steady(time.perf_counter())
    return Measure(images, seconds, peak[0])


def loader_ms_per_image(train_root: Path, eval_folder: Path, cfg: BenchmarkConfig, batch_size: int,
                        ) -> dict[str, float]:
    """The CPU work of one loader worker per image, from file path to a collated uint8 batch: Blur+JPEG (0.5)
    training items and center-cropped evaluation items, in one thread as in a worker. A GPU is fed at most
    (CPU cores) / (this) images per millisecond."""
    train_set = ImageDataset(scan_folder(train_root / "train"), TrainTransform(_train_config(train_root, cfg,
                                                                                            batch_size).augment()))
    eval_set = ImageDataset(scan_folder(eval_folder), EvalTransform(crop_size=cfg.crop_size))
    threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        paths = [s.path for s in eval_set.samples[:512]]
        start = time.perf_counter()
        for path in paths:
            load_rgb(path)
        result = {"decode": 1000 * (time.perf_counter() - start) / len(paths)}  # the floor of both
        for kind, dataset in (("train", train_set), ("eval", eval_set)):
            n = min(len(dataset), 512)
            collate([dataset[i] for i in range(min(n, batch_size))])  # warm-up: imports, caches
            start = time.perf_counter()
            for first in range(0, n, batch_size):
                collate([dataset[(0, i)] for i in range(first, min(first + batch_size, n))])
            result[kind] = 1000 * (time.perf_counter() - start) / n
        return result
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv2_threads)


def _train_config(root: Path, cfg: BenchmarkConfig, batch_size: int, **changes: Any) -> TrainConfig:
    """train.py with the paper's Blur+JPEG (0.5) on the generated images (their side is the load size)."""
    return TrainConfig(
        dataroot=root, name="run", checkpoints_dir=root, arch=cfg.arch, no_pretrained=True, batch_size=batch_size,
        crop_size=cfg.crop_size, load_size=cfg.image_size, blur_prob=0.5, blur_sig=(0.0, 3.0), jpg_prob=0.5,
        jpg_method=("cv2", "pil"), jpg_qual=(30, 100), amp=cfg.amp, num_workers=cfg.num_workers, **changes)


def measure_train(device: torch.device, root: Path, cfg: BenchmarkConfig, batch_size: int) -> Measure:
    """train.py for one epoch on ``root``, from its own log: the images/s of every logging window but the
    first (validation and checkpoint writing excluded)."""
    batches = len(scan_folder(root / "train")) // batch_size
    window = max(1, batches // WINDOWS)
    train_cfg = _train_config(root, cfg, batch_size, epochs=1, loss_freq=window, save_latest_freq=10 * batches,
                              device=str(device))
    with _peak_memory(device) as peak:
        train(train_cfg)
    records = [json.loads(line) for line in (train_cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    rates = [r["images_per_s"] for r in records if r["type"] == "train"][1:] or \
        [r["images_per_s"] for r in records if r["type"] == "train"]
    images = window * batch_size * len(rates)
    return Measure(images, images / (sum(rates) / len(rates)), peak[0])


def _write_mixed(job: tuple[str, int, int, int]) -> None:
    path, seed, width, height = job
    Image.fromarray(smooth_image(np.random.default_rng(seed), max(width, height))[:height, :width]).save(path)


def write_mixed_sizes(folder: Path, count: int, side: int, seed: int = 0, workers: int = 1) -> None:
    """``count`` PNGs cycling through four sizes (square, landscape, portrait, smaller), half of them "fake"."""
    sizes = [(side, side), (side * 5 // 4, side), (side, side * 5 // 4), (side * 3 // 4, side * 3 // 4)]
    for label in ("0_real", "1_fake"):
        (folder / label).mkdir(parents=True, exist_ok=True)
    jobs = [(str(folder / ("0_real" if i % 2 == 0 else "1_fake") / f"{i:05d}.png"), seed * 1_000_003 + i,
             *sizes[i % len(sizes)]) for i in range(count)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write_mixed, jobs, chunksize=max(1, count // (8 * workers))))


def _layout(device: torch.device, setting: str) -> bool:
    return memory_format(device) == torch.channels_last if setting == "auto" else setting == "on"


def benchmark_device(device: torch.device, cfg: BenchmarkConfig, work: Path) -> dict[str, Any]:
    defaults = DEVICE_DEFAULTS[device.type]
    batch_size, count = cfg.batch_size or defaults["batch_size"], cfg.images or defaults["images"]
    channels_last = _layout(device, cfg.channels_last)
    model = build_model(cfg.arch, pretrained=False).to(
        device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    workers, half = available_cpus(), count // 2
    start = time.perf_counter()
    make_upsampling_set(work / "eval", splits={"x": half}, classes=("set",), size=cfg.image_size, workers=workers)
    make_upsampling_set(work / "eval2", splits={"x": count}, classes=("set",), size=cfg.image_size, workers=workers)
    make_upsampling_set(work / "train", splits={"train": half, "val": 1}, classes=("set",), size=cfg.image_size,
                        workers=workers)
    write_mixed_sizes(work / "mixed", count, cfg.image_size, workers=workers)
    print(f"{device}: wrote {5 * count + 2} PNGs of {cfg.image_size} px in {time.perf_counter() - start:.0f} s",
          flush=True)

    measures: dict[str, Measure] = {}

    def note(name: str, measure: Measure) -> None:
        measures[name] = measure
        memory = "" if measure.peak_mb is None else f", peak {measure.peak_mb:.0f} MB"
        print(f"{device}: {name:16s} {measure.images_per_s:8.1f} images/s ({measure.images} images in "
              f"{measure.seconds:.1f} s{memory})", flush=True)

    note("forward", measure_forward(model, device, cfg, batch_size, count))
    note("eval", measure_eval(model, device, work / "eval" / "x" / "set", cfg, cfg.crop_size, batch_size))
    note("eval_2x_images", measure_eval(model, device, work / "eval2" / "x" / "set", cfg, cfg.crop_size,
                                        batch_size))
    note("no_crop_batched", measure_eval(model, device, work / "mixed", cfg, None, batch_size))
    note("no_crop_b1", measure_eval(model, device, work / "mixed", cfg, None, 1))
    note("train_step", measure_train_step(model, device, cfg, batch_size, count))
    if channels_last == (memory_format(device) == torch.channels_last):
        note("train", measure_train(device, work / "train", cfg, batch_size))
    else:  # train.py lays the model out by device; another layout would measure something else
        print(f"{device}: train skipped: train.py uses {memory_format(device)} on {device.type}")
    loader = loader_ms_per_image(work / "train", work / "eval" / "x" / "set", cfg, batch_size)
    print(f"{device}: loader CPU time per image, one worker: train {loader['train']:.2f} ms, eval "
          f"{loader['eval']:.2f} ms (decoding alone {loader['decode']:.2f} ms)", flush=True)
    ratios = {name: measures[a].images_per_s / measures[b].images_per_s
              for name, (a, b) in RATIOS.items() if a in measures and b in measures}
    return {"device": str(device), "hardware": _hardware(device), "channels_last": channels_last,
            "batch_size": batch_size, "images": count, "num_workers": resolve_workers(cfg.num_workers, device),
            "loader_ms_per_image": loader,
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
    settings = (f"{cfg.arch}, amp {cfg.amp}, {cfg.image_size} px PNGs, crop {cfg.crop_size}, "
                f"torch {torch.__version__}")
    hardware = "; ".join(f"{r['device']}: {r['hardware']}, batch {r['batch_size']}, {r['images']} images, "
                         f"{r['num_workers']} loader workers, loader {r['loader_ms_per_image']['train']:.2f} ms "
                         f"(train) / {r['loader_ms_per_image']['eval']:.2f} ms (eval) per image"
                         for r in results)
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
