"""The configs of the commands (demo.py, benchmark.py, app.py, analyze.py's analyses; the quickstart's lives with
its presets): frozen dataclasses of option fields, validated on construction, whose field names are the flags. No
image or deep-learning library is imported here, so the options answer ``--help`` at once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data.names import PROTOCOLS
from engine.configs import (
    ARCH_HELP,
    BUDGET_HELP,
    MEGAPIXELS_HELP,
    MODEL_HELP,
    NONFINITE_HELP,
    OVERWRITE_HELP,
    Compute,
    Runtime,
    TrainConfig,
    arch_name,
    known_arch,
)
from networks import help_text
from networks.released import model_path
from util.errors import ConfigError
from util.fields import Options, between, each, nonempty, nonneg, numbers, option, positive, probability, words


@dataclass(frozen=True, kw_only=True)
class DemoConfig(Runtime):
    """One demo.py run. Field names are demo.py's flags."""

    file: str = option("", "an image, a folder (a 0_real/1_fake folder also reports AP) or a quoted glob",
                       flags=("-f",))
    model_path: Path = option(Path("weights/blur_jpg_prob0.5.pth"), MODEL_HELP, parse=model_path, flags=("-m",))
    arch: str | None = option(None, ARCH_HELP, parse=arch_name, check=known_arch)
    allow_nonfinite: bool = option(False, NONFINITE_HELP)
    crop: int | None = option(None, "center-crop to this size first (default: the checkpoint's test protocol, else "
                              "the whole image, as the authors' demo)", check=positive, flags=("-c",))
    no_crop: bool = option(False, "score the whole image whatever the checkpoint records")
    threshold: float = option(0.5, "called synthetic when the probability exceeds this", check=probability)
    out: Path | None = option(None, "also write path,label,logit,prob rows to this CSV (unreadable images to "
                              "<its name>_skipped.csv)")
    batch_size: int = option(16, "images per forward pass (folders)", check=positive)
    max_megapixels: float = option(64.0, MEGAPIXELS_HELP, check=positive)
    memory_budget: float | None = option(None, BUDGET_HELP, check=positive, metavar="GIB")
    strict: bool = option(False, "in a folder, an unreadable image is an error (default: skipped and reported)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.file:
            raise ConfigError("give the image, folder or glob to score: -f/--file")
        if self.no_crop and self.crop is not None:
            raise ConfigError("--crop has no effect with --no_crop; leave it out")


DEVICES = ("cpu", "cuda")
CHANNELS_LAST = ("auto", "on", "off")


@dataclass(frozen=True, kw_only=True)
class BenchmarkConfig(Compute):
    """One benchmark.py run. Field names are its flags."""

    devices: tuple[str, ...] | None = option(None, "comma-separated (default: cpu, and cuda when available)",
                                             choices=DEVICES)
    arch: str = option("resnet50", lambda: "backbone: " + help_text(), parse=arch_name, check=known_arch)
    batch_size: int | None = option(None, "images per batch (default: 32 on CPU, 128 on CUDA)", check=positive)
    channels_last: str = option("auto", "model and batch layout; auto = what eval.py/train.py use (channels_last "
                                "on CUDA)", choices=CHANNELS_LAST)
    images: int | None = option(None, "distinct images generated per set (default: 128 on CPU, 4096 on CUDA); "
                                "measurements cycle through them", check=positive)
    min_seconds: float = option(20.0, "each measured span lasts at least this long, after warm-up and the "
                                "loader's queue", check=positive)
    e2e_images: int | None = option(None, "images of the end-to-end train.py and eval.py runs (default: 128 on "
                                    "CPU, 65536 on CUDA)", check=positive)
    image_size: int = option(256, "side of the generated PNGs", check=positive)
    crop_size: int = option(224, "center / random crop side", check=positive)
    out: Path = option(Path("results/benchmark"), "benchmark.json and benchmark.md go here")
    overwrite: bool = option(False, OVERWRITE_HELP)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.crop_size > self.image_size:
            raise ConfigError(f"--crop_size {self.crop_size} exceeds --image_size {self.image_size}")


@dataclass(frozen=True, kw_only=True)
class RankingConfig(Options):
    """analyze.py ranking. Field names are its flags."""

    scores: Path = option(Path("results/blur_jpg_prob0.5/scores.csv"), "an eval.py scores.csv")
    threshold: float = option(0.5, "fake when P(fake) > threshold", check=probability)
    max_images: int = option(8, "misclassified images shown per kind of mistake and set", check=positive)
    thumbnail: int = option(128, "thumbnail side in pixels", check=positive)
    out: Path | None = option(None, "output folder (default: ranking/ beside --scores)")
    overwrite: bool = option(False, OVERWRITE_HELP)


@dataclass(frozen=True, kw_only=True)
class SpectraConfig(Options):
    """analyze.py spectra. Field names are its flags."""

    dataroot: Path = option(Path("./dataset/test"), "folder of test sets")
    sets: tuple[str, ...] | None = option(None, "comma-separated sets (default: all found)", parse=words,
                                          check=nonempty)
    max_images: int = option(2000, "images per set and label, a seeded random choice (the paper: 2000)",
                             check=positive)
    crop_size: int | None = option(None, "center-crop side (default: the smallest side among the images, at most "
                                   "256)", check=positive)
    seed: int = option(0, "seeds the choice of images", check=nonneg)
    out: Path = option(Path("results/spectra"), "output folder")
    overwrite: bool = option(False, OVERWRITE_HELP)


@dataclass(frozen=True, kw_only=True)
class AblationConfig(Options):
    """analyze.py ablation: the training runs' shared settings (train.py's flags) and how to evaluate them."""

    train: TrainConfig = field(default_factory=TrainConfig)
    """Every run's recipe; each run replaces ``classes`` and ``name``."""
    num_classes: tuple[int, ...] = option((2, 4, 8, 16, 20), "training-class counts; nested subsets, chosen by "
                                          "--seed", parse=numbers(int), check=each(positive))
    test_dataroot: Path = option(Path("./dataset/test"), "folder of test sets")
    test_sets: tuple[str, ...] | None = option(None, "comma-separated test sets (default: --protocol's, else every "
                                               "set found)", parse=words, check=nonempty)
    eval_crop_size: int | None = option(None, "center crop of the test images (default: the runs' test protocol)",
                                        check=positive)
    eval_no_crop: bool = option(False, "evaluate whole test images")
    eval_batch_size: int = option(64, "images per forward pass in eval", check=positive)
    results_dir: Path = option(Path("results"), "ablation.csv/.md/.png go to <results_dir>/<name>/")
    overwrite: bool = option(False, OVERWRITE_HELP)

    @classmethod
    def from_flags(cls, **flags: Any) -> AblationConfig:
        own = {f.name for f in dataclasses.fields(cls)}
        train = TrainConfig.from_flags(**{k: v for k, v in flags.items() if k not in own})
        return cls(train=train, **{k: v for k, v in flags.items() if k in own})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.test_sets is None and self.train.protocol is not None:
            object.__setattr__(self, "test_sets", PROTOCOLS[self.train.protocol].test_sets)
        if self.eval_no_crop and self.eval_crop_size is not None:
            raise ConfigError("--eval_crop_size has no effect with --eval_no_crop; leave it out")


@dataclass(frozen=True, kw_only=True)
class AppConfig(Runtime):
    """One app.py server. Field names are app.py's flags."""

    model_path: Path | None = option(None, MODEL_HELP + " (default: the quickstart's detector)", parse=model_path,
                                     flags=("-m",))
    arch: str | None = option(None, ARCH_HELP, parse=arch_name, check=known_arch)
    calibration: Path | None = option(None, "an eval.py calibration.json: its threshold is the page's default")
    host: str = option("127.0.0.1", "interface to serve on; 0.0.0.0 exposes the page to your network (default: "
                       "$GRADIO_SERVER_NAME, else 127.0.0.1)")
    port: int = option(7860, "TCP port (default: $GRADIO_SERVER_PORT, else 7860)",
                       check=between(1, 65535))
    max_upload_mb: float = option(50.0, "refuse uploads larger than this", check=positive)
    max_megapixels: float = option(16.0, "refuse larger images when the detector scores whole images (demo.py "
                                   "scores them)", check=positive)
