"""Runs side by side: what ``vmcr2 compare`` reads from each run directory and how it sums it up.

Only the run-directory contract is read (meta.json, config.toml, metrics.jsonl,
eval.json), so runs still training, interrupted or failed compare like finished ones:
a last metrics line still being written is ignored, and a run with no epoch yet has
empty curves and "—" in the table.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmcr2_cli.config import FIELDS
from vmcr2_cli.errors import BadInput
from vmcr2_cli.evaluation.classical import SCORES
from vmcr2_cli.models.registry import CONSTRUCTED_MODELS
from vmcr2_cli.numbers import finite, fmt
from vmcr2_cli.objective_registry import objective_label
from vmcr2_cli.runs import RunDir, add_epoch_line, epoch_number, is_run_dir, runs_in

# The accuracies of eval lines drawn against epoch (compare's accuracy figure).
ACCURACY_KEYS = ("nearest_subspace_accuracy", "knn_accuracy", "head_accuracy")
# What must agree for ΔR, R and R_c to be comparable across runs (the task and the scale).
MUST_MATCH = ("dataset", "num_classes", "feature_dim", "eps2")


@dataclass
class RunRecord:
    """One run as compare sees it. ``epochs`` are the epoch lines, one per epoch, in order."""

    run: RunDir
    meta: dict[str, Any]
    config: dict[str, Any]
    epochs: list[dict[str, Any]] = field(default_factory=list)
    evaluation: dict[str, Any] | None = None  # eval.json
    evals: list[dict[str, Any]] = field(default_factory=list)  # the `eval` lines, one per epoch, in order

    @property
    def last_eval_line(self) -> dict[str, Any] | None:
        return self.evals[-1] if self.evals else None

    @property
    def objective(self) -> str | None:
        return self.config.get("objective") or self.meta.get("objective")

    @property
    def num_classes(self) -> int | None:
        return self.meta.get("num_classes") or (self.config.get("num_classes")
                                                if self.config.get("dataset") == "synthetic" else None)

    def key(self, name: str) -> Any:
        return self.num_classes if name == "num_classes" else self.config.get(name, self.meta.get(name))


def resolve_run_paths(paths: list[str | Path]) -> list[RunDir]:
    """Each path a run (``runs/latest`` followed), or a folder whose run directories are all taken.

    BadInput for a path that is neither, and for a run given twice.
    """
    runs: list[RunDir] = []
    for path in paths:
        folder = Path(path)
        if folder.is_dir() and not is_run_dir(folder.resolve()):
            found = list(runs_in(folder))
            if found:
                runs.extend(found)
                continue
        runs.append(RunDir.open(path))
    seen: set[Path] = set()
    for run in runs:
        if run.path in seen:
            raise BadInput(f"compare: run {run.path} is given twice")
        seen.add(run.path)
    return runs


def read_run(run: RunDir) -> RunRecord:
    """The parts of a run directory compare uses; tolerant of runs in any state."""
    meta = run.read_meta()
    config = run.read_config_table()  # unvalidated: runs of older or newer versions still compare
    epochs: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    for line in run.read_metrics(skip_types=("step",)):  # 10⁶ step lines are not read
        kind = line.get("type")
        if kind in ("epoch", "eval") and isinstance(line.get("epoch"), int):
            add_epoch_line(epochs if kind == "epoch" else evals, line)
    return RunRecord(run, meta, config, epochs, run.read_eval(), evals)


def check_compatible(records: list[RunRecord]) -> list[str]:
    """BadInput when the runs solve different tasks (dataset, classes, d, ε²); notes on lesser differences."""
    first = records[0]
    for record in records[1:]:
        for name in MUST_MATCH:
            a, b = first.key(name), record.key(name)
            if a is not None and b is not None and a != b:
                raise BadInput(f"compare: incompatible runs: {first.run.name} has {name} = {a}, "
                               f"{record.run.name} has {name} = {b} (ΔR is not comparable; --mixed compares anyway)")
    notes = []
    for name, why in (("batch_size", "batch-level ΔR, R and R_c differ in scale with the batch size"),
                      ("device", "epoch times (and the speedup) compare only on the same device")):
        values = {str(record.meta.get(name) if name == "device" else record.key(name)) for record in records}
        if len(values) > 1:
            notes.append(f"the runs differ in {name} ({', '.join(sorted(values))}): {why}")
    return notes


def summarize(records: list[RunRecord]) -> list[dict[str, Any]]:
    """One row per run, in order; ``speedup`` is the first run's median epoch time over each run's."""
    rows = [_row(record) for record in records]
    labels = run_labels(records)
    reference = rows[0]["epoch_time_median_s"] if rows else None
    for row, label in zip(rows, labels):
        row["label"] = label
        median = row["epoch_time_median_s"]
        row["speedup"] = reference / median if reference and median else None
    return rows


# Config keys that do not change what a run learns: not used to tell runs apart.
NOT_DISTINGUISHING = ("description", "data_root", "device", "log_every", "eval_at_end", "eval_every",
                      "checkpoint_minutes")


def run_labels(records: list[RunRecord]) -> list[str]:
    """The objective's name (with V-MCR²'s method); where several runs share it, the config keys
    whose values tell them apart (a sweep's ``mu=0.1 lr=0.01``), else the run's name."""
    labels = [_kind(record) for record in records]
    named = []
    for label, record in zip(labels, records):
        group = [other for other, same in zip(records, labels) if same == label]
        if len(group) == 1:
            named.append(label)
            continue
        keys = [key for key in dict.fromkeys(key for other in group for key in other.config)
                if key not in NOT_DISTINGUISHING
                and len({repr(_effective_setting(other, key)) for other in group}) > 1]
        values = " ".join(f"{key}={_setting(record, key)}" for key in keys)
        distinct = len({tuple(repr(_effective_setting(other, key)) for key in keys) for other in group}) == len(group)
        named.append(f"{label} {values}" if keys and distinct else f"{label} ({record.run.name})")
    return named


def _kind(record: RunRecord) -> str:
    """What made the run's features: its objective (with V-MCR²'s method), or a ReduNet, constructed or
    trained from its operators (``init_from``: constructed ones, or random ones with ``init_random``)."""
    model = record.key("model")
    trained = objective_label(record.objective, record.key("vmcr2_method"))
    if model not in CONSTRUCTED_MODELS:
        return trained
    network = "ReduNet" if model == "redunet" else f"ReduNet ({_setting(record, 'redunet_shifts')} shifts)"
    if not _setting(record, "init_from"):
        return network
    return f"{network} + {trained}{' from random operators' if _setting(record, 'init_random') else ''}"


def _setting(record: RunRecord, key: str) -> Any:
    """``key`` in the run's config; a key its version did not write yet had its default then."""
    field = FIELDS.get(key)
    return record.config.get(key, field.default if field is not None else None)


def _effective_setting(record: RunRecord, key: str) -> Any:
    """``_setting``, or None where the key has no effect in the run (``latch_source`` of a CE run)."""
    field = FIELDS.get(key)
    applies = field.metadata["applies"] if field is not None else None
    if applies is not None and _setting(record, applies[0]) not in applies[1]:
        return None
    return _setting(record, key)


def _row(record: RunRecord) -> dict[str, Any]:
    epochs = record.epochs
    delta = [(epoch_number(e), e.get("delta_r")) for e in epochs if finite(e.get("delta_r")) is not None]
    times = [e["epoch_time_s"] for e in epochs if finite(e.get("epoch_time_s")) is not None]
    last = epochs[-1] if epochs else {}
    best = max(delta, key=lambda pair: pair[1]) if delta else (None, None)
    accuracy, source, evaluation = _test_accuracy(record)
    measured = [(line["epoch"], line["nearest_subspace_accuracy"]) for line in record.evals
                if finite(line.get("nearest_subspace_accuracy")) is not None]
    peak = max(measured, key=lambda pair: pair[1]) if len(measured) > 1 else (None, None)
    return {
        "run_id": record.run.name,
        "run_dir": str(record.run.path),
        "objective": record.objective,
        "profile": record.meta.get("profile"),
        "dataset": record.key("dataset"),
        "num_classes": record.num_classes,
        "feature_dim": record.key("feature_dim"),
        "batch_size": record.key("batch_size"),
        "seed": record.key("seed"),
        "device": record.meta.get("device"),
        "status": record.meta.get("status", "unknown"),
        "epochs_done": len(epochs),
        "epochs_total": record.key("epochs"),
        "delta_r_final": finite(last.get("delta_r")),
        "delta_r_best": finite(best[1]),
        "delta_r_best_epoch": best[0],
        "r_final": finite(last.get("r")),
        "r_c_final": finite(last.get("r_c")),
        "test_accuracy": accuracy,
        "head_accuracy": finite(evaluation.get("head_accuracy")),
        "knn_accuracy": finite(evaluation.get("knn_accuracy")),
        # vmcr2 eval --methods svm,probe,kmeans,rrc, when it was asked for
        **{score.key: finite((record.evaluation or {}).get(score.key)) for score in SCORES},
        "test_accuracy_source": source,
        # the highest nearest-subspace accuracy of the evaluations along the run (eval_every), and when
        "nearest_subspace_peak": peak[1],
        "nearest_subspace_peak_epoch": peak[0],
        "evaluations": len(record.evals),
        "epoch_time_mean_s": statistics.fmean(times) if times else None,
        "epoch_time_median_s": statistics.median(times) if times else None,
    }


def _test_accuracy(record: RunRecord) -> tuple[float | None, str | None, dict[str, Any]]:
    """Nearest-subspace test accuracy, where it came from and that evaluation's values (the CE head's
    and kNN's accuracy beside it): eval.json, else training's final eval line."""
    for source, values in (("eval.json", record.evaluation), ("training end", record.last_eval_line)):
        if values and finite(values.get("nearest_subspace_accuracy")) is not None:
            return values["nearest_subspace_accuracy"], source, values
    return None, None, {}


def curves(records: list[RunRecord]):
    """The Figure-1 series of each run, labelled as in the table."""
    from vmcr2_cli.plots.curves import Curve

    result = []
    for record, label in zip(records, run_labels(records)):
        xs = [epoch_number(e) for e in record.epochs]
        values = {key: [finite(e.get(key)) for e in record.epochs] for key in ("delta_r", "r", "r_c")}
        accuracy = {key: [(line["epoch"], finite(line.get(key))) for line in record.evals
                          if finite(line.get(key)) is not None] for key in ACCURACY_KEYS}
        result.append(Curve(label, record.objective, record.meta.get("status", "unknown"), xs, values, accuracy))
    return result


def to_markdown(rows: list[dict[str, Any]], figure: Path | None, notes: list[str], markdown_path: Path,
                accuracy_figure: Path | None = None) -> str:
    """The comparison as a Markdown document: the table, the notes and the figures."""
    header = ["run", "objective", "profile", "dataset", "classes", "status", "epochs", "final ΔR", "best ΔR",
              "R", "R_c", "test accuracy", "epoch time mean / median (s)", "speedup"]
    lines = [f"# Comparison of {len(rows)} run{'s' if len(rows) != 1 else ''}", "",
             "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in table_cells(rows):
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    lines.append("")
    lines.append("ΔR, R and R_c are the means over each epoch's training batches, as logged during training; "
                 "the speedup is the first run's median epoch time divided by each run's.")
    for note in notes:
        lines.append(f"\n*Note: {note}.*")
    for path, what in ((figure, "ΔR, R and R_c over epochs"), (accuracy_figure, "accuracy over epochs")):
        if path is not None:
            lines += ["", f"![{what}]({os.path.relpath(path, Path(markdown_path).resolve().parent)})"]
    return "\n".join(lines) + "\n"


def table_cells(rows: list[dict[str, Any]]) -> list[list[str]]:
    """Each row's cells as text, in the order of the table's columns (terminal and Markdown)."""
    cells = []
    for row in rows:
        total = row["epochs_total"]
        accuracy = "not evaluated" if row["test_accuracy"] is None else f"{row['test_accuracy']:.4f}"
        named = (("head", "head_accuracy"), ("kNN", "knn_accuracy"), *((score.short, score.key) for score in SCORES))
        others = [f"{name} {row[key]:.4f}" for name, key in named if row.get(key) is not None]
        if others:
            accuracy += f" ({', '.join(others)})"
        if row["test_accuracy_source"] == "training end":
            accuracy += " †"
        if row.get("nearest_subspace_peak") is not None:
            accuracy += f", peak {row['nearest_subspace_peak']:.4f} @{row['nearest_subspace_peak_epoch']}"
        best = fmt(row["delta_r_best"])
        if row["delta_r_best_epoch"] is not None:
            best += f" @{row['delta_r_best_epoch']}"
        cells.append([
            row["run_id"], row["label"], str(row["profile"] or "—"), str(row["dataset"] or "—"),
            str(row["num_classes"] or "—"), row["status"],
            f"{row['epochs_done']}/{total}" if total else str(row["epochs_done"]),
            fmt(row["delta_r_final"]), best, fmt(row["r_final"]), fmt(row["r_c_final"]), accuracy,
            f"{fmt(row['epoch_time_mean_s'], '.2f')} / {fmt(row['epoch_time_median_s'], '.2f')}",
            "—" if row["speedup"] is None else f"{row['speedup']:.2f}×",
        ])
    return cells
