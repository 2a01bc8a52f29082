"""Figure 1 of the paper: ΔR, R and R_c of the training batches over epochs, runs overlaid; and the
accuracies measured along the runs (eval lines) against epoch."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vmcr2_cli.plots.style import EXTRA_COLORS, OBJECTIVE_COLORS, new_figure, save_png

PANELS = (("delta_r", r"$\Delta R = R - R_c$"), ("r", r"$R$ (expansion)"), ("r_c", r"$R_c$ (compression)"))
ACCURACY_PANELS = (("nearest_subspace_accuracy", "nearest subspace (eq. 8)"), ("knn_accuracy", "kNN (cosine, k = 10)"),
                   ("head_accuracy", "head (CE's; ReduNet's π̂)"))
LINESTYLES = ["-", "--", "-.", ":"]


@dataclass(frozen=True)
class Curve:
    """One run's series. ``epochs`` are 1-based (epoch n = after n epochs); ``accuracy`` holds the
    eval lines' (epochs done, value) pairs of each accuracy measured along the run."""

    label: str
    objective: str | None
    status: str
    epochs: list[int]
    values: dict[str, list[float | None]]  # "delta_r", "r", "r_c" → one value per epoch
    accuracy: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def points(self, key: str) -> list[tuple[float, float]]:
        """(epoch, value) of ``key``: an epoch series or an accuracy, without the missing values."""
        if key in self.accuracy:
            return list(self.accuracy[key])
        return [(x, y) for x, y in zip(self.epochs, self.values.get(key, [])) if y is not None]


def plot_rate_curves(curves: list[Curve], path: Path, *, title: str) -> Path:
    """Three panels side by side (ΔR, R, R_c against epoch) with one shared legend.

    Runs of the same objective share its colour and differ by line style; an unfinished
    or failed run says so in the legend and ends with a marker where it stopped.
    """
    return _plot_panels(curves, PANELS, path, title=title, y_label="value on the training batches (epoch mean)")


def plot_accuracy_curves(curves: list[Curve], path: Path, *, title: str, split: str = "test") -> Path:
    """Accuracy against epoch from the eval lines: nearest subspace, kNN and (with a CE run) CE's head."""
    panels = [(key, name) for key, name in ACCURACY_PANELS if any(curve.accuracy.get(key) for curve in curves)]
    return _plot_panels(curves, tuple(panels or ACCURACY_PANELS[:1]), path, title=title,
                        y_label=f"{split} accuracy")


def _plot_panels(curves: list[Curve], panels: tuple[tuple[str, str], ...], path: Path, *, title: str,
                 y_label: str) -> Path:
    figure = new_figure(4.4 * len(panels) if len(panels) > 1 else 6.0, 4.4)
    axes = figure.subplots(1, len(panels), sharex=True, squeeze=False)[0]
    styles = _styles(curves)
    few = max((len(curve.points(key)) for curve in curves for key, _ in panels), default=0) <= 25  # mark each
    for curve, (color, linestyle) in zip(curves, styles):
        suffix = "" if curve.status == "finished" else f" ({curve.status})"
        for axis, (key, _) in zip(axes, panels):
            points = curve.points(key)
            if not points:
                continue
            xs, ys = zip(*points)
            axis.plot(xs, ys, color=color, linestyle=linestyle, linewidth=1.6, marker="o" if few else None,
                      markersize=3.5, label=curve.label + suffix)
            if curve.status != "finished":
                axis.plot(xs[-1:], ys[-1:], color=color, marker="x" if curve.status == "failed" else ">",
                          markersize=8, linestyle="none")
    for axis, (_, name) in zip(axes, panels):
        axis.set_title(name)
        axis.set_xlabel("epoch")
        axis.grid(True)
        axis.xaxis.get_major_locator().set_params(integer=True)
    axes[0].set_ylabel(y_label)
    handles, labels = [], []
    for axis in axes:  # a run may be on one panel only (CE's head)
        for handle, label in zip(*axis.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
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
