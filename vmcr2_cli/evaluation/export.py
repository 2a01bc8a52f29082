"""Runs' epoch lines as one table (``vmcr2 export``): one row per run and epoch, one column per metric.

The epochs are those compare reads (a resumed run's repeated epochs counted once);
``epoch`` is the 1-based number of epochs done, as in the dashboard and compare. The row of an
epoch after which the run was evaluated (``eval_every``, the end) also holds that eval line's
numbers (accuracies, exact rates, structure; nearest subspace at each probed p as
``nearest_subspace_accuracy_p<p>``); the other rows leave those cells empty.
Plain CSV, which pandas (``pd.read_csv``), R and spreadsheets read as is; missing
values are empty cells.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from vmcr2_cli.evaluation.comparison import read_run
from vmcr2_cli.runs import RunDir, epoch_number, line_scalars

# The columns every row starts with; the metrics follow in the order the runs first logged them.
ID_COLUMNS = ("run_id", "objective", "vmcr2_method", "dataset", "epoch", "step", "time")


def epoch_rows(runs: list[RunDir]) -> list[dict[str, Any]]:
    """One dict per run and epoch: the identifying columns, then the line's numbers."""
    rows = []
    for run in runs:
        record = read_run(run)
        method = record.key("vmcr2_method") if record.objective == "vmcr2" else None
        evaluations = {line["epoch"]: eval_scalars(line) for line in record.evals}
        for line in record.epochs:
            done = epoch_number(line)
            rows.append({"run_id": run.name, "objective": record.objective, "vmcr2_method": method,
                         "dataset": record.key("dataset"), "epoch": done, "step": line.get("step"),
                         "time": line.get("time"), **line_scalars(line), **evaluations.get(done, {})})
    return rows


def eval_scalars(line: dict[str, Any]) -> dict[str, float]:
    """An eval line's numbers, its nearest subspace at each probed p flattened into columns."""
    by_components = line.get("nearest_subspace_accuracy_by_components")
    flat = {f"nearest_subspace_accuracy_p{p}": value for p, value in by_components.items()} \
        if isinstance(by_components, dict) else {}
    return {**line_scalars(line), **line_scalars(flat)}


def to_csv(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV text, with the union of their columns (ID_COLUMNS first)."""
    columns = list(ID_COLUMNS)
    for row in rows:
        columns += [key for key in row if key not in columns]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()
