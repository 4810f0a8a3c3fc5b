"""demo.py: the probability that one image, or each image of a folder or glob, is synthetic."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from contextlib import ExitStack, closing
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from commands.configs import DemoConfig
from data import MAX_PIXELS, BadImage, Sample, is_set_folder, load_rgb, scan_folder
from data.datasets import image_extensions, left_out_note, walk_files, walked_samples
from engine.configs import resolve_workers
from engine.inference import (
    Detector,
    ProtocolRequest,
    Scored,
    load_detector,
    memory_budget,
    score_sets,
    set_precision,
    size_notes,
)
from util.distributed import resolve_device
from util.errors import Interrupted, UserError
from util.metrics import binary_metrics
from util.report import CsvStream, warned_note

UNLABELED = -1
# Images a folder's table and --out file gain at a time: an interrupt loses at most this many, and whole images,
# batched by size within a part, still find their equals in it.
PART = 256


def is_single_file(target: str) -> bool:
    """``-f`` names one file (a broken symlink or a FIFO too: loading it then says what is wrong)."""
    return os.path.lexists(target) and not Path(target).is_dir()


def collect(target: str, max_pixels: int = MAX_PIXELS) -> list[Sample]:
    """The images named by ``-f``: a file, a folder (labels when it has 0_real/1_fake), or a glob pattern."""
    path = Path(target)
    if is_single_file(target):
        load_rgb(target, max_pixels)  # decoded once more to score it, but a bad file fails before the model loads
        return [Sample(target, UNLABELED, "")]
    if path.is_dir():
        others = walk_files(path).others
        samples = scan_folder(path) if is_set_folder(path) else walked_samples(path, UNLABELED)
    elif glob.has_magic(target):
        matches = sorted(p for p in glob.glob(target, recursive=True) if not Path(p).is_dir())
        others = [p for p in matches if not p.lower().endswith(image_extensions())]
        samples = [Sample(p, UNLABELED, "") for p in matches if p not in set(others)]
    else:
        raise UserError(f"{target}: no such file or folder")
    note = left_out_note(others)
    if note:
        print(f"{target}: {note}")
    if not any(s.refused is None for s in samples):
        raise UserError(f"{target}: no images found (extensions: {' '.join(image_extensions())})")
    return samples


def run_demo(cfg: DemoConfig) -> Scored:
    max_pixels = int(cfg.max_megapixels * 1e6)
    samples = collect(cfg.file, max_pixels)
    device = resolve_device(cfg.device)
    set_precision(device, cfg.amp)
    detector = load_detector(cfg.model_path, cfg.arch, device,
                             ProtocolRequest(crop_size=cfg.crop, no_crop=cfg.no_crop, demo=True),
                             allow_nonfinite=cfg.allow_nonfinite)
    print(f"test protocol: {detector.protocol.describe()} ({detector.protocol_source})")
    for note in size_notes(cfg.file, samples, detector.protocol, detector.family):
        print(note)
    single = is_single_file(cfg.file)
    done: list[Scored] = []
    skipped: list[tuple[Sample, str]] = []
    try:
        for part, unreadable in _scored_parts(cfg, detector, samples, single, device, max_pixels):
            done.append(part)
            skipped += unreadable
    except KeyboardInterrupt:
        count = sum(len(part.samples) for part in done) + len(skipped)
        kept = f"; {cfg.out} holds their scores" if cfg.out is not None and done else ""
        raise Interrupted(f"interrupted after {count} of {plural(len(samples), 'image')}{kept}") from None
    scored = Scored("score", [s for part in done for s in part.samples],
                    np.concatenate([part.logits for part in done]), sum(part.warnings for part in done))
    if single:
        prob = scored.probs[0]
        print(f"probability of being synthetic: {100 * prob:.2f}% ({verdict(prob, cfg.threshold)})")
    else:
        _summary(scored, skipped, cfg.threshold)
    if scored.warnings:
        print(f"note: {warned_note(scored.warnings)}")
    if skipped and cfg.strict:
        raise UserError(f"{len(skipped)} images could not be read; --strict makes that an error")
    return scored


def _scored_parts(cfg: DemoConfig, detector: Detector, samples: list[Sample], single: bool, device: torch.device,
                  max_pixels: int) -> Iterator[tuple[Scored, list[tuple[Sample, str]]]]:
    """``samples`` scored a part at a time (one loader for all): each part, with its unreadable images, once it is
    printed (for a folder) and written to ``--out``, so that an interrupted folder keeps its finished rows."""
    width = max([len(s.path) for s in samples] + [4])
    if not single:
        print(f"{'path':<{width}}  synthetic  call")
    many = len(samples) > 1
    parts = [(str(k), samples[k : k + PART]) for k in range(0, len(samples), PART)]
    with ExitStack() as files:
        rows_file = skipped_file = None
        scoring = files.enter_context(closing(score_sets(  # an interrupt stops its loader's workers now
            detector.model, parts, detector.protocol.transform(), normalization=detector.normalization,
            batch_size=cfg.batch_size, num_workers=resolve_workers(cfg.num_workers, device) if many else 0,
            device=device, amp=cfg.amp, progress=many, max_pixels=max_pixels,
            budget=memory_budget(device, cfg.memory_budget), desc="score")))
        for part, unreadable in scoring:
            if single and unreadable:  # the file passed the check in collect() but failed to decode in full
                raise BadImage(unreadable[0][0].path, unreadable[0][1])
            if not single:
                _print_rows(part, unreadable, width, cfg.threshold)
            if cfg.out is not None:
                if rows_file is None:
                    rows_file = files.enter_context(CsvStream(cfg.out, ("path", "label", "logit", "prob")))
                    skipped_csv(cfg.out).unlink(missing_ok=True)  # an earlier run's list would pass for this one's
                rows_file.write({**row, "label": None if row["label"] == UNLABELED else row["label"]}
                                for row in part.rows())
                if unreadable:
                    skipped_file = skipped_file or files.enter_context(
                        CsvStream(skipped_csv(cfg.out), ("path", "reason")))
                    skipped_file.write({"path": s.path, "reason": reason} for s, reason in unreadable)
            yield part, unreadable


def skipped_csv(out: Path) -> Path:
    """Where ``--out FILE.csv`` lists the unreadable images: ``FILE_skipped.csv``."""
    return out.with_name(out.stem + "_skipped.csv")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def verdict(prob: float, threshold: float) -> str:
    """The call at ``threshold`` (fake when the probability exceeds it, as accuracy counts it)."""
    return f"{'synthetic' if prob > threshold else 'real'} at threshold {100 * threshold:g}%"


def _print_rows(scored: Scored, skipped: list[tuple[Sample, str]], width: int, threshold: float) -> None:
    for sample, prob in zip(scored.samples, scored.probs, strict=True):
        tqdm.write(f"{sample.path:<{width}}  {100 * prob:8.2f}%  {'synthetic' if prob > threshold else 'real'}")
    for sample, reason in skipped:
        tqdm.write(f"{sample.path:<{width}}  skipped: {reason}")


def _summary(scored: Scored, skipped: list[tuple[Sample, str]], threshold: float) -> None:
    probs, labels = scored.probs, scored.labels
    note = f"{len(skipped)} unreadable skipped" if skipped else ""
    if len(labels) and (labels != UNLABELED).all():
        m = binary_metrics(labels, probs, threshold)
        print(f"{plural(len(labels), 'image')} ({int((labels == 0).sum())} real, {int((labels == 1).sum())} fake"
              f"{'; ' + note if note else ''}): AP {100 * m['ap']:.2f}%, accuracy at threshold {100 * threshold:g}% "
              f"{100 * m['acc']:.2f}% (real {100 * m['r_acc']:.2f}%, fake {100 * m['f_acc']:.2f}%)")
    else:
        print(f"{plural(len(labels), 'image')}{f' ({note})' if note else ''}, {int((probs > threshold).sum())} "
              f"called synthetic (probability > {100 * threshold:g}%)")
