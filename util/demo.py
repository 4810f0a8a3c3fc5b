"""demo.py: the probability that one image, or each image of a folder or glob, is synthetic."""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

from PIL import Image

from data import EvalTransform, Sample, is_set_folder, list_images, load_rgb, scan_folder
from data.datasets import IMAGE_EXTENSIONS
from util.distributed import resolve_device
from util.errors import UserError
from util.evaluation import Scored, load_detector, score_samples
from util.metrics import binary_metrics
from util.report import write_csv

UNLABELED = -1


def _check_readable(path: str) -> None:
    try:
        load_rgb(path)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise UserError(f"{path}: cannot read the image ({err})") from None


def collect(target: str) -> list[Sample]:
    """The images named by ``-f``: a file, a folder (labels when it has 0_real/1_fake), or a glob pattern."""
    path = Path(target)
    if path.is_file():
        _check_readable(target)  # decoded once more to score it, but a bad file fails before the model loads
        return [Sample(target, UNLABELED, "")]
    if path.is_dir():
        if is_set_folder(path):
            return scan_folder(path)
        samples = [Sample(p, UNLABELED, "") for p in list_images(path)]
    elif glob.has_magic(target):
        matches = sorted(p for p in glob.glob(target, recursive=True) if p.lower().endswith(IMAGE_EXTENSIONS))
        samples = [Sample(p, UNLABELED, "") for p in matches if Path(p).is_file()]
    else:
        raise UserError(f"{target}: no such file or folder")
    if not samples:
        raise UserError(f"{target}: no images found (extensions: {' '.join(IMAGE_EXTENSIONS)})")
    return samples


def run_demo(opt: argparse.Namespace) -> Scored:
    samples = collect(opt.file)
    device = resolve_device(opt.device)
    model = load_detector(opt.model_path, opt.arch, device)
    logits = score_samples(model, samples, EvalTransform(crop_size=opt.crop), batch_size=opt.batch_size,
                           num_workers=opt.num_workers if len(samples) > 1 else 0, device=device, amp=opt.amp,
                           progress=len(samples) > 1)
    scored = Scored("demo", samples, logits)
    probs, labels = scored.probs, scored.labels
    if Path(opt.file).is_file():
        print(f"probability of being synthetic: {100 * probs[0]:.2f}%")
    else:
        width = max(len(s.path) for s in samples)
        print(f"{'path':<{width}}  synthetic")
        for sample, prob in zip(samples, probs, strict=True):
            print(f"{sample.path:<{width}}  {100 * prob:8.2f}%")
        if (labels != UNLABELED).all():
            m = binary_metrics(labels, probs)
            print(f"{len(samples)} images ({int((labels == 0).sum())} real, {int((labels == 1).sum())} fake): "
                  f"AP {100 * m['ap']:.2f}%, accuracy {100 * m['acc']:.2f}% (real {100 * m['r_acc']:.2f}%, "
                  f"fake {100 * m['f_acc']:.2f}%)")
        else:
            print(f"{len(samples)} images, {int((probs > 0.5).sum())} called synthetic (probability > 50%)")
    if opt.out is not None:
        rows = [{**row, "label": None if row["label"] == UNLABELED else row["label"]} for row in scored.rows()]
        write_csv(opt.out, rows, ("path", "label", "logit", "prob"))
    return scored

