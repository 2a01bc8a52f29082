"""A bench report (the dict of ``runner.run_bench``) as Rich tables and notes.

Every figure shown is read from the report dict, so the JSON carries all of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from vmcr2_cli.numbers import NO_VALUE, fmt_memory

from .environment import short_name

VERSION_ORDER = ("vmcr2", "python", "torch", "cuda", "cudnn")


# ---------------------------------------------------------------------------------- numbers as text

_UNITS = ((1e-3, 1e6, "µs"), (1.0, 1e3, "ms"), (math.inf, 1.0, "s"))


def _unit(seconds: float) -> tuple[float, str]:
    """(scale, name) of the unit a time is shown in: µs below 1 ms, ms below 1 s, else s."""
    for below, scale, name in _UNITS:
        if seconds < below:
            return scale, name
    return 1.0, "s"


def _number(value: float) -> str:
    """Three significant figures, without exponents for large values."""
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def format_seconds(seconds: float | None) -> str:
    """'138 ms', '10.1 s', '1,234 s', '—' for None."""
    if seconds is None or not math.isfinite(seconds):
        return NO_VALUE
    scale, name = _unit(seconds)
    return f"{_number(seconds * scale)} {name}"


def format_spread(low: float | None, high: float | None, median: float | None) -> str:
    """The interquartile range 'q1–q3' in the median's unit (given in the median's cell)."""
    if low is None or high is None or median is None:
        return NO_VALUE
    scale, _ = _unit(median)
    return f"{_number(low * scale)}–{_number(high * scale)}"


def format_ratio(value: float | None) -> str:
    return NO_VALUE if value is None else f"{_number(value)}×"


def format_share(value: float | None) -> str:
    return NO_VALUE if value is None else f"{100 * value:.3g}%"


# ---------------------------------------------------------------------------------- tables

def render(report: dict) -> Group:
    """The timings tables, the MCR²/V-MCR² ratio table and the notes, as one Rich renderable."""
    parts = [title_text(report), objectives_table(report)]
    if report["settings"]["backbone"] is not None:
        parts.append(training_step_table(report))
    if report["settings"].get("micro_batch"):
        parts.append(chunked_step_table(report))
    parts.append(ratios_table(report))
    if any(entry["vmcr2"] for entry in report["ratios"]):
        parts.append(scaling_table(report))
    parts.append(notes_text(report))
    spaced = [parts[0]]
    for part in parts[1:]:
        spaced += [Text(""), part]
    return Group(*spaced)


def title_text(report: dict) -> Text:
    settings, env = report["settings"], report["environment"]
    return Text(f"vmcr2 bench — {short_name(env)}, torch {env['versions']['torch']}\n"
                f"m = {settings['batch_size']}, d = {settings['dim']}, q = {settings['atoms_per_class']}·k, "
                f"ε² = {settings['eps2']:g}, objectives in {settings['dtype']}", style="bold")


def objectives_table(report: dict) -> Table:
    """Each objective alone (forward + backward): median, IQR, repeats, speedup over the reference."""
    return _timings_table(report, "", "objective alone: forward + backward (time per step)", {})


def training_step_table(report: dict) -> Table:
    """Whole training steps: median, IQR, repeats, speedup, the objective's share, the projected epoch."""
    settings = report["settings"]
    dataset = settings["dataset_name"] or f"{settings['dataset_size']} images"
    title = f"training step with {settings['backbone']} (epoch: {settings['steps_per_epoch']} steps, {dataset})"
    return _timings_table(report, "step_", title, {"share": lambda row: format_share(row["step_share"]),
                                                   "epoch": lambda row: format_seconds(row["epoch_s"])})


def chunked_step_table(report: dict) -> Table:
    """The same training steps with the network in chunks (micro_batch): their cost in time and the
    share of the whole step's peak memory they need."""
    title = (f"training step with the network in chunks of {report['settings']['micro_batch']} images "
             f"(micro_batch; the objective on the whole batch)")
    return _timings_table(report, "chunked_step_", title, {
        "time / whole": lambda row: format_ratio(row["chunked_step_cost"]),
        "memory / whole": lambda row: format_ratio(row["chunked_memory_share"])})


def _timings_table(report: dict, prefix: str, title: str, extra: dict[str, Callable[[dict], str]]) -> Table:
    """The rows that have ``prefix``-timings, a section per k: variant, k, median, IQR, n, speedup over
    the reference, the ``extra`` columns, and the peak memory where it was measured."""
    rows = [row for row in report["rows"] if row[prefix + "median_s"] is not None]
    with_memory = any(row[prefix + "peak_memory_mb"] is not None for row in rows)
    table = Table(title=title, title_justify="left")
    table.add_column("objective", style="bold")
    for name in ("k", "median", "IQR", "n", "vs ref.", *extra, *(["peak mem"] if with_memory else [])):
        table.add_column(name, justify="right")
    for index, row in enumerate(rows):
        if index and row["classes"] != rows[index - 1]["classes"]:
            table.add_section()
        median = row[prefix + "median_s"]
        cells = [row["variant"], NO_VALUE if row["classes"] is None else str(row["classes"]), format_seconds(median),
                 format_spread(row[prefix + "q1_s"], row[prefix + "q3_s"], median),
                 _count(row[prefix + "repeats"], row[prefix + "note"]),
                 format_ratio(row[prefix + "speedup_vs_reference"]), *(cell(row) for cell in extra.values())]
        if with_memory:
            cells.append(fmt_memory(row[prefix + "peak_memory_mb"]))
        table.add_row(*cells)
    return table


def ratios_table(report: dict) -> Table:
    """Ours beside the paper: MCR² (the per-class reference) / V-MCR² time, per number of classes."""
    with_step = report["settings"]["backbone"] is not None
    table = Table(title="MCR² / V-MCR²: mcr2-reference time over vmcr2 time (higher: V-MCR² gains more)",
                  title_justify="left")
    table.add_column("k", justify="right")
    table.add_column("ours: objective", justify="right")
    if with_step:
        table.add_column("ours: train step", justify="right")
    table.add_column("paper, Table 1: A100, s per epoch")
    for entry in report["ratios"]:
        paper = "\n".join(paper_ratio_text(item) for item in entry["paper"]) or NO_VALUE
        cells = [str(entry["classes"]), format_ratio(entry["objective_ratio"])]
        if with_step:
            cells.append(format_ratio(entry["step_ratio"]))
        table.add_row(*cells, paper)
    return table


def scaling_table(report: dict) -> Table:
    """Each V-MCR² variant per k: its time over the exact batched MCR²'s, and over its own at the smallest k."""
    entries = report["ratios"]
    variants = list(entries[0]["vmcr2"])
    smallest = entries[0]["classes"]
    table = Table(title=f"V-MCR² variants: time over mcr2 (exact, batched) at the same k · over its own time "
                        f"at k = {smallest}", title_justify="left")
    table.add_column("k", justify="right")
    for variant in variants:
        table.add_column(variant, justify="right")
    for entry in entries:
        table.add_row(str(entry["classes"]), *(
            f"{format_ratio(entry['vmcr2'][variant]['over_mcr2'])} · "
            f"{format_ratio(entry['vmcr2'][variant]['over_smallest_k'])}" for variant in variants))
    return table


def paper_ratio_text(item: dict) -> str:
    """'Tiny ImageNet: 527.85 / 44.23 = 11.93×', marked when the paper's m, d, q differ from the bench's."""
    text = f"{item['dataset']}: {item['mcr2_s']:.2f} / {item['vmcr2_s']:.2f} = {item['ratio']:.2f}×"
    return text if item["same_shape"] else text + " (other m, d, q)"


def notes_text(report: dict) -> Text:
    versions = report["environment"]["versions"]
    lines = [f"{report['command']}  ·  {report['started']}  ·  "
             + ", ".join(f"{name} {versions[name]}" for name in VERSION_ORDER if versions.get(name) is not None)]
    lines += [f"• {note}" for note in report["notes"]]
    lines.append("n: timed steps (* fewer than asked, see the notes); IQR in the median's unit.")
    return Text("\n".join(lines), style="dim")


def _count(repeats: int | None, note: str | None) -> str:
    if repeats is None:
        return NO_VALUE
    return f"{repeats}*" if note else str(repeats)


def print_report(report: dict, console: Console | None = None) -> None:
    (console or Console()).print(render(report))
