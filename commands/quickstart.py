"""quickstart.py: the whole method on a CPU with no downloads.

Builds (or reuses) the mini-benchmark (``data.minibench``), trains the detector on the training generator with
the paper's loop and augmentation, evaluates every generator with eval.py's code next to the trivial baselines,
and runs the demo on one real and one fake test image.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from commands.demo import DemoConfig, run_demo
from data.minibench import BASELINES, MiniConfig, build
from engine.configs import EvalConfig, Runtime, TrainConfig, arch_name, known_arch
from engine.evaluation import evaluate
from engine.training import completed_run, train
from networks import build_model, family
from util.errors import ConfigError, UserError
from util.fields import nonneg, option
from util.records import command_line
from util.report import markdown_table, write_csv


@dataclass(frozen=True)
class Preset:
    """A benchmark size and the training that suits it. The detector trains on random crops (a fingerprint is
    local, and small crops make CPU steps cheap) and is evaluated on whole images."""

    bench: MiniConfig
    crop_size: int
    epochs: int
    batch_size: int
    swa_epochs: int
    """The last epochs whose weights are averaged into the result."""
    lr: float = 3e-4  # from scratch; 1e-3 gave a worse last epoch on seed 1 (AP 82.9-92.0% against 86.1-93.1%)


PRESETS = {
    # For tests: seconds, unmatched (data.minibench.MiniConfig.match).
    "tiny": Preset(MiniConfig(size=32, train_per_class=100, val_per_class=20, test_per_set=60, generator_steps=40,
                              generator_width=16, match=False, max_baseline_ap=1.0),
                   crop_size=24, epochs=6, batch_size=32, swa_epochs=3, lr=1e-3),
    "small": Preset(MiniConfig(train_per_class=300, val_per_class=50, test_per_set=100, generator_steps=200),
                    crop_size=32, epochs=8, batch_size=32, swa_epochs=4),
    # Epochs 4-12 averaged: over six runs on builder 2's benchmark, the spread of each set's AP was 3.8-5.4 points
    # against 4.9-6.3 with epochs 7-12; epochs 2-12 were no better in the two runs tried (docs/mini-benchmark.md).
    "default": Preset(MiniConfig(train_per_class=600, val_per_class=100), crop_size=32, epochs=12, batch_size=64,
                      swa_epochs=9),
}
# The mini recipe's training, chosen for sturdiness over seeds and thread counts (docs/mini-benchmark.md):
# - crops start on the generators' 4 px upsampling grid, in the phase whole test images have;
# - a cosine schedule of fixed length and the last epoch's weights: validation photos are not the test photos, and
#   the epoch with the best validation AP was the worse test detector in 4 of 5 runs;
# - the paper's blur sigma range scaled to the image size: U[0, 3] suits its 256 px images, a quarter of it these
#   64 px ones (sigma 3 leaves no fingerprint in a 64 px image);
# - the mean of the last epochs' weights, BatchNorm statistics recomputed for it (``swa_epochs``, set per preset):
#   one seed's last epoch scored 86% AP, its average 93%.
MINI_RECIPE = {"crop_grid": 4, "lr_schedule": "cosine", "select_on": "last", "blur_sig": (0.0, 0.75)}
BLUR_JPG_PROB = 0.1  # the paper's Blur+JPEG (0.1) model


@dataclass(frozen=True, kw_only=True)
class QuickstartConfig(Runtime):
    """One quickstart.py run. Field names are quickstart.py's flags."""

    root: Path = option(Path("dataset/mini"), "where the benchmark is built")
    size: str = option("default", "preset: tiny (seconds, for tests), small (fewer images and epochs) or default "
                       "(the measured run)", choices=tuple(PRESETS))
    seed: int = option(0, "seeds the detector's training", check=nonneg)
    # Fixed by default: the benchmark is the instrument, the same files on every machine, and a seed that rebuilt
    # it would mix its sampling into the training's spread.
    bench_seed: int = option(0, "seeds the benchmark build (another value rebuilds --root)", check=nonneg)
    arch: str = option("resnet18", "the detector's network (from scratch, same recipe): e.g. npr to compare with "
                       "NPR", parse=arch_name, check=known_arch)
    real_dir: Path | None = option(None, "your own folder of photographs instead of the packaged ones")
    retrain: bool = option(False, "train again even if this detector exists")
    checkpoints_dir: Path = option(Path("./checkpoints"), "the detector goes to <checkpoints_dir>/<run>/, where "
                                   "<run> is quickstart_<size>_seed<seed>[_bench<bench_seed>][_<arch>]")
    results_dir: Path = option(Path("results"), "the tables go to <results_dir>/<run>/")

    def __post_init__(self) -> None:
        super().__post_init__()
        tower = family(self.arch).tower
        if tower is not None:
            raise ConfigError(f"--arch {self.arch}: the mini-benchmark trains every detector from scratch, "
                              f"offline; {self.arch} is a head over the frozen {tower.name}, which needs its "
                              f"download (`{tower.get}`) and 224 px inputs, so the quickstart cannot train it "
                              f"(docs/detectors.md)")

    @property
    def run_name(self) -> str:
        bench = f"_bench{self.bench_seed}" if self.changed("bench_seed") else ""
        arch = f"_{self.arch}" if self.changed("arch") else ""
        return f"quickstart_{self.size}_seed{self.seed}{bench}{arch}"


def train_config(cfg: QuickstartConfig) -> TrainConfig:
    """The detector's training run for this quickstart."""
    preset = PRESETS[cfg.size]
    return TrainConfig.from_flags(
        dataroot=cfg.root, name=cfg.run_name, checkpoints_dir=cfg.checkpoints_dir, arch=cfg.arch, no_pretrained=True,
        no_resize=True, crop_size=preset.crop_size, batch_size=preset.batch_size, lr=preset.lr, epochs=preset.epochs,
        **MINI_RECIPE, swa_epochs=preset.swa_epochs, blur_prob=BLUR_JPG_PROB, jpg_prob=BLUR_JPG_PROB,
        jpg_method=("cv2", "pil"), jpg_qual=(30, 100), loss_freq=20, seed=cfg.seed, test_no_crop=True, **cfg.runtime)


def _train_detector(cfg: QuickstartConfig, manifest: dict[str, Any]) -> Path:
    """The run's best checkpoint: trained now, or reused when it was trained, to the end, with this recipe on
    this very benchmark build."""
    train_cfg = train_config(cfg)
    run_dir = train_cfg.run_dir
    stamp = run_dir / "benchmark_manifest.json"
    if run_dir.exists() and not cfg.retrain:
        if stamp.is_file() and json.loads(stamp.read_text()) == manifest and completed_run(train_cfg):
            print(f"detector: reusing {run_dir / 'best.pth'} (trained on this benchmark; --retrain to train again)")
            return run_dir / "best.pth"
        raise UserError(f"{run_dir} holds an unfinished run, or one trained with other settings or on another "
                        f"benchmark build; pass --retrain to replace it")
    if run_dir.exists():
        print(f"detector: --retrain: removing {run_dir}")
        shutil.rmtree(run_dir)
    print("detector: python train.py " + " ".join(command_line(train_cfg)), flush=True)
    train(train_cfg)
    stamp.write_text(json.dumps(manifest, indent=2) + "\n")
    return run_dir / "best.pth"


def _table(rows: list[dict[str, Any]], manifest: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    train_generator = manifest["settings"]["train_generator"]
    table = []
    for row in rows:
        if row["set"] == "mean":
            continue
        base = manifest["baselines"][row["set"]]
        table.append({"generator": row["set"], "role": "training" if row["set"] == train_generator else "unseen",
                      "n_real": row["n_real"], "n_fake": row["n_fake"], "ap": row["ap"], "acc": row["acc"],
                      "acc_calibrated": row["acc_calibrated"], **{k: base[k] for k in BASELINES}})
    header = ["generator", "role", "real/fake", "detector AP %", "acc %", "acc (calibrated) %",
              *(f"{name} AP %" for name in BASELINES.values())]
    body = [[r["generator"], r["role"], f"{r['n_real']}/{r['n_fake']}", f"{100 * r['ap']:.1f}",
             f"{100 * r['acc']:.1f}", f"{100 * r['acc_calibrated']:.1f}", *(f"{100 * r[k]:.1f}" for k in BASELINES)]
            for r in table]
    return table, markdown_table(header, body)


def _typical_images(scores: Path, test_set: str) -> dict[str, str]:
    """The real and the fake image of ``test_set`` whose score is the median of its label's (lower middle)."""
    with open(scores, newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["set"] == test_set]
    typical = {}
    for label, name in (("0", "real"), ("1", "fake")):
        ranked = sorted((float(row["prob"]), row["path"]) for row in rows if row["label"] == label)
        typical[name] = ranked[(len(ranked) - 1) // 2][1]
    return typical


def run_quickstart(cfg: QuickstartConfig) -> list[dict[str, Any]]:
    start = time.perf_counter()
    bench = dataclasses.replace(PRESETS[cfg.size].bench, seed=cfg.bench_seed,
                                real_dir=None if cfg.real_dir is None else str(cfg.real_dir))
    print(f"quickstart: the paper's experiment in miniature. A small detector learns one toy generator's "
          f"fingerprint on {bench.size} px crops of packaged photos and is tested on three generators it never saw; "
          f"it shows the method at work, and is not meant for images from elsewhere.\n", flush=True)
    manifest = build(cfg.root, bench)
    built = time.perf_counter()
    checkpoint = _train_detector(cfg, manifest)
    trained = time.perf_counter()

    name = checkpoint.parent.name
    eval_cfg = EvalConfig(dataroot=cfg.root / "test", model_path=checkpoint,
                          sets=(bench.train_generator, *bench.test_generators), no_crop=True,
                          calibrate_on=str(cfg.root / "val"), overwrite=True, results_dir=cfg.results_dir, name=name,
                          batch_size=64, **cfg.runtime)
    rows = evaluate(eval_cfg)
    table, text = _table(rows, manifest)
    out_dir = eval_cfg.out_dir
    write_csv(out_dir / "quickstart.csv", table, list(table[0]))
    elapsed = {"build_s": built - start, "train_s": trained - built, "eval_s": time.perf_counter() - trained}
    times = ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in elapsed.items())
    parameters = sum(p.numel() for p in build_model(cfg.arch, pretrained=False).parameters())
    (out_dir / "quickstart.md").write_text(
        f"# Mini-benchmark ({cfg.size}, build seed {cfg.bench_seed}, training seed {cfg.seed})\n\nDetector: "
        f"{cfg.arch} from scratch ({parameters:,} parameters), Blur+JPEG "
        f"({BLUR_JPG_PROB}), trained on `{bench.train_generator}` fakes. Trivial baselines: one statistic per image, "
        f"best direction.\n\n{text}\n\nTime: {times}.\n")
    print(f"\n{text}\n\nAP ranks every test image; accuracy calls an image synthetic above 0.5, the calibrated one "
          f"above a threshold chosen on the validation photos. The detector trains on "
          f"{train_config(cfg).augment.crop_size} px crops and is validated and tested on whole {bench.size} px "
          f"images.\n")

    for label, image in _typical_images(out_dir / "scores.csv", bench.train_generator).items():
        print(f"demo on a typical {label} test image (the median score of its label): {image}")
        prob = float(run_demo(DemoConfig(file=image, model_path=checkpoint, no_crop=True, **cfg.runtime)).probs[0])
        if (prob > 0.5) != (label == "fake"):
            print(f"  wrong at 50%: this image is {label}. Half of the {label} {bench.train_generator} test images "
                  f"score {'higher' if label == 'real' else 'lower'}; AP, which needs no threshold, is the measure.")
    print(f"\nquickstart done in {time.perf_counter() - start:.0f} s ({times}); results in {out_dir}\n"
          f"Use this detector: python eval.py -m {checkpoint} --dataroot {cfg.root / 'test'}   |   "
          f"python demo.py -m {checkpoint} -f IMAGE_OR_FOLDER")
    return table
