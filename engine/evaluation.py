"""The Table 2 evaluation: every set of a test suite (``data.suites``) scored with one loaded detector (see
eval.py).

Files written to ``<results_dir>/<name>/`` (``--name`` defaults to the checkpoint file name):

- ``scores.csv``: one row per image (``set,subclass,path,label,logit,prob``), streamed set by set;
- ``skipped.csv``: the images that could not be read (``set,path,label,reason``), left out of every metric;
- ``summary.csv`` / ``summary.md``: one row per set and a ``mean`` row (fractions / percent);
- ``calibration.json``: the threshold chosen on ``--calibrate_on``, when requested;
- ``sweep_<kind>.csv``, ``sweep_<kind>_scores.csv``, ``sweep_<kind>.md``, ``sweep_<kind>.png`` with ``--sweep``;
- ``opt.json``: the resolved options.

When that folder already holds a run's files, the results go to ``<name>_2`` (``_3``, ...) instead, unless
``--overwrite`` (which deletes the earlier files first) or ``--resume``.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from data import DatasetError, Perturbation, Sample, scan_folder
from data.suites import SUITES, LoadedSet, at_most
from engine.configs import SWEEPS, EvalConfig, resolve_workers
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
from util.metrics import accuracy, binary_metrics, calibrate_threshold
from util.records import config_dict, save_config
from util.report import (
    SCORE_COLUMNS,
    SKIPPED_COLUMNS,
    SUMMARY_COLUMNS,
    CsvStream,
    claim_folder,
    open_csv,
    plot_sweep,
    raw_names_note,
    summary_markdown,
    sweep_markdown,
    unused_folder,
    warned_note,
    write_csv,
)


# --------------------------------------------------------------------------------------------- summaries
def set_row(scored: Scored, *, threshold: float | None = None, in_sample: str | None = None,
            n_skipped: int = 0) -> dict[str, Any]:
    """The summary row of one set; ``n_skipped`` unreadable images were left out. ``acc_calibrated`` uses
    ``threshold``; it stays empty for the set named ``in_sample``, on which the threshold was chosen, and when no
    threshold is given."""
    labels, probs = scored.labels, scored.probs
    calibrated = None if threshold is None or scored.name == in_sample else accuracy(labels, probs, threshold)
    return {"set": scored.name, "n_real": int((labels == 0).sum()), "n_fake": int((labels == 1).sum()),
            "n_skipped": n_skipped, **binary_metrics(labels, probs), "acc_calibrated": calibrated}


def mean_row(rows: Sequence[dict[str, Any]], name: str = "mean") -> dict[str, Any]:
    """Set counts summed, metrics averaged over the sets that define them (nan where none does)."""
    mean: dict[str, Any] = {key: sum(r[key] for r in rows) for key in SUMMARY_COLUMNS[1:4]}
    mean["set"] = name
    for key in SUMMARY_COLUMNS[4:]:
        values = [r[key] for r in rows if r[key] is not None and not math.isnan(r[key])]
        defined = any(r[key] is not None for r in rows)
        mean[key] = float(np.mean(values)) if values else (math.nan if defined else None)
    return mean


def protocol_mean(rows: Sequence[dict[str, Any]], mean_sets: Sequence[str]) -> dict[str, Any] | None:
    """The mean over a protocol's or suite's headline sets (Table 2's "mean" for the paper), when all were
    evaluated."""
    by_name = {r["set"]: r for r in rows}
    if not all(n in by_name for n in mean_sets):
        return None
    return mean_row([by_name[n] for n in mean_sets], f"mean ({len(mean_sets)} sets)")


# ------------------------------------------------------------------------------------------------- eval.py
def _calibration_folder(cfg: EvalConfig) -> Path:
    assert cfg.calibrate_on is not None
    for candidate in (cfg.dataroot / cfg.calibrate_on, Path(cfg.calibrate_on)):
        if candidate.is_dir():
            return candidate
    raise DatasetError(f"--calibrate_on {cfg.calibrate_on}: neither a set under {cfg.dataroot} nor a folder")


class Evaluator:
    """One eval.py run over its test sets with one loaded model; unreadable images go to ``skipped``."""

    def __init__(self, cfg: EvalConfig, *, sets: list[LoadedSet], detector: Detector, device: torch.device,
                 skipped: CsvStream,
                 finished: dict[str, Scored] | None = None) -> None:
        self.cfg = cfg
        self.sets = sets
        self.detector = detector
        self.protocol = detector.protocol
        self.device = device
        # Resolved once: a sweep scores the sets several times, and every pass must batch them alike.
        self.workers = resolve_workers(cfg.num_workers, device)
        self.budget = memory_budget(device, cfg.memory_budget)
        self.skipped = skipped
        self.finished = finished or {}  # sets scored by the run this one resumes
        self.out_dir = cfg.out_dir
        self.unreadable: set[str] = set()  # their paths, each once however often it was tried

    def score(self, sets: list[tuple[str, list[Sample]]], perturbation: Perturbation, threshold: float | None = None,
              in_sample: str | None = None) -> Iterator[tuple[Scored, dict[str, Any]]]:
        """Scores of each set and its summary row, as each finishes (its line printed then); unreadable images are
        logged."""
        cfg = self.cfg
        for name, samples in sets:
            for note in size_notes(name, samples, self.protocol, self.detector.family):
                print(note)
        start = time.perf_counter()
        for (name, samples), (scored, skipped) in zip(sets, score_sets(
                self.detector.model, sets, self.protocol.transform(perturbation),
                normalization=self.detector.normalization, batch_size=cfg.batch_size, device=self.device,
                amp=cfg.amp, num_workers=self.workers, max_pixels=int(cfg.max_megapixels * 1e6), budget=self.budget),
                strict=True):
            self.skipped.write({"set": name, "path": s.path, "label": s.label, "reason": reason}
                               for s, reason in skipped)
            self.unreadable.update(s.path for s, _ in skipped)
            row = set_row(scored, threshold=threshold, in_sample=in_sample, n_skipped=len(skipped))
            note = f", {len(skipped)} unreadable skipped (skipped.csv)" if skipped else ""
            note += f", {warned_note(scored.warnings)}" if scored.warnings else ""
            now = time.perf_counter()
            tqdm.write(f"{name}: {len(scored.samples)} images, AP {100 * row['ap']:.1f}, acc {100 * row['acc']:.1f} "
                       f"({len(samples) / (now - start):.1f} images/s{note})")
            start = now
            yield scored, row

    def calibrate(self) -> tuple[float | None, str | None]:
        """Threshold chosen on --calibrate_on (scored without test-time perturbations: it stands for the clean
        held-out data one has when deploying), and the name of the test set it came from, if any."""
        if self.cfg.calibrate_on is None:
            return None, None
        folder = _calibration_folder(self.cfg)
        ((scored, _),) = self.score([("calibration", scan_folder(folder))], Perturbation())
        threshold = calibrate_threshold(scored.labels, scored.probs)
        record = {"calibrate_on": str(folder), "threshold": threshold, "n_real": int((scored.labels == 0).sum()),
                  "n_fake": int((scored.labels == 1).sum()),
                  "acc_at_threshold": accuracy(scored.labels, scored.probs, threshold)}
        (self.out_dir / "calibration.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"calibrated threshold {threshold:.4g} on {folder}")
        in_sample = next((n for n, path, _ in self.sets if path.resolve() == folder.resolve()), None)
        return threshold, in_sample

    def run(self) -> list[dict[str, Any]]:
        """Evaluate every set once (with the fixed perturbations, if any); write scores and summaries."""
        perturbation = self.cfg.perturbation()
        threshold, in_sample = self.calibrate()
        with CsvStream(self.out_dir / "scores.csv", SCORE_COLUMNS, append=bool(self.finished)) as scores:
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
        fresh = iter(self.score([(name, samples) for name, _, samples in self.sets if name not in self.finished],
                                perturbation, threshold, in_sample))
        rows = []
        for name, _, samples in self.sets:
            if name in self.finished:
                scored = self.finished[name]
                row = set_row(scored, threshold=threshold, in_sample=in_sample,
                              n_skipped=len(samples) - len(scored.samples))
                print(f"{name}: {len(scored.samples)} images, AP {100 * row['ap']:.1f}, acc {100 * row['acc']:.1f} "
                      f"(scored by the interrupted run)")
            else:
                scored, row = next(fresh)
                scores.write({**extra, **r} for r in scored.rows())
                if not extra:  # a plain run can be resumed after each set
                    _write_progress(self.out_dir, [*self.finished, *(r["set"] for r in rows), name])
            rows.append(row)
        return [*rows, mean_row(rows, "mean")]

    def _summary_text(self, rows: list[dict[str, Any]], perturbation: Perturbation, threshold: float | None) -> str:
        cfg = self.cfg
        lines = [f"# {self.out_dir.name}", "",
                 f"Model `{cfg.model_path}` on `{cfg.dataroot}`: {self.protocol.describe()}, "
                 f"perturbation: {perturbation.describe()}.",
                 "Accuracies at threshold 0.5" + (f"; calibrated threshold {threshold:.4g} chosen on "
                                                  f"`{cfg.calibrate_on}`." if threshold is not None else "."),
                 *([f"At most {cfg.max_sample} reals and {cfg.max_sample} fakes of each set (--max_sample, a "
                    f"shuffle seeded with 0)."] if cfg.max_sample else []),
                 "", summary_markdown(rows, calibrated=threshold is not None)]
        headline = SUITES[cfg.suite].headline(cfg.protocol)
        mean = protocol_mean(rows, headline.sets)
        if mean is not None:
            lines += ["", f"Mean over {headline.what}: AP {100 * mean['ap']:.1f}, acc {100 * mean['acc']:.1f}."]
        return "\n".join(lines) + "\n"

    def sweep(self) -> list[dict[str, Any]]:
        """Evaluate every set at each value of the swept perturbation; write the table, scores and plot."""
        cfg = self.cfg
        assert cfg.sweep is not None
        kind, values = cfg.sweep
        base = cfg.perturbation()
        threshold, in_sample = self.calibrate()
        rows, ap = [], {}
        with CsvStream(self.out_dir / f"sweep_{kind}_scores.csv", ("value", *SCORE_COLUMNS)) as scores:
            for value in values:
                perturbation = cfg.perturbation(swept=value)
                print(f"--- {kind} {value:g}: {perturbation.describe()}")
                for row in self._score_sets(perturbation, threshold, in_sample, scores, {"value": value}):
                    rows.append({"value": value, **row})
                    ap.setdefault(row["set"], []).append(row["ap"])
        write_csv(self.out_dir / f"sweep_{kind}.csv", rows, ("value", *SUMMARY_COLUMNS))
        text = sweep_markdown(kind, values, ap)
        (self.out_dir / f"sweep_{kind}.md").write_text(f"# {self.out_dir.name}: AP % under {kind}\n\n{text}\n")
        detail = f" ({cfg.jpeg_method})" if kind == "jpeg" else ""
        sweep = SWEEPS[kind]
        plot_sweep(self.out_dir / f"sweep_{kind}.png", sweep.label, values, ap,
                   title=f"{self.out_dir.name}: AP under {kind}{detail}"
                   + (f" (all images: {base.describe()})" if base != Perturbation() else ""),
                   stronger_when_lower=sweep.stronger_when_lower)
        print(text)
        return rows


# Every file an eval.py run may write; --overwrite removes all of them first, so none is left from an older run.
RESULT_FILES = ("scores.csv", "summary.csv", "summary.md", "calibration.json", "opt.json", "skipped.csv",
                "progress.json", "sweep_*.csv", "sweep_*.md", "sweep_*.png", "sweep_*.pdf")
# Settings a resumed run may change: they do not change the scores.
_RESUMABLE = ("resume", "overwrite", "device", "num_workers", "debug", "batch_size", "strict", "memory_budget")


def _write_progress(out_dir: Path, finished: list[str]) -> None:
    tmp = out_dir / "progress.json.tmp"
    tmp.write_text(json.dumps({"finished": finished}) + "\n")
    tmp.replace(out_dir / "progress.json")


def _finished_sets(cfg: EvalConfig) -> dict[str, Scored]:
    """The sets an interrupted run with the same settings finished, rebuilt from its scores.csv, which is cut back
    to those sets (a set being written when the run stopped is scored again)."""
    out_dir = cfg.out_dir
    progress = out_dir / "progress.json"
    if not progress.is_file():
        raise UserError(f"{out_dir}: no interrupted run to resume (no progress.json); run without --resume")
    saved = json.loads((out_dir / "opt.json").read_text())
    current = config_dict(cfg)
    changed = sorted(k for k in {*saved, *current} - set(_RESUMABLE) if saved.get(k) != current.get(k))
    if changed:
        raise UserError(f"{out_dir} holds a run with other settings ({', '.join('--' + k for k in changed)}); "
                        f"resume with the same ones, or start again with --overwrite")
    finished = json.loads(progress.read_text())["finished"]
    with open_csv(out_dir / "scores.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["set"] in finished]
    write_csv(out_dir / "scores.csv", rows, SCORE_COLUMNS)
    by_set: dict[str, list[dict[str, str]]] = {name: [] for name in finished}
    for row in rows:
        by_set[row["set"]].append(row)
    return {name: Scored(name, [Sample(r["path"], int(r["label"]), r["subclass"]) for r in part],
                         np.array([float(r["logit"]) for r in part], dtype=np.float32))
            for name, part in by_set.items()}


def evaluate(cfg: EvalConfig) -> list[dict[str, Any]]:
    """eval.py: the summary rows (of every sweep value with a sweep); files as the module docstring says."""
    # The sets and the checkpoint are checked before any file is touched.
    suite = SUITES[cfg.suite]
    sets = suite.load(cfg.dataroot, cfg.sets)
    if cfg.max_sample:
        sets = [at_most(s, cfg.max_sample) for s in sets]
    device = resolve_device(cfg.device)
    set_precision(device, cfg.amp)
    detector = load_detector(cfg.model_path, cfg.arch, device, ProtocolRequest(
        crop_size=cfg.crop_size, no_crop=cfg.no_crop, resize=cfg.resize, preprocess=cfg.preprocess,
        suite=suite.test_protocol), allow_nonfinite=cfg.allow_nonfinite)
    print(f"test protocol: {detector.protocol.describe()} ({detector.protocol_source})")
    if not cfg.resume and not cfg.overwrite:
        free = unused_folder(cfg.out_dir, RESULT_FILES)
        if free != cfg.out_dir:  # the name goes into opt.json, so its recorded command writes here again
            print(f"{cfg.out_dir} already holds results (--overwrite replaces them): writing to {free}")
            cfg = dataclasses.replace(cfg, name=free.name)
    out_dir = cfg.out_dir
    if cfg.resume:
        finished = _finished_sets(cfg)
    else:
        claim_folder(out_dir, RESULT_FILES, cfg.overwrite, elsewhere="--name or --results_dir")
        save_config(cfg, out_dir / "opt.json")
        finished = {}
    with CsvStream(out_dir / "skipped.csv", SKIPPED_COLUMNS, append=cfg.resume) as skipped:
        evaluator = Evaluator(cfg, sets=sets, detector=detector, device=device,
                              skipped=skipped, finished=finished)
        try:
            rows = evaluator.sweep() if cfg.sweep is not None else evaluator.run()
        except KeyboardInterrupt:
            raise Interrupted(_stopped_message(cfg, "interrupted")) from None
        except Exception as err:  # what was scored stays, and the user learns what happened in one line
            if cfg.debug:
                raise
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise UserError(_stopped_message(cfg, f"stopped by an error ({type(err).__name__}: {first})")) from err
    (out_dir / "progress.json").unlink(missing_ok=True)  # finished: nothing left to resume
    note = raw_names_note((s.path for _, _, samples in sets for s in samples), "scores.csv (and skipped.csv)")
    if note:
        print(note)
    print(f"results: {out_dir}")
    if evaluator.unreadable and cfg.strict:
        raise UserError(f"{len(evaluator.unreadable)} images could not be read (listed in {out_dir / 'skipped.csv'}); "
                        f"--strict makes that an error")
    return rows


def _stopped_message(cfg: EvalConfig, what: str) -> str:
    out_dir = cfg.out_dir
    # The same command may write beside its earlier results (<name>_2): naming the folder sends the rerun there.
    here = f"--name {out_dir.name}"
    if cfg.sweep is not None:
        return (f"{what}: {out_dir / f'sweep_{cfg.sweep[0]}_scores.csv'} holds the scores computed so far; the "
                f"sweep tables and plot were not written. Run the command again with {here} --overwrite to redo the "
                f"sweep")
    progress = out_dir / "progress.json"
    finished = json.loads(progress.read_text())["finished"] if progress.is_file() else []
    sets = ", ".join(finished) if finished else "none"
    return (f"{what}: {out_dir / 'scores.csv'} holds the finished sets ({sets}); summary.csv and summary.md "
            f"were not written. Run the same command with {here} --resume to score the remaining sets")
