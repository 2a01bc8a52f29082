"""A line chart of one metric with the runs overlaid, drawn by textual-plotext.

The chart is handed ``Series`` (one per run: label, ANSI colour, points, event markers)
and draws them at whatever size it has; before any point it says what it waits for
instead of showing an empty frame. Long series are thinned to about two points per
braille column, so a run with 100 000 step lines costs no more to draw than one with 200.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.containers import Horizontal, Vertical
from textual_plotext import PlotextPlot

from vmcr2_cli.numbers import fmt_value
from vmcr2_cli.tui.formatting import LATCH_COLOUR


@dataclass(frozen=True)
class Marker:
    """An annotated point: a latch or eval event on a run's curve."""

    x: float
    y: float
    symbol: str
    colour: int


@dataclass(frozen=True)
class Series:
    """One run's curve: ``colour`` is an ANSI colour number (0–15)."""

    label: str
    colour: int
    xs: list[float]
    ys: list[float]
    markers: list[Marker] = field(default_factory=list)
    latches: list[float] = field(default_factory=list)  # x of each latch: a vertical line for the top run


class MetricChart(PlotextPlot):
    """One metric over epochs (or over time) for every run shown."""

    DEFAULT_CSS = """
    MetricChart {
        width: 1fr;
        height: 1fr;
        min-height: 5;
    }
    """

    def __init__(self, title: str, *, waiting: str = "waiting for the first epoch line…",
                 integer_x: bool = True, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        # "clear" draws in the terminal's own colours: right in any Textual theme and with 16 colours.
        self.theme = "clear"
        self.chart_title = title
        self.waiting = waiting
        self.integer_x = integer_x
        self.x_label = ""
        self.series: list[Series] = []
        self.empty_note: str | None = None
        self.log_y = False

    def show(self, series: list[Series], *, x_label: str = "", empty_note: str | None = None,
             log_y: bool = False) -> None:
        """Draw these series; ``empty_note`` replaces the waiting line when there is nothing to draw.

        ``log_y``: a logarithmic y axis (points ≤ 0 are left out, and said so in the title).
        """
        self.log_y = log_y
        if log_y:
            series = [logarithmic(s) for s in series]
        self.series = [s for s in series if s.xs]
        self.x_label = x_label
        self.empty_note = empty_note
        if log_y and series and not self.series:
            self.empty_note = "no positive value to draw on a log axis (l: linear)"
        self.refresh()

    def render(self) -> RenderResult:
        width, height = self.size.width, self.size.height
        if not self.series:
            note = self.empty_note or self.waiting
            text = Text.assemble((self.chart_title, "bold"), "\n", (note, "dim"))
            text.justify = "center"
            return text
        # The title is drawn here rather than by plotext, which would spend a line on a frame too.
        title = self.title_line(width)
        plt = self.plt
        plt.clear_figure()
        plt.frame(False)
        plt.xaxes(True, False)
        plt.yaxes(True, False)
        xs_all = [x for s in self.series for x in (s.xs[0], s.xs[-1], *(m.x for m in s.markers))]
        x_lo, x_hi = min(xs_all), max(xs_all)
        max_points = max(2, 2 * width)
        for series in self.series:
            xs, ys = thin(series.xs, series.ys, max_points)
            if len(xs) == 1:
                plt.scatter(xs, ys, color=series.colour, marker="●")
            else:
                plt.plot(xs, ys, color=series.colour, marker="braille")
        # A marker is a whole cell: keep them three cells apart or they hide the curve
        # (a 2000-epoch V-MCR² run latches 40 times).
        spacing = 3 * (x_hi - x_lo) / max(1, width - 6)
        top = self.series[-1]  # the selected run is drawn last: its latches get a line across the chart
        # At most about 8 latch lines (a run latching every epoch would hatch the chart), the latest kept;
        # none at x_lo, the y axis's column.
        for x in spaced_positions([x for x in top.latches if x > x_lo], max(spacing, (x_hi - x_lo) / 8)):
            plt.vline(x, color=LATCH_COLOUR)
        for series in self.series:
            for marker in spaced(series.markers, spacing):
                plt.scatter([marker.x], [marker.y], color=marker.colour, marker=marker.symbol)
        ticks = nice_ticks(x_lo, x_hi, max(2, width // 10), integer=self.integer_x)
        plt.xticks(ticks, tick_labels(ticks))
        if x_lo == x_hi:
            plt.xlim(x_lo - 1, x_hi + 1)
        # Round y ticks with short labels (plotext would write 161939.4).
        y_lo = min(min(s.ys) for s in self.series)
        y_hi = max(max(s.ys) for s in self.series)
        if y_hi > y_lo:
            rows = max(1, height - 3)  # less the title, the x axis and its labels
            most = max(2, rows // 2 + 1)
            if self.log_y:
                values = log_ticks(10 ** y_lo, 10 ** y_hi, most)
                y_ticks, labels = [math.log10(v) for v in values], tick_labels(values)
            else:
                y_ticks = nice_ticks(y_lo, y_hi, most)
                labels = tick_labels(y_ticks)
            if len(y_ticks) >= 2:
                plt.yticks(y_ticks, labels)
        plt.plotsize(width, max(1, height - 1))
        plt._set_size(width, max(1, height - 1))  # see PlotextPlot.render: plotsize alone is not enough
        plt.theme(self._get_plotext_theme_name(self.app.theme))
        return Group(title, Text.from_ansi(plt.build(), no_wrap=True))

    def title_line(self, width: int) -> Text:
        """``title  by x`` on the left, each series' latest value in its colour on the right.

        What does not fit goes: first the values, then ``by x``.
        """
        values = Text()
        for series in self.series:
            values.append(" ━", style=f"color({series.colour})")
            values.append(f" {fmt_value(10 ** series.ys[-1] if self.log_y else series.ys[-1])}")
        by = Text(f"  by {self.x_label}", style="dim") if self.x_label else Text()
        for right, with_by in ((values, True), (Text(), True), (Text(), False)):
            left = Text(self.chart_title, style="bold")
            if with_by:
                left.append_text(by)
            if left.cell_len + right.cell_len + 1 <= width:
                break
        left.append(" " * max(1, width - left.cell_len - right.cell_len))
        left.append_text(right)
        left.truncate(width)
        return left


def tick_labels(ticks: list[float]) -> list[str]:
    """Labels as short as the spacing of ``ticks`` allows: ``0.05``, ``250``, ``160k``, ``2.5M``."""
    step = min((b - a for a, b in zip(ticks, ticks[1:])), default=0) or max(abs(t) for t in ticks) or 1
    top = max(abs(t) for t in ticks)
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if top >= 10 * scale and step >= scale / 10:
            decimals = max(0, -math.floor(math.log10(step / scale)))
            return [f"{t / scale:.{decimals}f}{suffix}" for t in ticks]
    if step < 1e-3:
        return [f"{t:.1e}" for t in ticks]
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return [f"{t:.{decimals}f}" for t in ticks]


def log_ticks(lo: float, hi: float, most: int) -> list[float]:
    """Round values for a log axis over [lo, hi] (lo > 0): 1, 2, 5 × 10^k if few enough, else 1, 3 × 10^k,
    else powers of ten, else round values spaced as on a linear axis (a range narrower than ~3×)."""
    low, high = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    for mantissas in ((1, 2, 5), (1, 3), (1,)):
        ticks = [m * 10.0 ** k for k in range(low, high + 1) for m in mantissas if lo <= m * 10.0 ** k <= hi]
        if 2 <= len(ticks) <= most:
            return ticks
    return [t for t in nice_ticks(lo, hi, most) if t > 0]


def logarithmic(series: Series) -> Series:
    """``series`` with log10 of its positive values (the rest left out), for a log y axis."""
    kept = [(x, math.log10(y)) for x, y in zip(series.xs, series.ys) if y > 0]
    markers = [Marker(m.x, math.log10(m.y), m.symbol, m.colour) for m in series.markers if m.y > 0]
    return Series(series.label, series.colour, [x for x, _ in kept], [y for _, y in kept], markers, series.latches)


def spaced_positions(xs: list[float], spacing: float) -> list[float]:
    """The positions at least ``spacing`` apart, the latest of a crowd kept."""
    kept: list[float] = []
    for x in sorted(xs, reverse=True):
        if not kept or kept[-1] - x >= spacing:
            kept.append(x)
    return kept


def spaced(markers: list[Marker], spacing: float) -> list[Marker]:
    """The markers at least ``spacing`` apart along x (by symbol), the latest of a crowd kept."""
    kept: list[Marker] = []
    last_x: dict[str, float] = {}
    for marker in sorted(markers, key=lambda m: m.x, reverse=True):
        if marker.symbol in last_x and last_x[marker.symbol] - marker.x < spacing:
            continue
        kept.append(marker)
        last_x[marker.symbol] = marker.x
    return kept


def thin(xs: list[float], ys: list[float], max_points: int) -> tuple[list[float], list[float]]:
    """At most about ``max_points`` evenly spaced points, always keeping the last one."""
    n = len(xs)
    if n <= max_points:
        return xs, ys
    stride = math.ceil(n / max_points)
    keep = list(range(0, n, stride))
    if keep[-1] != n - 1:
        keep.append(n - 1)
    return [xs[i] for i in keep], [ys[i] for i in keep]


def nice_ticks(lo: float, hi: float, most: int, *, integer: bool = False) -> list[float]:
    """Round tick positions (1, 2, 5 × 10^k apart) within [lo, hi], at most ``most`` of them.

    ``integer``: only whole numbers (epochs have no halves).
    """
    if hi <= lo:
        return [lo]
    span = hi - lo
    for power in range(int(math.floor(math.log10(span / most))) - 1, 12):
        for base in (1, 2, 5):
            step = base * 10 ** power
            if integer and step < 1:
                continue
            first = math.ceil(lo / step) * step
            ticks = []
            t = first
            while t <= hi + 1e-9:
                ticks.append(round(t, 10))
                t += step
            if len(ticks) <= most:
                return ticks or [lo]
    return [lo, hi]


class ChartTrio(Vertical):
    """Three charts of ``CHARTS`` ((metric key, title) pairs): the first spans the width, two share a row."""

    CHARTS: tuple[tuple[str, str], ...] = ()
    DEFAULT_CSS = """
    ChartTrio > Horizontal { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        (key, title), *pair = self.CHARTS
        yield MetricChart(title, id=f"chart-{key}")
        with Horizontal():
            for key, title in pair:
                yield MetricChart(title, id=f"chart-{key}")

    def chart(self, key: str) -> MetricChart:
        return self.query_one(f"#chart-{key}", MetricChart)
