"""textual-plotext (vmcr2's MetricChart) against textual-plot's PlotWidget: the same two curves of N
points and a latch line at 80×24, 20 redraws each timed after the first.

Needs ``pip install textual-plot`` (not a dependency of vmcr2). Run: ``python benchmarks/chart_widgets.py``.
"""

import asyncio
import math
import time

from textual.app import App
from textual_plot import PlotWidget

from vmcr2_cli.tui.metric_chart import MetricChart, Series, thin

REDRAWS = 20


def curves(n: int) -> tuple[list[float], list[float], list[float]]:
    xs = [i + 1 for i in range(n)]
    return (xs, [40 - 30 * math.exp(-i / (n / 5)) for i in range(n)],
            [35 - 25 * math.exp(-i / (n / 8)) for i in range(n)])


class One(App):
    def __init__(self, widget) -> None:
        super().__init__()
        self.widget = widget

    def compose(self):
        yield self.widget


async def seconds_per_redraw(make, draw, n: int) -> float:
    widget = make()
    async with One(widget).run_test(size=(80, 24)) as pilot:
        xs, a, b = curves(n)
        draw(widget, xs, a, b)
        await pilot.pause()
        start = time.perf_counter()
        for _ in range(REDRAWS):
            draw(widget, xs, a, b)
            await pilot.pause()
        return (time.perf_counter() - start) / REDRAWS


def draw_plotext(widget, xs, a, b) -> None:
    widget.show([Series("a", 6, xs, a), Series("b", 5, xs, b, latches=[len(xs) / 3])], x_label="epoch")


def draw_plot(widget, xs, a, b, points: int | None = None) -> None:
    if points is not None:  # thinned as MetricChart thins: about 2 points per column
        (xs_a, a), (xs_b, b) = thin(xs, a, points), thin(xs, b, points)
    else:
        xs_a = xs_b = xs
    widget.clear()
    widget.plot(xs_a, a, line_style="cyan")
    widget.plot(xs_b, b, line_style="magenta")
    widget.add_v_line(len(xs) / 3, "yellow")


def main() -> None:
    for n in (200, 20_000, 200_000):
        plotext = asyncio.run(seconds_per_redraw(lambda: MetricChart("ΔR"), draw_plotext, n))
        plot = asyncio.run(seconds_per_redraw(PlotWidget, draw_plot, n))
        thinned = asyncio.run(seconds_per_redraw(PlotWidget, lambda w, *c: draw_plot(w, *c, points=160), n))
        print(f"N = {n:>7}: textual-plotext (MetricChart) {plotext * 1000:7.1f} ms/redraw   "
              f"textual-plot {plot * 1000:8.1f}   textual-plot thinned {thinned * 1000:7.1f}")


if __name__ == "__main__":
    main()
