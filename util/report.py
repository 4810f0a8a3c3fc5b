"""Result files: per-image scores and per-set summaries as CSV, Table-2-style markdown, sweep plots."""

from __future__ import annotations

import csv
import errno
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from util.errors import UserError
from util.plots import pyplot, save_figure

SCORE_COLUMNS = ("set", "subclass", "path", "label", "logit", "prob")
SUMMARY_COLUMNS = ("set", "n_real", "n_fake", "n_skipped", "ap", "acc", "r_acc", "f_acc", "auc", "acc_calibrated")
SKIPPED_COLUMNS = ("set", "path", "label", "reason")
METRIC_HEADERS = {"ap": "AP", "acc": "acc", "r_acc": "real acc", "f_acc": "fake acc", "auc": "AUC",
                  "acc_calibrated": "acc (calibrated)"}


# What os.link raises where the file system has no hard links (some FUSE and network mounts).
NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}

# File names that are not UTF-8 reach Python as lone surrogates (PEP 383); the CSV files hold them as the name's own
# bytes, so nothing is lost, and reading them back with the same error handler gives the same path.
ENCODING_ERRORS = "surrogateescape"


def is_raw_name(path: str) -> bool:
    """Whether ``path`` is not valid UTF-8 (written as its own bytes)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def raw_names_note(paths: Iterable[str], where: str) -> str | None:
    """A line on the file names in ``where`` that are not UTF-8, when there are any."""
    count = sum(map(is_raw_name, paths))
    if not count:
        return None
    return (f"note: {count} file {'name is' if count == 1 else 'names are'} not valid UTF-8; {where} holds "
            f"{'it' if count == 1 else 'them'} as the original bytes (read with errors='{ENCODING_ERRORS}')")


def warned_note(count: int) -> str:
    """Decoder warnings, counted rather than printed: a damaged file's image is scored as it decodes."""
    return f"{count} decoder warning{'' if count == 1 else 's'} (damaged files, scored as decoded; not printed)"


def open_csv(path: Path, mode: str = "r") -> TextIO:
    """A CSV file of this project, opened as it is written (see ENCODING_ERRORS)."""
    return open(path, mode, newline="", encoding="utf-8", errors=ENCODING_ERRORS)


def _cell(value: Any) -> str:
    """CSV text: None (not requested) is empty, nan (undefined) is ``nan``, floats keep float32 precision."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.9g}"
    return str(value)


class CsvStream:
    """A CSV file written row by row and flushed, so an interrupted run leaves a valid file."""

    def __init__(self, path: Path, columns: Sequence[str], append: bool = False) -> None:
        """``append``: add rows to an existing file of these columns (its header stays)."""
        self.columns = tuple(columns)
        self.file: TextIO = open_csv(path, "a" if append else "w")
        self.writer = csv.writer(self.file)
        if not append:
            self.writer.writerow(self.columns)

    def write(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self.writer.writerows([_cell(row[c]) for c in self.columns] for row in rows)
        self.file.flush()

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> CsvStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def unused_folder(folder: Path, patterns: Sequence[str]) -> Path:
    """``folder`` when it holds none of a run's files (``patterns``), else the first of ``folder_2``,
    ``folder_3``, ... that holds none."""
    candidate, number = folder, 1
    while any(next(candidate.glob(pattern), None) for pattern in patterns):
        number += 1
        candidate = folder.with_name(f"{folder.name}_{number}")
    return candidate


def claim_folder(folder: Path, patterns: Sequence[str], overwrite: bool, elsewhere: str) -> None:
    """Make ``folder`` ready for a run's files (``patterns``): files an earlier run left there are an error, unless
    ``overwrite``, which deletes those files (and nothing else) first. ``elsewhere`` names the flags that choose
    another folder."""
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted({path for pattern in patterns for path in folder.glob(pattern)})
    if existing and not overwrite:
        names = ", ".join(p.name for p in existing[:3]) + (", ..." if len(existing) > 3 else "")
        raise UserError(f"{folder} already holds results ({names}); pass --overwrite to replace them, or choose "
                        f"another folder with {elsewhere}")
    for path in existing:
        path.unlink()


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Write a whole table atomically."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with CsvStream(tmp, columns) as out:
            out.write(rows)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def create_once(path: Path, text: str) -> None:
    """Create ``path`` holding ``text`` unless it exists. When processes race (torchrun's ranks), the file appears
    once and already whole: it is written aside and hard-linked, which fails on a name that exists."""
    if path.exists():
        return
    fd, aside = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(aside, 0o644)  # mkstemp's 0o600 would hide the file from the run folder's other readers
        os.link(aside, path)
    except FileExistsError:
        pass
    except OSError as err:
        if err.errno not in NO_HARD_LINKS:
            raise
        try:  # an exclusive create: rows another process appends at that moment could land before the text
            with open(path, "x") as f:
                f.write(text)
        except FileExistsError:
            pass
    finally:
        os.unlink(aside)


def _percent(value: Any) -> str:
    if value is None:
        return ""
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def summary_markdown(rows: Sequence[Mapping[str, Any]], calibrated: bool) -> str:
    """The summary rows as Table 2 prints them: metrics in percent, one decimal."""
    metrics = [m for m in METRIC_HEADERS if calibrated or m != "acc_calibrated"]
    counts = ["n_real", "n_fake"] + (["n_skipped"] if any(r["n_skipped"] for r in rows) else [])
    header = ["set", *(c[2:] for c in counts), *(f"{METRIC_HEADERS[m]} %" for m in metrics)]
    body = [[str(r["set"]), *(str(r[c]) for c in counts), *(_percent(r[m]) for m in metrics)] for r in rows]
    return markdown_table(header, body)


def sweep_markdown(kind: str, values: Sequence[float], ap: Mapping[str, Sequence[float]]) -> str:
    """AP % per set (rows) and perturbation value (columns)."""
    header = ["set", *(f"{kind} {v:g}" for v in values)]
    return markdown_table(header, [[name, *(_percent(a) for a in aps)] for name, aps in ap.items()])


def plot_sweep(path: Path, label: str, values: Sequence[float], ap: Mapping[str, Sequence[float]],
               title: str, stronger_when_lower: bool) -> None:
    """AP against the perturbation strength (``label``), one line per set (the mean dashed), as the paper's Fig. 5;
    the stronger perturbation to the right."""
    plt = pyplot()
    fig, axis = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    for name, aps in ap.items():
        style = {"color": "black", "linestyle": "--", "linewidth": 2} if name == "mean" else {"marker": "o"}
        axis.plot(values, [100 * a for a in aps], label=name, **style)
    axis.set_xlabel(label)
    axis.set_ylabel("AP (%)")
    axis.set_ylim(top=101)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    if stronger_when_lower:
        axis.invert_xaxis()
    axis.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize="small")
    save_figure(fig, path)
