"""demo.py: the probability that one image, or each image of a folder or glob, is synthetic."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from data import BadImage, EvalTransform, Sample, is_set_folder, list_images, load_rgb, scan_folder
from data.datasets import IMAGE_EXTENSIONS
from engine.inference import Runtime, Scored, load_detector, score_samples
from util.distributed import resolve_device
from util.errors import UserError
from util.metrics import binary_metrics
from util.report import write_csv

UNLABELED = -1


@dataclass(frozen=True, kw_only=True)
class DemoConfig(Runtime):
    """One demo.py run. Field names are demo.py's flags."""

    file: str = ""
    """An image, a folder (a 0_real/1_fake folder also reports AP) or a glob pattern."""
    model_path: Path = Path("weights/blur_jpg_prob0.5.pth")
    arch: str | None = None
    """Backbone (None: the one saved in the checkpoint, else resnet50)."""
    crop: int | None = None
    """Center-crop to this size first (None: the whole image, as the authors' demo)."""
    out: Path | None = None
    """Also write path,label,logit,prob rows to this CSV."""
    batch_size: int = 16
    strict: bool = False
    """In a folder, an unreadable image is an error (exit status 2)."""


def is_single_file(target: str) -> bool:
    """``-f`` names one file (a broken symlink or a FIFO too: loading it then says what is wrong)."""
    return os.path.lexists(target) and not Path(target).is_dir()


def collect(target: str) -> list[Sample]:
    """The images named by ``-f``: a file, a folder (labels when it has 0_real/1_fake), or a glob pattern."""
    path = Path(target)
    if is_single_file(target):
        load_rgb(target)  # decoded once more to score it, but a bad file fails before the model loads
        return [Sample(target, UNLABELED, "")]
    if path.is_dir():
        if is_set_folder(path):
            return scan_folder(path)
        samples = [Sample(p, UNLABELED, "") for p in list_images(path)]
    elif glob.has_magic(target):
        matches = sorted(p for p in glob.glob(target, recursive=True) if p.lower().endswith(IMAGE_EXTENSIONS))
        samples = [Sample(p, UNLABELED, "") for p in matches if not Path(p).is_dir()]
    else:
        raise UserError(f"{target}: no such file or folder")
    if not samples:
        raise UserError(f"{target}: no images found (extensions: {' '.join(IMAGE_EXTENSIONS)})")
    return samples


def run_demo(cfg: DemoConfig) -> Scored:
    samples = collect(cfg.file)
    device = resolve_device(cfg.device)
    model = load_detector(cfg.model_path, cfg.arch, device)
    scored, skipped = score_samples(model, samples, EvalTransform(crop_size=cfg.crop), batch_size=cfg.batch_size,
                                    num_workers=cfg.num_workers if len(samples) > 1 else 0, device=device,
                                    amp=cfg.amp, progress=len(samples) > 1)
    if is_single_file(cfg.file):
        if skipped:  # the file passed the check in collect() but failed to decode in full
            raise BadImage(skipped[0][0].path, skipped[0][1])
        print(f"probability of being synthetic: {100 * scored.probs[0]:.2f}%")
    else:
        _report(scored, skipped)
    if cfg.out is not None:
        rows = [{**row, "label": None if row["label"] == UNLABELED else row["label"]} for row in scored.rows()]
        write_csv(cfg.out, rows, ("path", "label", "logit", "prob"))
        if skipped:
            write_csv(cfg.out.with_name(cfg.out.stem + "_skipped.csv"),
                      [{"path": s.path, "reason": reason} for s, reason in skipped], ("path", "reason"))
    if skipped and cfg.strict:
        raise UserError(f"{len(skipped)} images could not be read; --strict makes that an error")
    return scored


def _report(scored: Scored, skipped: list[tuple[Sample, str]]) -> None:
    probs, labels = scored.probs, scored.labels
    width = max([len(s.path) for s in scored.samples] + [len(s.path) for s, _ in skipped] + [4])
    print(f"{'path':<{width}}  synthetic")
    for sample, prob in zip(scored.samples, probs, strict=True):
        print(f"{sample.path:<{width}}  {100 * prob:8.2f}%")
    for sample, reason in skipped:
        print(f"{sample.path:<{width}}  skipped: {reason}")
    note = f"{len(skipped)} unreadable skipped" if skipped else ""
    if len(labels) and (labels != UNLABELED).all():
        m = binary_metrics(labels, probs)
        print(f"{len(labels)} images ({int((labels == 0).sum())} real, {int((labels == 1).sum())} fake"
              f"{'; ' + note if note else ''}): AP {100 * m['ap']:.2f}%, accuracy {100 * m['acc']:.2f}% "
              f"(real {100 * m['r_acc']:.2f}%, fake {100 * m['f_acc']:.2f}%)")
    else:
        print(f"{len(labels)} images{f' ({note})' if note else ''}, {int((probs > 0.5).sum())} called synthetic "
              f"(probability > 50%)")
