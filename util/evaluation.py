"""Scoring images with a trained detector, and the Table 2 evaluation built on it (see eval.py).

Files written to ``<results_dir>/<name>/`` (``--name`` defaults to the checkpoint file name):

- ``scores.csv``: one row per image (``set,subclass,path,label,logit,prob``), streamed set by set;
- ``skipped.csv``: the images that could not be read (``set,path,label,reason``), left out of every metric;
- ``summary.csv`` / ``summary.md``: one row per set and a ``mean`` row (fractions / percent);
- ``calibration.json``: the threshold chosen on ``--calibrate_on``, when requested;
- ``sweep_<kind>.csv``, ``sweep_<kind>_scores.csv``, ``sweep_<kind>.md``, ``sweep_<kind>.png`` with ``--sweep``;
- ``opt.json``: the resolved options.

An earlier run's files in that folder are an error unless ``--overwrite``, which deletes them first.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import expit
from torch import nn
from torch.utils.data import DataLoader

from data import (
    PROTOCOLS,
    BadImage,
    DatasetError,
    EvalTransform,
    ImageDataset,
    Perturbation,
    Protocol,
    Sample,
    SizeGroupedBatches,
    collate,
    find_test_sets,
    image_size,
    scan_folder,
)
from networks import build_model
from options.options import SWEPT_FLAG, save_options
from util.checkpoint import CheckpointError, extract_state_dict, load_checkpoint, load_weights
from util.distributed import resolve_device
from util.engine import memory_format, predict
from util.errors import Interrupted, UserError
from util.metrics import accuracy, binary_metrics, calibrate_threshold
from util.report import (
    SCORE_COLUMNS,
    SKIPPED_COLUMNS,
    SUMMARY_COLUMNS,
    CsvStream,
    claim_folder,
    plot_sweep,
    summary_markdown,
    sweep_markdown,
    write_csv,
)


# ------------------------------------------------------------------------------------------------ scoring
def load_detector(path: Path, arch: str | None, device: torch.device) -> nn.Module:
    """The detector in eval mode on ``device``; ``arch`` defaults to the checkpoint's own, else ResNet-50."""
    if not Path(path).is_file():
        raise CheckpointError(f"{path}: no such checkpoint file (the released weights: `python -m weights.download`)")
    checkpoint = load_checkpoint(path)
    arch = arch or checkpoint.get("options", {}).get("arch", "resnet50")
    model = build_model(arch, pretrained=False)
    load_weights(model, extract_state_dict(checkpoint), str(path), arch)
    return model.to(device, memory_format=memory_format(device)).eval()


@dataclass(frozen=True)
class Scored:
    """Per-image detector outputs for one set, in sample order."""

    name: str
    samples: list[Sample]
    logits: np.ndarray

    @cached_property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)

    @cached_property
    def probs(self) -> np.ndarray:
        # float32 sigmoid, the same values the authors' code passes to scikit-learn.
        return expit(self.logits.astype(np.float32))

    def rows(self) -> list[dict[str, Any]]:
        return [{"set": self.name, "subclass": s.subclass, "path": s.path, "label": s.label,
                 "logit": float(logit), "prob": float(prob)}
                for s, logit, prob in zip(self.samples, self.logits, self.probs, strict=True)]


def score_samples(model: nn.Module, samples: Sequence[Sample], transform: EvalTransform, *, batch_size: int,
                  num_workers: int, device: torch.device, amp: str, desc: str = "score",
                  progress: bool = True) -> tuple[Scored, list[tuple[Sample, str]]]:
    """Logits of the readable samples (in order), and (sample, reason) for each unreadable one. Whole images
    (no crop) are batched by size instead of one at a time."""
    skipped: list[tuple[Sample, str]] = []
    if transform.crop_size is None:
        readable, sizes = [], []
        for sample in samples:
            try:
                sizes.append(transform.output_size(*image_size(sample.path)))
                readable.append(sample)
            except BadImage as err:
                skipped.append((sample, err.reason))
    else:
        readable, sizes = list(samples), [(transform.crop_size, transform.crop_size)] * len(samples)
    logits = np.empty(0, dtype=np.float32)
    kept: list[Sample] = []
    if readable:
        loader = DataLoader(ImageDataset(readable, transform), batch_sampler=SizeGroupedBatches(sizes, batch_size),
                            num_workers=num_workers, collate_fn=collate, pin_memory=device.type == "cuda")
        predictions = predict(model, loader, device, amp, progress=progress, desc=desc)
        kept, logits = [readable[i] for i in predictions.indices], predictions.logits
        skipped += [(readable[i], reason) for i, reason in predictions.skipped.items()]
    return Scored(desc, kept, logits), sorted(skipped, key=lambda item: item[0].path)


# --------------------------------------------------------------------------------------------- summaries
def summarize(scored: Sequence[Scored], threshold: float | None = None,
              in_sample: str | None = None) -> list[dict[str, Any]]:
    """One row per set and a ``mean`` row (set counts summed, metrics averaged over the sets that define them).

    ``acc_calibrated`` uses ``threshold``; it stays empty for the set named ``in_sample``, on which the threshold
    was chosen, and everywhere when no threshold is given.
    """
    rows = [set_row(s, threshold, in_sample) for s in scored]
    return [*rows, _mean_row(rows, "mean")]


def set_row(scored: Scored, threshold: float | None = None, in_sample: str | None = None,
            n_skipped: int = 0) -> dict[str, Any]:
    """The summary row of one set (see ``summarize``); ``n_skipped`` unreadable images were left out."""
    labels, probs = scored.labels, scored.probs
    calibrated = None if threshold is None or scored.name == in_sample else accuracy(labels, probs, threshold)
    return {"set": scored.name, "n_real": int((labels == 0).sum()), "n_fake": int((labels == 1).sum()),
            "n_skipped": n_skipped, **binary_metrics(labels, probs), "acc_calibrated": calibrated}


def _mean_row(rows: Sequence[dict[str, Any]], name: str) -> dict[str, Any]:
    mean: dict[str, Any] = {key: sum(r[key] for r in rows) for key in SUMMARY_COLUMNS[1:4]}
    mean["set"] = name
    for key in SUMMARY_COLUMNS[4:]:
        values = [r[key] for r in rows if r[key] is not None and not math.isnan(r[key])]
        defined = any(r[key] is not None for r in rows)
        mean[key] = float(np.mean(values)) if values else (math.nan if defined else None)
    return mean


def protocol_mean(rows: Sequence[dict[str, Any]], protocol: Protocol) -> dict[str, Any] | None:
    """The mean over the protocol's headline sets (Table 2's "mean" for the paper), when all were evaluated."""
    by_name = {r["set"]: r for r in rows}
    if not all(n in by_name for n in protocol.mean_sets):
        return None
    return _mean_row([by_name[n] for n in protocol.mean_sets], f"mean ({len(protocol.mean_sets)} sets)")


# ------------------------------------------------------------------------------------------------- eval.py
def _transform(opt: argparse.Namespace, perturbation: Perturbation) -> EvalTransform:
    return EvalTransform(crop_size=None if opt.no_crop else opt.crop_size, resize=opt.resize,
                         perturbation=perturbation)


def _perturbation(opt: argparse.Namespace) -> Perturbation:
    return Perturbation(scale=opt.resize_scale, blur_sigma=opt.blur_sigma,
                        jpeg=None if opt.jpeg_quality is None else (opt.jpeg_method, opt.jpeg_quality))


def _swept(opt: argparse.Namespace, kind: str, value: float) -> Perturbation:
    """The perturbation of the options with the swept kind's flag set to ``value``."""
    return _perturbation(argparse.Namespace(**{**vars(opt), SWEPT_FLAG[kind]: value}))


def _calibration_folder(opt: argparse.Namespace) -> Path:
    for candidate in (opt.dataroot / opt.calibrate_on, Path(opt.calibrate_on)):
        if candidate.is_dir():
            return candidate
    raise DatasetError(f"--calibrate_on {opt.calibrate_on}: neither a set under {opt.dataroot} nor a folder")


class Evaluator:
    """The model, the test sets and the options of one eval.py run; the model is loaded once for all sets."""

    def __init__(self, opt: argparse.Namespace) -> None:
        self.opt = opt
        self.set_folders = find_test_sets(opt.dataroot, opt.sets)
        if opt.sets is None and self.set_folders[0][1] != opt.dataroot:  # a folder of sets, all taken
            names = {name for name, _ in self.set_folders}
            ignored = sorted(p.name for p in opt.dataroot.iterdir() if p.is_dir() and p.name not in names)
            if ignored:
                print(f"ignored under {opt.dataroot} (no 0_real/1_fake folders): {', '.join(ignored)}")
        self.sets = [(name, scan_folder(path)) for name, path in self.set_folders]
        self.device = resolve_device(opt.device)
        self.model = load_detector(opt.model_path, opt.arch, self.device)
        self.out_dir = results_folder(opt)
        self.skipped: CsvStream | None = None  # skipped.csv, open while a run or sweep writes results
        self.unreadable: set[str] = set()  # their paths, each once however often it was tried

    def score(self, name: str, samples: list[Sample], perturbation: Perturbation, threshold: float | None = None,
              in_sample: str | None = None) -> tuple[Scored, dict[str, Any]]:
        """Scores of one set and its summary row (printed as the set finishes); unreadable images are logged."""
        opt = self.opt
        start = time.perf_counter()
        scored, skipped = score_samples(self.model, samples, _transform(opt, perturbation),
                                        batch_size=opt.batch_size, num_workers=opt.num_workers, device=self.device,
                                        amp=opt.amp, desc=name)
        assert self.skipped is not None, "score() runs inside evaluate(), which opens skipped.csv"
        self.skipped.write({"set": name, "path": s.path, "label": s.label, "reason": reason} for s, reason in skipped)
        self.unreadable.update(s.path for s, _ in skipped)
        row = set_row(scored, threshold, in_sample, n_skipped=len(skipped))
        note = f", {len(skipped)} unreadable skipped (skipped.csv)" if skipped else ""
        print(f"{name}: {len(scored.samples)} images, AP {100 * row['ap']:.1f}, acc {100 * row['acc']:.1f} "
              f"({len(samples) / (time.perf_counter() - start):.1f} images/s{note})", flush=True)
        return scored, row

    def calibrate(self) -> tuple[float | None, str | None]:
        """Threshold chosen on --calibrate_on (scored without test-time perturbations: it stands for the clean
        held-out data one has when deploying), and the name of the test set it came from, if any."""
        opt = self.opt
        if opt.calibrate_on is None:
            return None, None
        folder = _calibration_folder(opt)
        scored, _ = self.score("calibration", scan_folder(folder), Perturbation())
        threshold = calibrate_threshold(scored.labels, scored.probs)
        record = {"calibrate_on": str(folder), "threshold": threshold, "n_real": int((scored.labels == 0).sum()),
                  "n_fake": int((scored.labels == 1).sum()),
                  "acc_at_threshold": accuracy(scored.labels, scored.probs, threshold)}
        (self.out_dir / "calibration.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"calibrated threshold {threshold:.4g} on {folder}")
        in_sample = next((n for n, p in self.set_folders if p.resolve() == folder.resolve()), None)
        return threshold, in_sample

    def run(self) -> list[dict[str, Any]]:
        """Evaluate every set once (with the fixed perturbations, if any); write scores and summaries."""
        perturbation = _perturbation(self.opt)
        threshold, in_sample = self.calibrate()
        with CsvStream(self.out_dir / "scores.csv", SCORE_COLUMNS) as scores:
            rows = self._score_sets(perturbation, threshold, in_sample, scores, {})
        write_csv(self.out_dir / "summary.csv", rows, SUMMARY_COLUMNS)
        text = self._summary_text(rows, perturbation, threshold)
        (self.out_dir / "summary.md").write_text(text)
        print(text)
        return rows

    def _score_sets(self, perturbation: Perturbation, threshold: float | None, in_sample: str | None,
                    scores: CsvStream, extra: dict[str, Any]) -> list[dict[str, Any]]:
        """Score every set, streaming per-image rows (``extra`` columns first) to ``scores``; returns the summary
        rows, mean included."""
        rows = []
        for name, samples in self.sets:
            scored, row = self.score(name, samples, perturbation, threshold, in_sample)
            scores.write({**extra, **r} for r in scored.rows())
            rows.append(row)
        return [*rows, _mean_row(rows, "mean")]

    def _summary_text(self, rows: list[dict[str, Any]], perturbation: Perturbation, threshold: float | None) -> str:
        opt = self.opt
        resize = f"resize {opt.resize}" if opt.resize else "no resize"
        crop = "whole image" if opt.no_crop else f"center crop {opt.crop_size}"
        lines = [f"# {self.out_dir.name}", "",
                 f"Model `{opt.model_path}` on `{opt.dataroot}`: {resize}, {crop}, "
                 f"perturbation: {perturbation.describe()}.",
                 "Accuracies at threshold 0.5" + (f"; calibrated threshold {threshold:.4g} chosen on "
                                                  f"`{opt.calibrate_on}`." if threshold is not None else "."),
                 "", summary_markdown(rows, calibrated=threshold is not None)]
        name = opt.protocol or "wang2020"
        mean = protocol_mean(rows, PROTOCOLS[name])
        if mean is not None:
            lines += ["", f"Mean over the {len(PROTOCOLS[name].mean_sets)} sets of the {name} protocol: "
                          f"AP {100 * mean['ap']:.1f}, acc {100 * mean['acc']:.1f}."]
        return "\n".join(lines) + "\n"

    def sweep(self) -> list[dict[str, Any]]:
        """Evaluate every set at each value of the swept perturbation; write the table, scores and plot."""
        opt = self.opt
        kind, values = opt.sweep
        base = _perturbation(opt)
        threshold, in_sample = self.calibrate()
        rows, ap = [], {}
        with CsvStream(self.out_dir / f"sweep_{kind}_scores.csv", ("value", *SCORE_COLUMNS)) as scores:
            for value in values:
                perturbation = _swept(opt, kind, value)
                print(f"--- {kind} {value:g}: {perturbation.describe()}")
                for row in self._score_sets(perturbation, threshold, in_sample, scores, {"value": value}):
                    rows.append({"value": value, **row})
                    ap.setdefault(row["set"], []).append(row["ap"])
        write_csv(self.out_dir / f"sweep_{kind}.csv", rows, ("value", *SUMMARY_COLUMNS))
        text = sweep_markdown(kind, values, ap)
        (self.out_dir / f"sweep_{kind}.md").write_text(f"# {self.out_dir.name}: AP % under {kind}\n\n{text}\n")
        detail = f" ({opt.jpeg_method})" if kind == "jpeg" else ""
        plot_sweep(self.out_dir / f"sweep_{kind}.png", kind, values, ap,
                   title=f"{self.out_dir.name}: AP under {kind}{detail}"
                   + (f" (all images: {base.describe()})" if base != Perturbation() else ""))
        print(text)
        return rows


# Every file an eval.py run may write; --overwrite removes all of them first, so none is left from an older run.
RESULT_FILES = ("scores.csv", "summary.csv", "summary.md", "calibration.json", "opt.json", "skipped.csv",
                "sweep_*.csv", "sweep_*.md", "sweep_*.png")


def results_folder(opt: argparse.Namespace) -> Path:
    return opt.results_dir / (opt.name or opt.model_path.stem)


def evaluate(opt: argparse.Namespace) -> list[dict[str, Any]]:
    """eval.py: the summary rows (of every sweep value with --sweep); files as the module docstring says."""
    evaluator = Evaluator(opt)  # checks the sets and the checkpoint before any file is touched
    out_dir = evaluator.out_dir
    claim_folder(out_dir, RESULT_FILES, opt.overwrite)
    save_options(opt, out_dir / "opt.json")
    with CsvStream(out_dir / "skipped.csv", SKIPPED_COLUMNS) as evaluator.skipped:
        try:
            rows = evaluator.sweep() if opt.sweep is not None else evaluator.run()
        except KeyboardInterrupt:
            raise Interrupted(f"interrupted: {out_dir} holds the sets finished so far (scores.csv is valid, "
                              f"summary files are written at the end)") from None
    if evaluator.unreadable and opt.strict:
        raise UserError(f"{len(evaluator.unreadable)} images could not be read (listed in {out_dir / 'skipped.csv'}); "
                        f"--strict makes that an error")
    return rows
