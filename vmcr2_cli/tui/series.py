"""Turns run histories into the ``Series`` the charts draw: by epoch, or by time since the run started."""

from __future__ import annotations

from vmcr2_cli.tui.formatting import EVAL_MARKER, LATCH_COLOUR, LATCH_MARKER
from vmcr2_cli.tui.history import RunHistory
from vmcr2_cli.tui.metric_chart import Marker, Series

EVAL_COLOUR = "default"  # the terminal's own foreground: visible on dark and light backgrounds


def epoch_series(runs: list[RunHistory], key: str, colours: dict[str, int], *,
                 markers: bool = True) -> list[Series]:
    """``key`` over epochs done, one series per run that has it, latch and eval events marked on it."""
    out = []
    for run in runs:
        xs, ys = run.series(key)
        if not xs:
            continue
        marks: list[Marker] = []
        if markers:
            for events, symbol, colour in ((run.latches, LATCH_MARKER, LATCH_COLOUR),
                                           (run.evals, EVAL_MARKER, EVAL_COLOUR)):
                for event in events:
                    x = run.event_x(event)
                    y = run.value_at(key, x)
                    if y is not None:
                        marks.append(Marker(x, y, symbol, colour))
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
