"""benchmark.py: throughput of the model alone (the bounds) and of eval.py's and train.py's paths, each over a
steady span and checked against its bound and its loader, with peak memory; and train.py and eval.py end to end.

Measurements (images/s) on generated PNGs of ``image_size`` px (smooth colour fields with heavy noise, which decode
more slowly than photographs: a conservative case for the data path), cycled as long as a span needs:

- ``forward``: the model alone on a ready batch on the device (the bound for evaluation);
- ``eval``: eval.py's scoring path (decode, center crop, normalize, copy, forward); ``eval_2x_images`` on twice
  as many images, whose peak memory shows that evaluation does not grow with the dataset;
- ``train_step``: one of train.py's optimization steps on a ready batch (the bound for training);
- ``train``: train.py for one epoch with the paper's Blur+JPEG (0.5) augmentation, from its logging windows;
- ``no_crop_batched`` / ``no_crop_b1``: whole images of four sizes, batched by size vs one at a time;
- ``end_to_end``: wall-clock seconds of ``python train.py`` and ``python eval.py`` as a user runs them.

Peak memory is the device's: CUDA's peak allocation, or on CPU the process's peak resident set (reset before each
measurement; DataLoader workers are separate processes and not included).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
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
from data import (
    PREFETCH,
    Batch,
    EvalTransform,
    ImageDataset,
    Sample,
    TrainTransform,
    collate,
    load_rgb,
    scan_folder,
)
from data.names import LABEL_FOLDERS
from data.synthetic import make_upsampling_set, smooth_image
from engine.configs import EvalConfig, TrainConfig, available_cpus, resolve_workers
from engine.inference import (
    autocast,
    eval_loader,
    input_memory_format,
    memory_format,
    normalization_of,
    predict,
    set_precision,
)
from engine.training import make_optimizer, train, train_step
from networks import build_model, family
from util.distributed import resolve_device
from util.errors import UserError
from util.records import command_line, config_dict
from util.report import claim_folder, markdown_table

PROJECT_ROOT = Path(__file__).resolve().parents[1]

WARMUP_BATCHES = 2
MARGIN = 1.03  # a path may beat its bound (or its loader's ceiling) by this much noise; more is a measuring error
STEADY_QUEUES = 10  # a span that is shorter than --min_seconds must cover this many loader queues' worth of images
OVERSIZE = 1.2  # loader paths get images for this much longer than --min_seconds at their bound's rate
# Per device: the batch, the distinct images generated per set (measurements cycle through them), and the images
# of the end-to-end runs (on a GPU enough that start-up is a small part; on a CPU minutes).
DEVICE_DEFAULTS = {"cpu": {"batch_size": 32, "images": 128, "e2e_images": 128},
                   "cuda": {"batch_size": 128, "images": 4096, "e2e_images": 65536}}
RATIOS = {"eval / forward": ("eval", "forward"), "train / train_step": ("train", "train_step"),
          "no_crop batched / batch 1": ("no_crop_batched", "no_crop_b1")}
# Path -> (its bound, its loader): it cannot outrun either.
BOUNDED = {"eval": ("forward", "eval"), "eval_2x_images": ("forward", "eval"), "train": ("train_step", "train")}


@dataclass(frozen=True)
class Measure:
    images: int
    seconds: float
    peak_mb: float | None
    problems: tuple[str, ...] = ()
    """Why the number cannot be trusted; empty for a valid one."""

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds

    @property
    def valid(self) -> bool:
        return not self.problems

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "problems": list(self.problems), "images_per_s": self.images_per_s,
                "valid": self.valid}


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


def steady_problems(images: int, seconds: float, queued: int, min_seconds: float) -> tuple[str, ...]:
    """Why a measured span is not a steady state: it must last ``min_seconds``, or cover STEADY_QUEUES times the
    ``queued`` images a loader holds ready (none for the bounds)."""
    if seconds >= min_seconds or (queued and images >= STEADY_QUEUES * queued):
        return ()
    need = f" or {STEADY_QUEUES * queued} images" if queued else ""
    return (f"not a steady state: {images} images in {seconds:.1f} s, under {min_seconds:g} s{need}",)


def _repeated(step: Callable[[], None], device: torch.device, batch_size: int, min_seconds: float) -> Measure:
    """``step`` (one batch) for at least ``min_seconds`` after warm-up, timed as one span: a short probe sizes it,
    and a span that came out too short is measured again, longer."""
    for _ in range(WARMUP_BATCHES):
        step()
    probe_batches = 3
    measure = _timed(device, probe_batches * batch_size, lambda: [step() for _ in range(probe_batches)])
    for _ in range(3):
        batches = max(probe_batches, math.ceil(OVERSIZE * min_seconds * measure.images_per_s / batch_size))
        measure = _timed(device, batches * batch_size, lambda n=batches: [step() for _ in range(n)])
        measure = dataclasses.replace(measure, problems=steady_problems(measure.images, measure.seconds, 0,
                                                                         min_seconds))
        if measure.valid:
            break
    return measure


def measure_forward(model: nn.Module, device: torch.device, cfg: BenchmarkConfig, batch_size: int) -> Measure:
    """The model alone on a ready batch on the device, as eval.py runs it (layout, precision): eval's bound."""
    batch = torch.randn(batch_size, 3, cfg.crop_size, cfg.crop_size, device=device).contiguous(
        memory_format=input_memory_format(model))
    model.eval()

    @torch.no_grad()
    def step() -> None:
        with autocast(device, cfg.amp):
            model(batch)

    return _repeated(step, device, batch_size, cfg.min_seconds)


def measure_train_step(model: nn.Module, device: torch.device, cfg: BenchmarkConfig, batch_size: int,
                       train_cfg: TrainConfig) -> Measure:
    """train.py's step (its optimizer, precision, layout) on a ready batch on the device: train's bound."""
    images = torch.randn(batch_size, 3, cfg.crop_size, cfg.crop_size, device=device).contiguous(
        memory_format=input_memory_format(model))
    # Labels that change from step to step: on one batch with fixed labels the loss falls towards 0, the gradients
    # become denormal floats, and a CPU then steps 13-20% slower than train.py does on real data.
    labels = torch.randint(0, 2, (16, batch_size), generator=torch.Generator().manual_seed(0)).to(device)
    optimizer = make_optimizer(train_cfg, model)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    model.train()
    steps = itertools.count()

    def step() -> None:
        train_step(model, images=images, labels=labels[next(steps) % len(labels)], optimizer=optimizer,
                   scaler=scaler, device=device, amp=cfg.amp)

    return _repeated(step, device, batch_size, cfg.min_seconds)


def queued_images(workers: int, batch_size: int) -> int:
    """What a loader holds ready before the model asks: PREFETCH batches per worker."""
    return workers * PREFETCH * batch_size


def planned_images(rate: float, queued: int, batch_size: int, min_seconds: float) -> int:
    """Images for a loader path that cannot be faster than ``rate``: warm-up and the loader's queue, then at least
    ``min_seconds`` of steady state."""
    return WARMUP_BATCHES * batch_size + queued + math.ceil(OVERSIZE * min_seconds * rate)


class _Handover:
    """Iterates a DataLoader and notes when each batch is handed to the model, so throughput is measured after
    warm-up and after the batches the loader had queued beforehand."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader, self.dataset = loader, loader.dataset
        self.times: list[float] = []
        self.sizes: list[int] = []

    def __iter__(self) -> Iterator[Batch]:
        for batch in self.loader:
            self.times.append(time.perf_counter())
            self.sizes.append(len(batch.indices))
            yield batch

    def steady(self, end: float, skip: int) -> tuple[int, float]:
        """(images, seconds) from the handover of batch ``skip`` to ``end``."""
        skip = min(skip, len(self.times) - 1)
        return sum(self.sizes[skip:]), end - self.times[skip]


def measure_eval(model: nn.Module, device: torch.device, samples: list[Sample], cfg: BenchmarkConfig,
                 crop_size: int | None, batch_size: int, rate: float, workers: int) -> Measure:
    """eval.py's scoring path (its loader, ``predict``) over ``samples`` cycled to last at least --min_seconds at
    ``rate``, measured after warm-up and the loader's queue. ``rate`` is a guess where no bound holds (whole images);
    a span that came out too short is measured again, longer."""
    queued = queued_images(workers, batch_size)
    for _ in range(3):
        count = planned_images(rate, queued, batch_size, cfg.min_seconds)
        cycled = [samples[i % len(samples)] for i in range(count)]
        loader = eval_loader(cycled, EvalTransform(crop_size=crop_size), batch_size=batch_size, device=device,
                             num_workers=workers)
        handover = _Handover(loader)
        with _peak_memory(device) as peak:
            # returns gathered on the host: the device is done
            predict(model, handover, device, cfg.amp, normalization=normalization_of(family(cfg.arch)))
            images, seconds = handover.steady(time.perf_counter(), WARMUP_BATCHES + workers * PREFETCH)
        measure = Measure(images, seconds, peak[0], steady_problems(images, seconds, queued, cfg.min_seconds))
        if measure.valid:
            break
        rate = OVERSIZE * measure.images_per_s
    return measure


def loader_ms_per_image(train_root: Path, eval_folder: Path, cfg: BenchmarkConfig, batch_size: int,
                        ) -> dict[str, float]:
    """The CPU work of one loader worker per image, from file path to a collated uint8 batch: Blur+JPEG (0.5)
    training items and center-cropped evaluation items, in one thread as in a worker. A GPU is fed at most
    (CPU cores) / (this) images per millisecond."""
    train_set = ImageDataset(scan_folder(train_root / "train"), TrainTransform(_train_config(train_root, cfg,
                                                                                            batch_size).augment))
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


def loader_ceilings(ms_per_image: dict[str, float], workers: int) -> dict[str, float]:
    """Images/s the loader can deliver at most: the cores it uses (its workers, or the main process) over the CPU
    time per image."""
    cores = min(max(workers, 1), available_cpus())
    return {kind: 1000 * cores / ms_per_image[kind] for kind in ("train", "eval")}


def _train_config(root: Path, cfg: BenchmarkConfig, batch_size: int, **changes: Any) -> TrainConfig:
    """train.py with the paper's Blur+JPEG (0.5) on the generated images (their side is the load size)."""
    return TrainConfig.from_flags(
        dataroot=root, name="run", checkpoints_dir=root, arch=cfg.arch, no_pretrained=True, batch_size=batch_size,
        crop_size=cfg.crop_size, load_size=cfg.image_size, blur_prob=0.5, blur_sig=(0.0, 3.0), jpg_prob=0.5,
        jpg_method=("cv2", "pil"), jpg_qual=(30, 100), amp=cfg.amp, num_workers=cfg.num_workers, **changes)


def linked_set(source: Path, root: Path, count: int, val: int = 2) -> Path:
    """``root/{train,val}/set/{0_real,1_fake}``: ``count`` training images (and ``val``) as hard links that cycle
    through the images of ``source`` (a set folder), so a long run costs no image writing."""
    files = {label: sorted((source / label).iterdir()) for label in LABEL_FOLDERS}
    for split, n in (("train", count), ("val", val)):
        for label, sources in files.items():
            folder = root / split / "set" / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range((n + 1) // 2 if label == "1_fake" else n // 2):
                target = folder / f"{i:06d}.png"
                try:
                    os.link(sources[i % len(sources)], target)
                except OSError:  # a file system without hard links
                    shutil.copyfile(sources[i % len(sources)], target)
    return root


def measure_train(device: torch.device, source: Path, work: Path, cfg: BenchmarkConfig, batch_size: int,
                  rate: float, workers: int) -> Measure:
    """train.py for one epoch, long enough for --min_seconds at ``rate``: images over wall seconds of its logging
    windows after warm-up and the loader's queue (validation and checkpoint writing excluded). A span that came
    out too short (the step's first measurement was slow) is measured again, longer."""
    queued = queued_images(workers, batch_size)
    for attempt in range(3):
        root = linked_set(source, work / f"attempt{attempt}", planned_images(rate, queued, batch_size,
                                                                              cfg.min_seconds))
        batches = len(scan_folder(root / "train")) // batch_size
        window = max(1, batches // 50)
        train_cfg = _train_config(root, cfg, batch_size, epochs=1, loss_freq=window, save_latest_freq=10 * batches,
                                  device=str(device))
        with _peak_memory(device) as peak:
            train(train_cfg)
        records = [json.loads(line) for line in (train_cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
        windows = [r for r in records if r["type"] == "train"]
        # The span runs from the end of the last skipped window to the end of the last window, on the wall clock:
        # the windows' own seconds leave out the logging between them.
        skip = min(max(1, math.ceil((WARMUP_BATCHES + workers * PREFETCH) / window)), len(windows) - 1)
        images = sum(r["images"] for r in windows[skip:])
        seconds = windows[-1]["time"] - windows[skip - 1]["time"]
        measure = Measure(images, seconds, peak[0], steady_problems(images, seconds, queued, cfg.min_seconds))
        if measure.valid:
            break
        rate = OVERSIZE * measure.images_per_s
    return measure


def faster(a: Measure, b: Measure) -> Measure:
    return a if a.images_per_s >= b.images_per_s else b


def checked(measures: dict[str, Measure], ceilings: dict[str, float]) -> dict[str, Measure]:
    """The measures, each path also refused when it is faster than its bound or than its loader can feed it:
    either is impossible, so the measurement is wrong."""
    result = dict(measures)
    for name, (bound, loader) in BOUNDED.items():
        if name not in measures:
            continue
        path, problems = measures[name], list(measures[name].problems)
        if bound in measures and path.images_per_s > MARGIN * measures[bound].images_per_s:
            problems.append(f"faster than its bound {bound} ({path.images_per_s:.1f} > "
                            f"{measures[bound].images_per_s:.1f} images/s)")
        if path.images_per_s > MARGIN * ceilings[loader]:
            problems.append(f"faster than its loader can feed it ({path.images_per_s:.1f} > {ceilings[loader]:.1f} "
                            f"images/s)")
        result[name] = dataclasses.replace(path, problems=tuple(problems))
    return result


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
    set_precision(device, cfg.amp)  # as eval.py and train.py: the bounds run with the paths' precision flags
    model = build_model(cfg.arch, pretrained=False).to(
        device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    cpus, workers = available_cpus(), resolve_workers(cfg.num_workers, device)
    start = time.perf_counter()
    make_upsampling_set(work / "data", splits={"train": count // 2, "test": count // 2}, classes=("set",),
                        size=cfg.image_size, workers=cpus)
    write_mixed_sizes(work / "mixed", count, cfg.image_size, workers=cpus)
    print(f"{device}: wrote {3 * count} PNGs of {cfg.image_size} px in {time.perf_counter() - start:.0f} s",
          flush=True)
    eval_samples, train_set = scan_folder(work / "data" / "test" / "set"), work / "data" / "train" / "set"
    loader = loader_ms_per_image(work / "data", work / "data" / "test" / "set", cfg, batch_size)
    ceilings = loader_ceilings(loader, workers)
    print(f"{device}: loader CPU time per image, one worker: train {loader['train']:.2f} ms, eval "
          f"{loader['eval']:.2f} ms (decoding alone {loader['decode']:.2f} ms); with {max(workers, 1)} "
          f"process(es) at most {ceilings['train']:.0f} (train) / {ceilings['eval']:.0f} (eval) images/s",
          flush=True)

    measures: dict[str, Measure] = {}

    def note(name: str, measure: Measure) -> Measure:
        measures[name] = measure
        memory = "" if measure.peak_mb is None else f", peak {measure.peak_mb:.0f} MB"
        print(f"{device}: {name:16s} {measure.images_per_s:8.1f} images/s ({measure.images} images in "
              f"{measure.seconds:.1f} s{memory})", flush=True)
        return measure

    # A bound is measured before its paths and again after them, and the faster run counts: noise on a shared
    # machine only ever slows a run, and a bound taken in a slow moment would make a sound path look impossible.
    # While a path still beats it, it is measured again (twice at most): a path that is really too fast stays so.
    def remeasure(bound: str, measure: Callable[[], Measure]) -> None:
        paths = [name for name, (of, _) in BOUNDED.items() if of == bound and name in measures]
        for _ in range(3):
            note(bound, faster(measures[bound], measure()))
            if all(measures[p].images_per_s <= MARGIN * measures[bound].images_per_s for p in paths):
                break

    forward = note("forward", measure_forward(model, device, cfg, batch_size)).images_per_s
    eval_rate = min(forward, ceilings["eval"])
    note("eval", measure_eval(model, device, eval_samples, cfg, cfg.crop_size, batch_size, eval_rate, workers))
    note("eval_2x_images", measure_eval(model, device, eval_samples, cfg, cfg.crop_size, batch_size,
                                        2 * eval_rate, workers))
    mixed = scan_folder(work / "mixed")
    batched = note("no_crop_batched", measure_eval(model, device, mixed, cfg, None, batch_size, eval_rate,
                                                   workers))
    note("no_crop_b1", measure_eval(model, device, mixed, cfg, None, 1, batched.images_per_s, workers))
    remeasure("forward", lambda: measure_forward(model, device, cfg, batch_size))
    train_cfg = _train_config(work, cfg, batch_size)
    step = note("train_step", measure_train_step(model, device, cfg, batch_size, train_cfg)).images_per_s
    if channels_last == (memory_format(device) == torch.channels_last):
        note("train", measure_train(device, train_set, work / "train", cfg, batch_size,
                                    min(step, ceilings["train"]), workers))
        remeasure("train_step", lambda: measure_train_step(model, device, cfg, batch_size, train_cfg))
    else:  # train.py lays the model out by device; another layout would measure something else
        print(f"{device}: train skipped: train.py uses {memory_format(device)} on {device.type}")
    measures = checked(measures, ceilings)
    for name, measure in measures.items():
        for problem in measure.problems:
            print(f"{device}: {name} is not valid: {problem}")
    ratios = {name: measures[a].images_per_s / measures[b].images_per_s
              for name, (a, b) in RATIOS.items() if a in measures and b in measures}
    e2e = end_to_end(device, cfg, work, train_set, batch_size)
    return {"device": str(device), "hardware": _hardware(device), "channels_last": channels_last,
            "batch_size": batch_size, "images": count, "num_workers": workers, "min_seconds": cfg.min_seconds,
            "loader_ms_per_image": loader, "loader_ceiling": ceilings,
            "measures": {k: m.record() for k, m in measures.items()}, "ratios": ratios, "end_to_end": e2e}


def _wall(argv: list[str], log: Path) -> float:
    """Seconds ``python <argv>`` takes in the project root, as a user would run it."""
    start = time.perf_counter()
    with open(log, "w") as out:
        done = subprocess.run([sys.executable, *argv], cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT,
                              check=False)
    seconds = time.perf_counter() - start
    if done.returncode:
        tail = log.read_text(errors="replace")[-2000:]
        raise UserError(f"benchmark: python {' '.join(argv[:1])} failed ({done.returncode}):\n{tail}")
    return seconds


def end_to_end(device: torch.device, cfg: BenchmarkConfig, work: Path, source: Path,
               batch_size: int) -> dict[str, Any]:
    """Wall-clock seconds of train.py (one epoch) and eval.py on --e2e_images images, each as a user runs it in a
    new process, and of the same commands on one batch: their start-up (imports, workers, model, the first batch)
    and exit, which the difference leaves out."""
    images = cfg.e2e_images or DEVICE_DEFAULTS[device.type]["e2e_images"]
    result: dict[str, Any] = {"images": images}
    for label, count in (("one_batch", batch_size), ("all", images)):
        root = linked_set(source, work / f"e2e_{label}", count)
        train_cfg = _train_config(root, cfg, batch_size, epochs=1, device=str(device))
        train_s = _wall(["train.py", *command_line(train_cfg)], work / f"train_{label}.log")
        eval_cfg = EvalConfig(dataroot=root / "train", model_path=train_cfg.run_dir / "best.pth",
                              crop_size=cfg.crop_size, batch_size=batch_size, device=str(device), amp=cfg.amp,
                              num_workers=cfg.num_workers, results_dir=root / "results", name="e2e")
        eval_s = _wall(["eval.py", *command_line(eval_cfg)], work / f"eval_{label}.log")
        result[label] = {"train_py_s": train_s, "eval_py_s": eval_s}
    print(f"{device}: end to end on {images} images: train.py {result['all']['train_py_s']:.1f} s (one batch: "
          f"{result['one_batch']['train_py_s']:.1f} s), eval.py {result['all']['eval_py_s']:.1f} s (one batch: "
          f"{result['one_batch']['eval_py_s']:.1f} s)", flush=True)
    return result


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
    rows = [[r["device"], name, f"{m['images_per_s']:.1f}", f"{m['images']}", f"{m['seconds']:.1f}",
             "" if m["peak_mb"] is None else f"{m['peak_mb']:.0f}", "yes" if m["valid"] else "; ".join(m["problems"])]
            for r in results for name, m in r["measures"].items()]
    ratios = [[r["device"], name, f"{value:.2f}"] for r in results for name, value in r["ratios"].items()]
    e2e = [[r["device"], script, str(r["end_to_end"]["images"]), f"{r['end_to_end']['all'][f'{script}_s']:.1f}",
            f"{r['end_to_end']['one_batch'][f'{script}_s']:.1f}"]
           for r in results for script in ("train_py", "eval_py")]
    settings = (f"{cfg.arch}, amp {cfg.amp}, {cfg.image_size} px PNGs, crop {cfg.crop_size}, "
                f"torch {torch.__version__}, steady spans of at least {cfg.min_seconds:g} s")
    hardware = "; ".join(f"{r['device']}: {r['hardware']}, batch {r['batch_size']}, {r['num_workers']} loader "
                         f"workers, loader {r['loader_ms_per_image']['train']:.2f} ms (train) / "
                         f"{r['loader_ms_per_image']['eval']:.2f} ms (eval) per image" for r in results)
    return "\n".join([f"Settings: {settings}. Hardware: {hardware}.", "",
                      markdown_table(["device", "measurement", "images/s", "images", "seconds", "peak memory MB",
                                      "valid"], rows), "",
                      markdown_table(["device", "ratio", "value"], ratios), "",
                      markdown_table(["device", "command", "images", "wall s", "one batch s"], e2e), ""])


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
    invalid = [f"{r['device']} {name}" for r in results for name, m in r["measures"].items() if not m["valid"]]
    if invalid:
        raise UserError(f"benchmark: {', '.join(invalid)} not valid (reasons above and in "
                        f"{cfg.out / 'benchmark.json'})")
    return results
