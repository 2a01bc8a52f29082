"""What every figure shares: sizes, fonts, the colour of each objective, atomic PNG writes."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from vmcr2_cli.objective_registry import OBJECTIVES
from vmcr2_cli.runs import atomic_write_bytes

DPI = 150
# Sized for a paper column at 100 % or a slide: ticks 10 pt, labels 11 pt, titles 12 pt.
RC = {
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "grid.alpha": 0.3,
    "image.cmap": "viridis",
}

# One colour per objective, so MCR², V-MCR² and CE look the same in every figure.
OBJECTIVE_COLORS = {name: entry.color for name, entry in OBJECTIVES.items()}
EXTRA_COLORS = ["#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#393b79"]


def new_figure(width: float, height: float) -> Any:
    """A Figure (inches) on the Agg canvas with constrained layout; no pyplot involved."""
    import matplotlib

    matplotlib.rcParams.update(RC)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save_png(figure: Any, path: Path) -> Path:
    """Render ``figure`` to PNG and write it atomically at ``path``."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    atomic_write_bytes(Path(path), buffer.getvalue())
    return Path(path)


def short_class_name(name: str, limit: int = 12) -> str:
    return name if len(name) <= limit else name[:limit - 1] + "…"
