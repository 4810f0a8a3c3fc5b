"""Which images the detector finds most and least fake (the paper's Fig. 6), from eval.py's ``scores.csv``.

Writes, per run: ``fakeness.png`` (per set, the fake images at the 0/25/50/75/100th percentile of the score),
``misclassified_<set>.png`` (the most confident mistakes at ``--threshold``) and ``index.html`` with one browsable
page per set (every image with its label and score, most fake first). Pages link to the image files by relative
path, so they stay small and show the images as long as the dataset stays where it was scored.
"""

from __future__ import annotations

import csv
import html
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from commands.configs import RankingConfig
from data import BadImage, load_rgb
from util.errors import UserError
from util.metrics import binary_metrics
from util.plots import pyplot, save_figure
from util.report import claim_folder

PERCENTILES = (0, 25, 50, 75, 100)
LABEL_NAMES = {0: "real", 1: "fake"}


@dataclass(frozen=True)
class ScoreRow:
    path: str
    label: int
    prob: float


def read_scores(path: Path) -> dict[str, list[ScoreRow]]:
    """Rows of a scores.csv grouped by set, in file order."""
    if not path.is_file():
        raise UserError(f"{path}: no such file (eval.py writes results/<name>/scores.csv)")
    sets: dict[str, list[ScoreRow]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                sets.setdefault(row["set"], []).append(ScoreRow(row["path"], int(row["label"]), float(row["prob"])))
            except (KeyError, ValueError) as err:
                raise UserError(f"{path}: not an eval.py scores file ({err})") from None
    if not sets:
        raise UserError(f"{path}: no scores")
    return sets


def at_percentiles(items: Sequence[ScoreRow], percentiles: Sequence[float] = PERCENTILES) -> list[ScoreRow]:
    """The items at those percentiles of the score (nearest rank; ties keep file order)."""
    ranked = sorted(items, key=lambda s: s.prob)
    return [ranked[round(p / 100 * (len(ranked) - 1))] for p in percentiles]


def misclassified(items: Sequence[ScoreRow], threshold: float, limit: int) -> tuple[list[ScoreRow], list[ScoreRow]]:
    """(reals called fake, most confident first; fakes called real, most confident first), ``limit`` each.
    As accuracy is defined: fake means prob > threshold."""
    false_fakes = sorted((s for s in items if s.label == 0 and s.prob > threshold), key=lambda s: -s.prob)
    false_reals = sorted((s for s in items if s.label == 1 and s.prob <= threshold), key=lambda s: s.prob)
    return false_fakes[:limit], false_reals[:limit]


def _thumbnail(path: str, side: int) -> np.ndarray:
    image = load_rgb(path)
    image.thumbnail((side, side))
    return np.asarray(image)


def _gallery(path: Path, rows: Sequence[tuple[str, Sequence[tuple[ScoreRow, str]]]], title: str, side: int) -> None:
    """A grid of images: one row per (row title, [(item, caption), ...]); empty cells stay blank."""
    plt = pyplot()
    cols = max(1, max(len(cells) for _, cells in rows))
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.9 * cols + 0.6, 2.1 * len(rows)), squeeze=False,
                             constrained_layout=True)
    for r, (row_title, cells) in enumerate(rows):
        for c in range(cols):
            axis = axes[r, c]
            axis.set_xticks([])
            axis.set_yticks([])
            if c < len(cells):
                item, caption = cells[c]
                try:
                    axis.imshow(_thumbnail(item.path, side))
                except BadImage:  # moved or damaged since it was scored
                    caption += " (unreadable)"
                axis.set_title(caption, fontsize="small")
            else:
                axis.axis("off")
        axes[r, 0].set_ylabel(row_title, fontsize="small")
    fig.suptitle(title)
    save_figure(fig, path)


STYLE = """<style>
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:68rem;padding:0 1rem;color:#222}
h1{font-size:1.4rem}table{border-collapse:collapse;width:100%}th,td{padding:4px 10px;text-align:left}
th{background:#f1f3f5;position:sticky;top:0}tr:nth-child(even){background:#fafafa}tr.wrong{background:#fde2e2}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}img{border-radius:3px;display:block}
.metrics{display:flex;gap:1.5rem;flex-wrap:wrap;margin:1rem 0}.metrics div{background:#f1f3f5;border-radius:6px;
padding:.5rem 1rem}.metrics b{display:block;font-size:1.3rem}a{color:#1a5fb4}
</style>"""


def _metrics(items: Sequence[ScoreRow], threshold: float) -> dict[str, float]:
    labels = np.array([s.label for s in items])
    return binary_metrics(labels, np.array([s.prob for s in items]), threshold)


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}%"


def _page(name: str, items: Sequence[ScoreRow], threshold: float, out: Path, thumb: int) -> str:
    rows, wrong = [], 0
    for item in sorted(items, key=lambda s: -s.prob):
        src = html.escape(os.path.relpath(item.path, out))
        called = "fake" if item.prob > threshold else "real"
        wrong += called != LABEL_NAMES[item.label]
        mark = "" if called == LABEL_NAMES[item.label] else ' class="wrong"'
        rows.append(f'<tr{mark}><td><a href="{src}"><img src="{src}" loading="lazy" width="{thumb}" alt=""></a></td>'
                    f'<td>{LABEL_NAMES[item.label]}</td><td class="num">{item.prob:.4f}</td><td>{called}</td>'
                    f"<td>{html.escape(item.path)}</td></tr>")
    m = _metrics(items, threshold)
    cards = "".join(f"<div><b>{value}</b>{label}</div>" for label, value in (
        ("images", str(len(items))), ("AP", _percent(m["ap"])), (f"accuracy at {threshold:g}", _percent(m["acc"])),
        ("real accuracy", _percent(m["r_acc"])), ("fake accuracy", _percent(m["f_acc"])),
        ("misclassified (red)", str(wrong))))
    return (f"<!doctype html><meta charset=utf-8><title>{html.escape(name)}</title>{STYLE}"
            f'<p><a href="index.html">&larr; all sets</a></p><h1>{html.escape(name)}</h1>'
            f'<div class="metrics">{cards}</div><p>Most fake first; called fake when P(fake) &gt; {threshold:g}.</p>'
            '<table><tr><th>image</th><th>label</th><th class="num">P(fake)</th><th>called</th><th>file</th></tr>'
            + "\n".join(rows) + "</table>\n")


def _index(sets: dict[str, list[ScoreRow]], threshold: float, scores: Path) -> str:
    rows = []
    for name, items in sets.items():
        m = _metrics(items, threshold)
        rows.append(f'<tr><td><a href="{html.escape(name)}.html">{html.escape(name)}</a></td>'
                    f'<td class="num">{len(items)}</td><td class="num">{_percent(m["ap"])}</td>'
                    f'<td class="num">{_percent(m["acc"])}</td><td class="num">{_percent(m["r_acc"])}</td>'
                    f'<td class="num">{_percent(m["f_acc"])}</td></tr>')
    return (f"<!doctype html><meta charset=utf-8><title>predictions</title>{STYLE}"
            f"<h1>Predictions: {html.escape(str(scores))}</h1>"
            f'<p>Accuracy at threshold {threshold:g}. Galleries: <a href="fakeness.png">fakes by score percentile</a>'
            f" and misclassified_&lt;set&gt;.png.</p>"
            '<table><tr><th>set</th><th class="num">images</th><th class="num">AP</th><th class="num">accuracy</th>'
            '<th class="num">real acc</th><th class="num">fake acc</th></tr>' + "\n".join(rows) + "</table>\n")


def run_ranking(cfg: RankingConfig) -> Path:
    """analyze.py ranking: the galleries and pages described in the module docstring; returns the output folder."""
    sets = read_scores(cfg.scores)
    out = cfg.out or cfg.scores.parent / "ranking"
    claim_folder(out, ("fakeness.png", "fakeness.pdf", "misclassified_*.png", "misclassified_*.pdf", "*.html"),
                 cfg.overwrite, elsewhere="--out")
    rows = []
    for name, items in sets.items():
        fakes = [s for s in items if s.label == 1]
        if fakes:
            picks = at_percentiles(fakes)
            rows.append((name, [(s, f"p{p}: {s.prob:.3f}") for p, s in zip(PERCENTILES, picks, strict=True)]))
        false_fakes, false_reals = misclassified(items, cfg.threshold, cfg.max_images)
        if false_fakes or false_reals:
            _gallery(out / f"misclassified_{name}.png",
                     [("real called fake", [(s, f"{s.prob:.3f}") for s in false_fakes]),
                      ("fake called real", [(s, f"{s.prob:.3f}") for s in false_reals])],
                     f"{name}: most confident mistakes at threshold {cfg.threshold:g}", cfg.thumbnail)
        (out / f"{name}.html").write_text(_page(name, items, cfg.threshold, out, cfg.thumbnail))
    if rows:
        _gallery(out / "fakeness.png", rows, "Fake images by detector score percentile (low = looks real)",
                 cfg.thumbnail)
    (out / "index.html").write_text(_index(sets, cfg.threshold, cfg.scores))
    print(f"wrote {out}/fakeness.png, misclassified_<set>.png and index.html ({len(sets)} sets)")
    return out
