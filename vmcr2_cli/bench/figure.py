"""The bench's figure: time per step against the number of classes, log-log, one line per variant.

Drawn from the report dict alone. With a backbone, a second panel shows the whole
training steps, with the backbone's own step as a dotted line.
"""

from __future__ import annotations

from typing import Any

from matplotlib.ticker import FuncFormatter, LogFormatter, NullLocator

from vmcr2_cli.objective_registry import OBJECTIVES
from vmcr2_cli.plots.style import OBJECTIVE_COLORS, new_figure

from .environment import short_name
from .settings import VARIANTS

# (label, colour, marker) of each variant: what exactly is timed. MCR², V-MCR² and CE keep
# their colours from eval and compare; the reference is MCR²'s baseline. An objective
# without a line here is drawn with its registry label and colour (see ``variant_style``).
VARIANT_STYLES = {
    "mcr2-reference": ("MCR² reference (per-class loop)", "#ff7f0e", "o"),
    "mcr2": ("MCR² (batched, exact)", OBJECTIVE_COLORS["mcr2"], "s"),
    "vmcr2": ("V-MCR², Algorithm 1 (Γ/A update + θ loss)", OBJECTIVE_COLORS["vmcr2"], "D"),
    "vmcr2-block": ("V-MCR², block A (Γ/A update + θ loss)", "#9467bd", "P"),
    "vmcr2-tangent": ("V-MCR², tangent (tracking + bound)", "#e377c2", "X"),
    "vmcr2-tangent-push": ("V-MCR², tangent at a pushed A (tracking + A-step + bound)", "#bcbd22", "v"),
    "ce": ("cross-entropy", OBJECTIVE_COLORS["ce"], "^"),
}



def variant_style(variant: str) -> tuple[str, str, str]:
    """(label, colour, marker) of a bench variant."""
    if variant in VARIANT_STYLES:
        return VARIANT_STYLES[variant]
    entry = OBJECTIVES[variant]
    return entry.label, entry.color, "v"


def time_vs_classes_figure(report: dict) -> Any:
    """A matplotlib Figure: median seconds per step (bars: IQR) against k, both axes logarithmic."""
    settings, environment = report["settings"], report["environment"]
    panels = [("", "objective alone: forward + backward")]
    if settings["backbone"]:
        panels.append(("step_", f"training step with {settings['backbone']}"))
    figure = new_figure(6.4 * len(panels), 4.8)
    axes_list = figure.subplots(1, len(panels), squeeze=False)[0]
    classes = sorted({row["classes"] for row in report["rows"] if row["classes"] is not None})
    for axes, (prefix, title) in zip(axes_list, panels):
        for variant in VARIANTS:
            label, colour, marker = variant_style(variant)
            points = [(row["classes"], row[prefix + "median_s"], row[prefix + "q1_s"], row[prefix + "q3_s"])
                      for row in report["rows"] if row["variant"] == variant and row[prefix + "median_s"]]
            if not points:
                continue
            ks, medians, q1, q3 = zip(*points)
            spread = [[m - low for m, low in zip(medians, q1)], [high - m for m, high in zip(medians, q3)]]
            axes.errorbar(ks, medians, yerr=spread, color=colour, marker=marker, capsize=3, label=label)
        backbone = [row for row in report["rows"] if row["classes"] is None and row["step_median_s"]]
        if prefix and backbone:
            axes.axhline(backbone[0]["step_median_s"], color="black", linestyle=":",
                         label=f"{settings['backbone']} alone (forward, backward, SGD)")
        axes.set_xscale("log")
        axes.set_yscale("log")
        if classes:
            axes.set_xticks(classes, [str(k) for k in classes])
            axes.xaxis.set_minor_locator(NullLocator())  # only the measured k; y keeps its minor labels
            axes.set_xlim(min(classes) / 1.5, max(classes) * 1.5)
        axes.set_xlabel("number of classes k")
        axes.set_ylabel("seconds per step (median; bars: IQR)")
        axes.set_title(title)
        # Plain numbers (0.01, 1.9), and the minor ticks labelled where the axis spans under a decade.
        axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axes.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))
        axes.grid(True, which="major")
        axes.legend(loc="upper left")
    figure.suptitle(f"{short_name(environment)}, torch {environment['versions']['torch']}\n"
                    f"m = {settings['batch_size']}, d = {settings['dim']}, q = {settings['atoms_per_class']}·k, "
                    f"ε² = {settings['eps2']:g}, {settings['dtype']}", fontsize=10)
    return figure
