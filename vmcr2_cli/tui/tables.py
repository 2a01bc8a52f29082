"""Rich tables of run summaries: the dashboard's run list and ``vmcr2 watch --once``.

``runs_table`` fits the columns to a width: the most important ones (run, status,
epoch, ΔR, ETA…) come first, and the others join as the width allows, so an 80-column
terminal and a 200-column one both get a table that is not cut mid-number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from rich.table import Table
from rich.text import Text

from vmcr2_cli.objective_registry import objective_label
from vmcr2_cli.numbers import NO_VALUE, fmt_accuracy, fmt_duration, fmt_int, fmt_rate, fmt_seconds, fmt_value
from vmcr2_cli.tui.formatting import fmt_epoch, fmt_gpu, status_text
from vmcr2_cli.tui.summary import RunSummary

NAME_MIN_WIDTH = 16
TIMESTAMP = re.compile(r"^\d{8}-\d{6}-")
DATE = re.compile(r"^\d{8}-(?=\d{6}-)")


@dataclass(frozen=True)
class Column:
    """One column: header, least width (so that columns do not jump as values change),
    rank (1 = shown first), and its cell."""

    header: str
    width: int
    rank: int
    cell: Callable[[RunSummary], Text | str]
    justify: str = "right"


def _status_cell(summary: RunSummary) -> Text:
    text, style = status_text(summary.status)
    return Text(text, style=style)


COLUMNS: tuple[Column, ...] = (
    Column("obj", 6, 4, lambda s: objective_label(s.objective), "left"),
    Column("status", 11, 1, _status_cell, "left"),
    Column("epoch", 9, 2, lambda s: fmt_epoch(s.epoch, s.total_epochs)),
    Column("step", 7, 11, lambda s: fmt_int(s.step)),
    Column("ΔR", 7, 3, lambda s: fmt_value(s.delta_r)),
    Column("R", 7, 6, lambda s: fmt_value(s.r)),
    Column("R_c", 7, 7, lambda s: fmt_value(s.r_c)),
    Column("s/epoch", 7, 8, lambda s: fmt_seconds(s.mean_epoch_time_s)),
    Column("img/s", 6, 9, lambda s: fmt_rate(s.images_per_s)),
    Column("GPU", 6, 12, lambda s: fmt_gpu(s.has_gpu, s.gpu_util, s.gpu_mem_mb)),
    Column("ETA", 6, 5, lambda s: fmt_duration(s.eta_s)),
    Column("profile", 7, 13, lambda s: s.profile or NO_VALUE, "left"),
)


def fit_columns(summaries: list[RunSummary], width: int, *, lead_width: int = 0
                ) -> tuple[list[tuple[Column, int]], list[Column]]:
    """The columns (in display order, each with its width) that fit in ``width``, and those left out.

    ``lead_width``: cells taken before the run names. Columns join in rank order while they
    fit beside a run name of ``NAME_MIN_WIDTH``; each is as wide as its widest cell.
    """
    budget = width - lead_width - NAME_MIN_WIDTH
    chosen: dict[str, int] = {}
    for column in sorted(COLUMNS, key=lambda c: c.rank):
        cells = [column.cell(summary) for summary in summaries]
        need = max([column.width, len(column.header)] + [Text(c).cell_len if isinstance(c, str) else c.cell_len
                                                          for c in cells])
        if need + 2 > budget:  # a space each side
            break  # keep the rank order: never show a lesser column in place of a greater one
        chosen[column.header] = need
        budget -= need + 2
    shown = [(c, chosen[c.header]) for c in COLUMNS if c.header in chosen]
    return shown, [c for c in COLUMNS if c.header not in chosen]


def shorten(name: str, width: int) -> str:
    """``name`` in at most ``width`` cells.

    Run ids start with a timestamp (``20261123-101502-``) and end with what tells runs
    apart, so the timestamp goes first, then the start of the rest.
    """
    if len(name) <= width or width < 2:
        return name
    rest = TIMESTAMP.sub("", name, count=1)
    if len(rest) <= width:
        return rest
    return "…" + rest[-(width - 1):]


def short_names(names: list[str], width: int, *, strip: bool = False) -> list[str]:
    """``shorten`` each name (``strip``: drop the timestamp even where the name fits), but
    keep apart names that would come out the same: those keep their time of day
    (``101502-synthetic-vmcr2``), cut from the left if need be."""
    def cut(text: str) -> str:
        return text if len(text) <= width or width < 2 else "…" + text[-(width - 1):]

    short = [cut(TIMESTAMP.sub("", name, count=1)) if strip else shorten(name, width) for name in names]
    clashes = {name for name in short if short.count(name) > 1}
    return [cut(DATE.sub("", name, count=1)) if s in clashes else s for name, s in zip(names, short)]


def runs_table(summaries: list[RunSummary], width: int, *, colours: dict[str, int] | None = None,
               selected: str | None = None, numbered: bool = False,
               first_number: int = 1) -> tuple[Table, list[Column]]:
    """A table with a row per run, fitted to ``width``; also returns the columns left out.

    ``colours`` (run key → ANSI colour number) adds a swatch that doubles as the charts'
    legend; ``selected`` (a run key) is shown in reverse video; ``numbered`` adds ``#`` (counting from ``first_number``).
    """
    # The lead columns (#, swatch) are 2 cells wide; every column but the last has 2 cells of padding.
    lead = (4 if numbered else 0) + (4 if colours is not None else 0)
    shown, hidden = fit_columns(summaries, width, lead_width=lead)
    name_width = max(NAME_MIN_WIDTH, width - lead - sum(w + 2 for _, w in shown))
    names = short_names([summary.name for summary in summaries], name_width)
    table = Table(box=None, padding=(0, 1), pad_edge=False, expand=False, show_edge=False,
                  header_style="bold", highlight=False)
    if numbered:
        table.add_column("#", justify="right", width=2, no_wrap=True)
    if colours is not None:
        table.add_column("", width=2, no_wrap=True)
    table.add_column("run", width=min(name_width, max(map(len, names), default=3)), no_wrap=True,
                     overflow="ellipsis")
    for column, column_width in shown:
        table.add_column(column.header, justify=column.justify, no_wrap=True, width=column_width,
                         overflow="ellipsis")
    for index, summary in enumerate(summaries, start=first_number):
        cells: list[Text | str] = []
        if numbered:
            cells.append(str(index))
        if colours is not None:
            cells.append(Text("━━", style=f"color({colours.get(summary.key, 7)})"))
        cells.append(names[index - first_number])
        cells.extend(column.cell(summary) for column, _ in shown)
        table.add_row(*cells, style="reverse" if summary.key == selected else None)
    return table, hidden


def run_detail_table(summary: RunSummary) -> Table:
    """Every field of one run, one per line: ``--once`` for a single run or a narrow terminal."""
    table = Table(box=None, padding=(0, 1), pad_edge=False, show_header=False, title=summary.name,
                  title_justify="left", title_style="bold")
    table.add_column("field", style="dim", no_wrap=True)
    table.add_column("value", overflow="fold")
    status, style = status_text(summary.status)
    rows: list[tuple[str, Text | str]] = [
        ("objective", objective_label(summary.objective)),
        ("profile", summary.profile or NO_VALUE),
        ("dataset", summary.dataset or NO_VALUE),
        ("device", summary.device or NO_VALUE),
        ("status", Text(status + (f" ({summary.stalled_reason})" if summary.stalled_reason else ""),
                        style=style)),
        ("epoch", fmt_epoch(summary.epoch, summary.total_epochs)),
        ("step", fmt_int(summary.step)),
        ("ΔR", fmt_value(summary.delta_r)),
        ("R", fmt_value(summary.r)),
        ("R_c", fmt_value(summary.r_c)),
    ]
    if summary.objective == "vmcr2" or summary.m_term is not None:
        rows += [("R^v", fmt_value(summary.r_v)), ("R_c^v", fmt_value(summary.r_c_v)),
                 ("M", fmt_value(summary.m_term)), ("R^v / R", fmt_value(summary.r_v_over_r))]
    if summary.invariance is not None:
        rows.append(("view invariance", fmt_value(summary.invariance)))
    rows += [
        ("loss", fmt_value(summary.loss)),
        ("lr", NO_VALUE if summary.lr is None else f"{summary.lr:.3g}"),
        ("mean epoch time", fmt_seconds(summary.mean_epoch_time_s)),
        ("images/s", fmt_rate(summary.images_per_s)),
        ("GPU", fmt_gpu(summary.has_gpu, summary.gpu_util, summary.gpu_mem_mb)),
        ("elapsed", fmt_duration(summary.elapsed_s)),
        ("ETA", fmt_duration(summary.eta_s)),
        ("last line", NO_VALUE if summary.last_line_age_s is None
         else f"{fmt_duration(summary.last_line_age_s)} ago"),
        ("latches", str(summary.latches)),
        ("eval accuracy", fmt_accuracy(summary.eval_accuracy)),
        ("kNN accuracy", fmt_accuracy(summary.knn_accuracy)),
    ]
    if summary.corrupt_lines:
        rows.append(("corrupt lines", Text(f"{summary.corrupt_lines} skipped", style="yellow")))
    for field, value in rows:
        table.add_row(field, value)
    return table

