"""The configs of the commands (demo.py, benchmark.py, analyze.py's analyses; the quickstart's lives with its
presets): frozen dataclasses, validated on construction, whose field names are the flags. No image or
deep-learning library is imported here, so the options answer ``--help`` at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from data.names import PROTOCOLS
from engine.configs import Runtime, TrainConfig, check_limits, check_runtime
from networks import names
from util.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class DemoConfig(Runtime):
    """One demo.py run. Field names are demo.py's flags."""

    file: str = ""
    """An image, a folder (a 0_real/1_fake folder also reports AP) or a glob pattern."""
    model_path: Path = Path("weights/blur_jpg_prob0.5.pth")
    arch: str | None = None
    """Backbone (None: the one saved in the checkpoint, else the family that recognizes its keys)."""
    allow_nonfinite: bool = False
    """Load weights that hold NaN or infinite values (refused by default)."""
    crop: int | None = None
    """Center-crop to this size first. With neither crop nor no_crop: the checkpoint's recorded test protocol, else
    the whole image (as the authors' demo)."""
    no_crop: bool = False
    """Score the whole image whatever the checkpoint records."""
    threshold: float = 0.5
    """Called synthetic when the probability exceeds this."""
    out: Path | None = None
    """Also write path,label,logit,prob rows to this CSV."""
    batch_size: int = 16
    max_megapixels: float = 64.0
    """Larger images (by their header) are not decoded: skipped and listed."""
    memory_budget: float | None = None
    """GiB the activations of a batch of whole images may take (None: half the free memory, at most 4)."""
    strict: bool = False
    """In a folder, an unreadable image is an error (exit status 2)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_limits(self.max_megapixels, self.memory_budget)
        if self.no_crop and self.crop is not None:
            raise ConfigError("--crop has no effect with --no_crop; leave it out")
        if not 0 <= self.threshold <= 1:
            raise ConfigError(f"--threshold {self.threshold}: give a probability in [0, 1]")


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
    batch_size: int | None = None
    """Images per batch (None: 32 on CPU, 128 on CUDA)."""
    channels_last: str = "auto"
    """Model and batch layout; auto = what eval.py/train.py use (channels_last on CUDA)."""
    images: int | None = None
    """Distinct images generated per set (None: 128 on CPU, 4096 on CUDA); measurements cycle through them."""
    min_seconds: float = 20.0
    """Each measured span lasts at least this long, after warm-up and the loader's queue."""
    e2e_images: int | None = None
    """Images of the end-to-end train.py and eval.py runs (None: 128 on CPU, 65,536 on CUDA)."""
    image_size: int = 256
    crop_size: int = 224
    out: Path = Path("results/benchmark")
    overwrite: bool = False

    def __post_init__(self) -> None:
        check_runtime(self.amp, self.num_workers)
        if any(d not in DEVICES for d in self.devices or ()):
            raise ConfigError(f"--devices {','.join(self.devices or ())}: choose from {', '.join(DEVICES)}")
        if self.arch not in names():
            raise ConfigError(f"--arch {self.arch}: choose one of {', '.join(names())}")
        if self.channels_last not in CHANNELS_LAST:
            raise ConfigError(f"--channels_last {self.channels_last}: choose one of {', '.join(CHANNELS_LAST)}")
        if self.crop_size > self.image_size:
            raise ConfigError(f"--crop_size {self.crop_size} exceeds --image_size {self.image_size}")
        if not self.min_seconds > 0:
            raise ConfigError(f"--min_seconds {self.min_seconds}: must be positive")


@dataclass(frozen=True, kw_only=True)
class RankingConfig:
    """analyze.py ranking. Field names are its flags."""

    scores: Path = Path("results/blur_jpg_prob0.5/scores.csv")
    """An eval.py scores.csv."""
    threshold: float = 0.5
    """Fake when P(fake) > threshold."""
    max_images: int = 8
    """Misclassified images shown per kind of mistake and set."""
    thumbnail: int = 128
    """Thumbnail side in pixels."""
    out: Path | None = None
    """Output folder (None: ranking/ beside the scores)."""
    overwrite: bool = False


@dataclass(frozen=True, kw_only=True)
class SpectraConfig:
    """analyze.py spectra. Field names are its flags."""

    dataroot: Path = Path("./dataset/test")
    sets: tuple[str, ...] | None = None
    """Sets to analyse (None: all found)."""
    max_images: int = 2000
    """Images per set and label, a seeded random choice (the paper: 2000)."""
    crop_size: int | None = None
    """Center-crop side (None: the smallest side among the images, at most MAX_SIDE)."""
    seed: int = 0
    out: Path = Path("results/spectra")
    overwrite: bool = False


@dataclass(frozen=True, kw_only=True)
class AblationConfig:
    """analyze.py ablation: the training runs' shared settings and how to evaluate them."""

    train: TrainConfig = field(default_factory=TrainConfig)
    """Every run's recipe; each run replaces ``classes`` and ``name``."""
    num_classes: tuple[int, ...] = (2, 4, 8, 16, 20)
    """Training-class counts; nested subsets, chosen by the training seed."""
    test_dataroot: Path = Path("./dataset/test")
    test_sets: tuple[str, ...] | None = None
    """Test sets (None: the training protocol's, else every set found)."""
    eval_crop_size: int | None = None
    """None: the runs' recorded test protocol."""
    eval_no_crop: bool = False
    eval_batch_size: int = 64
    results_dir: Path = Path("results")
    """ablation.csv/.md/.png go to <results_dir>/<train.name>/."""
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.test_sets is None and self.train.protocol is not None:
            object.__setattr__(self, "test_sets", PROTOCOLS[self.train.protocol].test_sets)
        if self.eval_no_crop and self.eval_crop_size is not None:
            raise ConfigError("--eval_crop_size has no effect with --eval_no_crop; leave it out")




@dataclass(frozen=True, kw_only=True)
class AppConfig(Runtime):
    """One app.py server. Field names are app.py's flags."""

    model_path: Path | None = None
    """A checkpoint or a released model (None: the quickstart's detector, if one was trained)."""
    arch: str | None = None
    calibration: Path | None = None
    """An eval.py calibration.json: its threshold becomes the page's default."""
    host: str = "127.0.0.1"
    """The interface to serve on; another than this machine's loopback is an explicit choice."""
    port: int = 7860
    max_upload_mb: float = 50.0
    """Uploads above this size are refused."""
    max_megapixels: float = 16.0
    """Images above this many pixels are refused when the detector scores whole images (the page would wait
    minutes for them on a CPU); demo.py scores them."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.port < 65536:
            raise ConfigError(f"--port {self.port}: give a port number in 1..65535")
        if self.max_upload_mb <= 0 or self.max_megapixels <= 0:
            raise ConfigError("--max_upload_mb and --max_megapixels must be positive")
