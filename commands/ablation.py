"""The class-diversity ablation (the paper's Fig. 3): train on growing subsets of the training classes, evaluate
each detector on the test sets, and plot mean AP against the number of classes.

Subsets are nested (the first k classes of one seeded permutation), so each step only adds classes. Every run is
an ordinary train.py run named ``<name>_classes<k>``; a run already trained to its end with the same options is
reused, so an interrupted ablation continues where it stopped (its evaluations, which this driver owns, are
redone). Validation uses the same classes as training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from commands.configs import AblationConfig
from data import find_test_sets
from engine.configs import EvalConfig, TrainConfig
from engine.evaluation import evaluate
from engine.training import completed_run, train
from util.errors import UserError
from util.plots import pyplot, save_figure
from util.report import claim_folder, markdown_table, write_csv


def class_subsets(classes: Sequence[str], counts: Sequence[int], seed: int) -> list[tuple[str, ...]]:
    """For each count k, the first k classes of a permutation seeded by ``seed`` (sorted by name)."""
    too_many = [k for k in counts if k > len(classes)]
    if too_many:
        raise UserError(f"--num_classes {too_many[0]}: only {len(classes)} classes ({', '.join(classes)})")
    order = np.random.default_rng(seed).permutation(len(classes))
    return [tuple(sorted(classes[i] for i in order[:k])) for k in counts]


def _all_classes(cfg: TrainConfig) -> list[str]:
    if cfg.classes:
        return list(cfg.classes)
    folder = cfg.dataroot / cfg.train_split
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


def plot_ablation(path: Path, rows: Sequence[dict[str, Any]], sets: Sequence[str], title: str) -> None:
    plt = pyplot()
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
    save_figure(fig, path)


def run_ablation(cfg: AblationConfig) -> list[dict[str, Any]]:
    """analyze.py ablation: one training and one evaluation per class count; writes ablation.csv/.md/.png to
    ``<results_dir>/<train.name>/``."""
    base = cfg.train
    subsets = class_subsets(_all_classes(base), cfg.num_classes, base.seed)
    sets = [name for name, _ in find_test_sets(cfg.test_dataroot, cfg.test_sets)]
    out = cfg.results_dir / base.name
    claim_folder(out, ("ablation.csv", "ablation.md", "ablation.png", "ablation.pdf"), cfg.overwrite,
                 elsewhere="--name or --results_dir")
    rows = []
    for k, subset in zip(cfg.num_classes, subsets, strict=True):
        # The protocol named the full class list; each run records its own subset instead.
        run = dataclasses.replace(base, classes=subset, protocol=None, name=f"{base.name}_classes{k}")
        print(f"=== {k} classes: {', '.join(subset)}", flush=True)
        if completed_run(run):
            print(f"reusing {run.run_dir} (trained to its end with these options)")
        else:
            train(run)
        eval_cfg = EvalConfig(dataroot=cfg.test_dataroot, sets=tuple(sets), model_path=run.run_dir / "best.pth",
                              results_dir=cfg.results_dir, name=run.name, overwrite=True,
                              batch_size=cfg.eval_batch_size, no_crop=cfg.eval_no_crop,
                              crop_size=cfg.eval_crop_size, **base.runtime)
        summary = {r["set"]: r for r in evaluate(eval_cfg)}
        rows.append({"num_classes": k, "classes": " ".join(subset), **{n: summary[n]["ap"] for n in sets},
                     "mean_ap": summary["mean"]["ap"], "mean_acc": summary["mean"]["acc"]})
        write_csv(out / "ablation.csv", rows, list(rows[0]))  # after every run: a partial ablation is kept

    header = ["classes", *sets, "mean AP %", "mean acc %"]
    body = [[str(r["num_classes"]), *(f"{100 * r[n]:.1f}" for n in sets), f"{100 * r['mean_ap']:.1f}",
             f"{100 * r['mean_acc']:.1f}"] for r in rows]
    table = markdown_table(header, body)
    (out / "ablation.md").write_text(f"# Class-diversity ablation: {base.name}\n\nAP % per test set by the "
                                     f"number of training classes (subsets: ablation.csv).\n\n{table}\n")
    plot_ablation(out / "ablation.png", rows, sets, f"{base.name}: AP vs training classes")
    print(f"\n{table}\n\nwrote {out}/ablation.csv, ablation.md, ablation.png")
    return rows
