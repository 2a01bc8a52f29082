"""Turns run histories into the ``Series`` the charts draw: epoch lines by epoch, step or time, and GPU readings
by time since the run started."""

from __future__ import annotations

from bisect import bisect_left

from vmcr2_cli.tui.chart_options import ChartOptions, ema
from vmcr2_cli.tui.formatting import EVAL_MARKER, LATCH_COLOUR, LATCH_MARKER
from vmcr2_cli.tui.history import RunHistory
from vmcr2_cli.tui.metric_chart import Marker, Series

EVAL_COLOUR = "default"  # the terminal's own foreground: visible on dark and light backgrounds


def epoch_series(runs: list[RunHistory], key: str, colours: dict[str, int], *,
                 markers: bool = True, options: ChartOptions = ChartOptions()) -> list[Series]:
    """``key`` from the epoch lines over ``options.x_axis``, smoothed as ``options`` say, one series per run
    that has it; latch and eval events marked on the curve, and each latch's x kept for its line."""
    out = []
    axis = options.x_axis
    for run in runs:
        xs, ys = run.series(key, axis)
        if not xs:
            continue
        ys = ema(ys, options.weight)
        marks: list[Marker] = []
        latches: list[float] = []
        if markers:
            for events, symbol, colour in ((run.latches, LATCH_MARKER, LATCH_COLOUR),
                                           (run.evals, EVAL_MARKER, EVAL_COLOUR)):
                for event in events:
                    x = run.event_x(event, axis)
                    if symbol == LATCH_MARKER:
                        latches.append(x)
                    index = bisect_left(xs, x)
                    nearest = min((i for i in (index - 1, index) if 0 <= i < len(xs)),
                                  key=lambda i: abs(xs[i] - x))
                    marks.append(Marker(x, ys[nearest], symbol, colour))
        out.append(Series(run.name, colours.get(run.key, 7), xs, ys, marks, latches))
    return out


def eval_series(runs: list[RunHistory], key: str, colours: dict[str, int], *,
                options: ChartOptions = ChartOptions()) -> list[Series]:
    """``key`` from the eval lines over ``options.x_axis``, one series per run that has it; unsmoothed (a
    point every few epochs), each evaluation marked."""
    out = []
    for run in runs:
        xs, ys = run.eval_series(key, options.x_axis)
        if xs:
            marks = [Marker(x, y, EVAL_MARKER, colours.get(run.key, 7)) for x, y in zip(xs, ys)]
            out.append(Series(run.name, colours.get(run.key, 7), xs, ys, marks))
    return out


def time_series(runs: list[RunHistory], field: str, colours: dict[str, int], *,
                scale: float = 1.0) -> tuple[list[Series], str]:
    """GPU readings (``field``: ``util`` or ``mem_mb``, times ``scale``) over time since each run started.

    Returns the series and the x axis' label: minutes, or hours past three hours.
    """
    raw = []
    for run in runs:
        start = run.start_time
        points = [(sample.time - start, getattr(sample, field) * scale) for sample in run.gpu
                  if getattr(sample, field) is not None and start is not None]
        if points:
            raw.append((run, points))
    longest = max((p[-1][0] for _, p in raw), default=0.0)
    unit, seconds = ("hours", 3600.0) if longest > 3 * 3600 else ("min", 60.0)
    series = [Series(run.name, colours.get(run.key, 7), [t / seconds for t, _ in points],
                     [v for _, v in points]) for run, points in raw]
    return series, f"{unit} since start"
