"""The class-diversity ablation (the paper's Fig. 3): train on growing subsets of the training classes, evaluate
each detector on the test sets, and plot mean AP against the number of classes.

Subsets are nested (the first k classes of one seeded permutation), so each step only adds classes. Every run is
an ordinary train.py run named ``<name>_classes<k>``; a run already trained to its end with the same options is
reused, so an interrupted ablation continues where it stopped (its evaluations, which this driver owns, are
redone). Validation uses the same classes as training.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from data import find_test_sets
from options import parse_eval_options
from options.options import runtime_flags
from util.engine import completed_run, train
from util.errors import UserError
from util.evaluation import evaluate
from util.report import claim_folder, markdown_table, write_csv


def class_subsets(classes: Sequence[str], counts: Sequence[int], seed: int) -> list[tuple[str, ...]]:
    """For each count k, the first k classes of a permutation seeded by ``seed`` (sorted by name)."""
    too_many = [k for k in counts if k > len(classes)]
    if too_many:
        raise UserError(f"--num_classes {too_many[0]}: only {len(classes)} classes ({', '.join(classes)})")
    order = np.random.default_rng(seed).permutation(len(classes))
    return [tuple(sorted(classes[i] for i in order[:k])) for k in counts]


def _all_classes(opt: argparse.Namespace) -> list[str]:
    if opt.classes:
        return list(opt.classes)
    folder = opt.dataroot / opt.train_split
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


def plot_ablation(path: Path, rows: Sequence[dict[str, Any]], sets: Sequence[str], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = [r["num_classes"] for r in rows]
    fig, axis = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for name in sets:
        axis.plot(counts, [100 * r[name] for r in rows], marker=".", linewidth=1, alpha=0.6, label=name)
    axis.plot(counts, [100 * r["mean_ap"] for r in rows], color="black", marker="o", linewidth=2.5, label="mean")
    axis.set_xticks(counts)
    axis.set_xlabel("number of training classes")
    axis.set_ylabel("AP (%)")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_ablation(opt: argparse.Namespace, train_opt: argparse.Namespace) -> list[dict[str, Any]]:
    """analyze.py ablation: one training and one evaluation per class count; writes ablation.csv/.md/.png to
    ``<results_dir>/<name>/``. ``train_opt`` holds the train.py options shared by every run."""
    subsets = class_subsets(_all_classes(train_opt), opt.num_classes, train_opt.seed)
    sets = [name for name, _ in find_test_sets(opt.test_dataroot, opt.test_sets)]
    out = opt.results_dir / train_opt.name
    claim_folder(out, ("ablation.csv", "ablation.md", "ablation.png"), opt.overwrite)
    rows = []
    for k, subset in zip(opt.num_classes, subsets, strict=True):
        run = copy.copy(train_opt)
        run.classes, run.name = subset, f"{train_opt.name}_classes{k}"
        print(f"=== {k} classes: {', '.join(subset)}", flush=True)
        if completed_run(run):
            print(f"reusing {run.checkpoints_dir / run.name} (trained to its end with these options)")
        else:
            train(run)
        eval_args = ["--dataroot", str(opt.test_dataroot), "--sets", ",".join(sets),
                     "--model_path", str(run.checkpoints_dir / run.name / "best.pth"),
                     "--results_dir", str(opt.results_dir), "--name", run.name, "--overwrite",
                     "--batch_size", str(opt.eval_batch_size), *runtime_flags(train_opt)]
        if opt.eval_no_crop:
            eval_args.append("--no_crop")
        else:
            eval_args += ["--crop_size", str(opt.eval_crop_size)]
        summary = {r["set"]: r for r in evaluate(parse_eval_options(eval_args))}
        rows.append({"num_classes": k, "classes": " ".join(subset), **{n: summary[n]["ap"] for n in sets},
                     "mean_ap": summary["mean"]["ap"], "mean_acc": summary["mean"]["acc"]})
        write_csv(out / "ablation.csv", rows, list(rows[0]))  # after every run: a partial ablation is kept

    header = ["classes", *sets, "mean AP %", "mean acc %"]
    body = [[str(r["num_classes"]), *(f"{100 * r[n]:.1f}" for n in sets), f"{100 * r['mean_ap']:.1f}",
             f"{100 * r['mean_acc']:.1f}"] for r in rows]
    table = markdown_table(header, body)
    (out / "ablation.md").write_text(f"# Class-diversity ablation: {train_opt.name}\n\nAP % per test set by the "
                                     f"number of training classes (subsets: ablation.csv).\n\n{table}\n")
    plot_ablation(out / "ablation.png", rows, sets, f"{train_opt.name}: AP vs training classes")
    print(f"\n{table}\n\nwrote {out}/ablation.csv, ablation.md, ablation.png")
    return rows
