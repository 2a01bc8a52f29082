"""Figure 1 of the paper: ΔR, R and R_c of the training batches over epochs, runs overlaid."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vmcr2_cli.plots.style import EXTRA_COLORS, OBJECTIVE_COLORS, new_figure, save_png

PANELS = (("delta_r", r"$\Delta R = R - R_c$"), ("r", r"$R$ (expansion)"), ("r_c", r"$R_c$ (compression)"))
LINESTYLES = ["-", "--", "-.", ":"]


@dataclass(frozen=True)
class Curve:
    """One run's epoch series. ``epochs`` are 1-based (epoch n = after n epochs)."""

    label: str
    objective: str | None
    status: str
    epochs: list[int]
    values: dict[str, list[float | None]]  # "delta_r", "r", "r_c" → one value per epoch


def plot_rate_curves(curves: list[Curve], path: Path, *, title: str) -> Path:
    """Three panels side by side (ΔR, R, R_c against epoch) with one shared legend.

    Runs of the same objective share its colour and differ by line style; an unfinished
    or failed run says so in the legend and ends with a marker where it stopped.
    """
    figure = new_figure(13.0, 4.4)
    axes = figure.subplots(1, 3, sharex=True)
    styles = _styles(curves)
    few = max((len(curve.epochs) for curve in curves), default=0) <= 25  # then mark every epoch
    for curve, (color, linestyle) in zip(curves, styles):
        suffix = "" if curve.status == "finished" else f" ({curve.status})"
        for axis, (key, _) in zip(axes, PANELS):
            points = [(x, y) for x, y in zip(curve.epochs, curve.values.get(key, [])) if y is not None]
            if not points:
                continue
            xs, ys = zip(*points)
            axis.plot(xs, ys, color=color, linestyle=linestyle, linewidth=1.6, marker="o" if few else None,
                      markersize=3.5, label=curve.label + suffix)
            if curve.status != "finished":
                axis.plot(xs[-1:], ys[-1:], color=color, marker="x" if curve.status == "failed" else ">",
                          markersize=8, linestyle="none")
    for axis, (_, name) in zip(axes, PANELS):
        axis.set_title(name)
        axis.set_xlabel("epoch")
        axis.grid(True)
        axis.xaxis.get_major_locator().set_params(integer=True)
    axes[0].set_ylabel("value on the training batches (epoch mean)")
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncol=min(len(handles), 4), frameon=False)
    figure.suptitle(title, fontsize=12)
    return save_png(figure, path)


def _styles(curves: list[Curve]) -> list[tuple[str, str]]:
    """A colour per objective (MCR² blue, V-MCR² red, CE grey), a line style per repeat."""
    seen: dict[str, int] = {}
    extra = iter(EXTRA_COLORS * 10)
    styles = []
    for curve in curves:
        key = curve.objective or "?"
        repeat = seen.get(key, 0)
        seen[key] = repeat + 1
        color = OBJECTIVE_COLORS.get(key) if repeat < len(LINESTYLES) else None
        styles.append((color or next(extra), LINESTYLES[repeat % len(LINESTYLES)]))
    return styles
