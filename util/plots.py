"""matplotlib for files only: the one place that picks its backend."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

# Print resolution for the PNGs; the PDF beside each is vector (images inside it keep their pixels).
DPI = 200


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend (no display needed); imported on first use, as it is slow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> None:
    """``path`` (a .png) and the same figure as a vector .pdf beside it, then free the figure."""
    fig.savefig(path, dpi=DPI)
    fig.savefig(path.with_suffix(".pdf"))
    pyplot().close(fig)
