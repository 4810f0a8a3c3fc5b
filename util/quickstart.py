"""quickstart.py: the whole method on a CPU with no downloads.

Builds (or reuses) the mini-benchmark (``data.minibench``), trains the detector on the training generator with
the paper's loop and augmentation, evaluates every generator with eval.py's code next to the trivial baselines,
and runs the demo on one real and one fake test image.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.minibench import MiniConfig, build
from options import parse_demo_options, parse_eval_options, parse_train_options
from options.options import runtime_flags
from util.demo import run_demo
from util.engine import completed_run, train
from util.errors import UserError
from util.evaluation import evaluate
from util.report import markdown_table, write_csv


@dataclass(frozen=True)
class Preset:
    """A benchmark size and the training that suits it. The detector trains on random crops (a fingerprint is
    local, and small crops make CPU steps cheap) and is evaluated on whole images."""

    bench: MiniConfig
    crop_size: int
    epochs: int  # at most: the paper's schedule (LR / 10 after `patience` epochs without gain) usually stops sooner
    batch_size: int
    lr: float = 3e-4  # from scratch; 1e-3 was worse on the default size (test AP 0.80 on the training generator)
    patience: int = 3


PRESETS = {
    # For tests: seconds, unmatched (data.minibench.MiniConfig.match).
    "tiny": Preset(MiniConfig(size=32, train_per_class=40, val_per_class=10, test_per_set=20, generator_steps=40,
                              generator_width=16, match=False, max_baseline_ap=1.0),
                   crop_size=24, epochs=3, batch_size=16, lr=1e-3),
    "small": Preset(MiniConfig(train_per_class=300, val_per_class=50, test_per_set=100, generator_steps=200),
                    crop_size=32, epochs=8, batch_size=32),
    # Batch 64 and LR drops matter: batch 32 for 12 epochs at a constant LR gave AP 0.91 on the training generator.
    "default": Preset(MiniConfig(train_per_class=800, val_per_class=100), crop_size=32, epochs=30, batch_size=64),
}
BLUR_JPG_PROB = "0.1"  # the paper's Blur+JPEG (0.1) model


def _train_detector(opt: argparse.Namespace, preset: Preset, manifest: dict[str, Any]) -> Path:
    """The run's best checkpoint: trained now, or reused when it was trained, to the end, with this recipe on
    this very benchmark build."""
    name = f"quickstart_{opt.size}_seed{opt.seed}"
    run_dir = opt.checkpoints_dir / name
    stamp = run_dir / "benchmark_manifest.json"
    args = ["--dataroot", str(opt.root), "--name", name, "--checkpoints_dir", str(opt.checkpoints_dir),
            "--arch", "resnet18", "--no_pretrained", "--no_resize", "--crop_size", str(preset.crop_size),
            "--batch_size", str(preset.batch_size), "--lr", str(preset.lr), "--epochs", str(preset.epochs),
            "--patience", str(preset.patience), "--blur_prob", BLUR_JPG_PROB, "--blur_sig", "0.0,3.0",
            "--jpg_prob", BLUR_JPG_PROB, "--jpg_method", "cv2,pil", "--jpg_qual", "30,100", "--loss_freq", "20",
            "--seed", str(opt.seed), *runtime_flags(opt)]
    train_opt = parse_train_options(args)
    if run_dir.exists() and not opt.retrain:
        if stamp.is_file() and json.loads(stamp.read_text()) == manifest and completed_run(train_opt):
            print(f"detector: reusing {run_dir / 'best.pth'} (trained on this benchmark; --retrain to train again)")
            return run_dir / "best.pth"
        raise UserError(f"{run_dir} holds an unfinished run, or one trained with other settings or on another "
                        f"benchmark build; pass --retrain to replace it")
    if run_dir.exists():
        print(f"detector: --retrain: removing {run_dir}")
        shutil.rmtree(run_dir)
    print("detector: python train.py " + " ".join(args), flush=True)
    train(train_opt)
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
                      "acc_calibrated": row["acc_calibrated"], "sharpness_ap": base["sharpness_ap"],
                      "colour_ap": base["colour_ap"]})
    header = ["generator", "role", "real/fake", "detector AP %", "acc %", "acc (calibrated) %",
              "sharpness AP %", "mean colour AP %"]
    body = [[r["generator"], r["role"], f"{r['n_real']}/{r['n_fake']}", f"{100 * r['ap']:.1f}",
             f"{100 * r['acc']:.1f}", f"{100 * r['acc_calibrated']:.1f}", f"{100 * r['sharpness_ap']:.1f}",
             f"{100 * r['colour_ap']:.1f}"] for r in table]
    return table, markdown_table(header, body)


def run_quickstart(opt: argparse.Namespace) -> list[dict[str, Any]]:
    start = time.perf_counter()
    preset = PRESETS[opt.size]
    cfg = dataclasses.replace(preset.bench, seed=opt.seed, real_dir=None if opt.real_dir is None else str(opt.real_dir))
    manifest = build(opt.root, cfg)
    built = time.perf_counter()
    checkpoint = _train_detector(opt, preset, manifest)
    trained = time.perf_counter()

    generators = [cfg.train_generator, *cfg.test_generators]
    name = checkpoint.parent.name
    rows = evaluate(parse_eval_options([
        "--dataroot", str(opt.root / "test"), "--model_path", str(checkpoint), "--sets", ",".join(generators),
        "--no_crop", "--calibrate_on", str(opt.root / "val"), "--overwrite", "--results_dir",
        str(opt.results_dir), "--name", name, "--batch_size", "64", *runtime_flags(opt)]))
    table, text = _table(rows, manifest)
    out_dir = opt.results_dir / name
    write_csv(out_dir / "quickstart.csv", table, list(table[0]))
    elapsed = {"build_s": built - start, "train_s": trained - built, "eval_s": time.perf_counter() - trained}
    times = ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in elapsed.items())
    (out_dir / "quickstart.md").write_text(
        f"# Mini-benchmark ({opt.size}, seed {opt.seed})\n\nDetector: ResNet-18 from scratch, Blur+JPEG "
        f"({BLUR_JPG_PROB}), trained on `{cfg.train_generator}` fakes. Trivial baselines: one statistic per image, "
        f"best direction.\n\n{text}\n\nTime: {times}.\n")
    print(f"\n{text}\n")

    test_set = opt.root / "test" / cfg.train_generator
    for label in ("0_real", "1_fake"):
        image = sorted((test_set / label).iterdir())[0]
        print(f"demo: {image}")
        run_demo(parse_demo_options(["-f", str(image), "-m", str(checkpoint), *runtime_flags(opt)]))
    print(f"\nquickstart done in {time.perf_counter() - start:.0f} s ({times}); results in {out_dir}")
    return table
