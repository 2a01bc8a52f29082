"""The converged tables of benchmarks/REPRODUCTION.md from runs' small files (metrics.jsonl, config.toml).

    python benchmarks/converged_table.py benchmarks/runs/converged/fm-*

One Markdown row per run, from its evaluations during training (``eval_every``) and its
epoch lines: the last evaluation's nearest-subspace (NS), kNN and CE-head accuracy, the
peak NS and its epoch, NS with each class's directions holding 90% of its energy (where the
last evaluation measured it: ``vmcr2 eval``), the exact ΔR of the training set (eval mode, float64), the last
epoch's batch ΔR (train mode) and R^v/R, the mean |cos| between class subspaces, NS at the
best probed number of directions p, and the epoch from which the curve is flat.

Flat: the first evaluation from which every later one of the run's main accuracy (CE's
head for CE, kNN otherwise) stays within ``--tolerance`` (0.5 points) of the last one.
With a cosine schedule the learning rate reaches 0 at the end, so every curve ends flat;
the epoch says how much of the budget the run needed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vmcr2_cli.evaluation.comparison import read_run, summarize  # noqa: E402
from vmcr2_cli.runs import RunDir, runs_in  # noqa: E402

COLUMNS = ("run", "epochs", "NS", "NS peak @epoch", "NS 90% energy", "best p: NS", "kNN", "CE head", "exact ΔR (eval)",
           "batch ΔR", "R^v/R", "mean \\|cos\\|", "NC1", "flat from epoch")


def flat_from(evals: list[dict], key: str, tolerance: float) -> int | None:
    """The first evaluation's epoch from which ``key`` stays within ``tolerance`` of its last value."""
    values = [(line["epoch"], line.get(key)) for line in evals if line.get(key) is not None]
    if not values:
        return None
    last = values[-1][1]
    epoch = values[-1][0]
    for e, value in reversed(values):
        if abs(value - last) > tolerance:
            break
        epoch = e
    return epoch


def pct(value) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def num(value, spec: str = ".3f") -> str:
    return "—" if value is None else format(value, spec)


def last_probes(record) -> dict[str, float]:
    """NS at each probed p of training's last evaluation: read from the file, since vmcr2 eval's line
    (which has no probes) replaces training's of the same epoch in ``record.evals``."""
    probed = [line["nearest_subspace_accuracy_by_components"] for line in record.run.read_metrics(("step",))
              if line.get("type") == "eval" and line.get("nearest_subspace_accuracy_by_components")]
    return probed[-1] if probed else {}


def row(record, summary: dict, tolerance: float) -> list[str]:
    evals, epochs = record.evals, record.epochs
    last = evals[-1] if evals else {}
    by_p = last_probes(record)
    best_p = max(by_p.items(), key=lambda item: item[1]) if by_p else None
    peak = summary["nearest_subspace_peak"], summary["nearest_subspace_peak_epoch"]
    label = f"{summary['label']} (`{record.run.name}`)"
    main = "head_accuracy" if record.objective == "ce" else "knn_accuracy"
    batch = epochs[-1] if epochs else {}
    return [label, f"{len(epochs)}/{record.key('epochs')}", pct(last.get("nearest_subspace_accuracy")),
            f"{pct(peak[0])} @{peak[1]}" if peak[0] is not None else "—",
            pct(last.get("nearest_subspace_energy_accuracy")),
            f"p = {best_p[0]}: {pct(best_p[1])}" if best_p else "—",
            pct(last.get("knn_accuracy")), pct(last.get("head_accuracy")), num(last.get("exact_delta_r")),
            num(batch.get("delta_r")), num(batch.get("r_v_over_r"), ".2f"), num(last.get("mean_abs_cos")),
            num(last.get("nc1"), ".2f"), str(flat_from(evals, main, tolerance) or "—")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run directories, or folders of them")
    parser.add_argument("--tolerance", type=float, default=0.005, help="flatness band (accuracy, 0.005 = 0.5 pt)")
    args = parser.parse_args()
    runs: list[RunDir] = []
    for path in args.runs:
        found = list(runs_in(path)) if path.is_dir() and not (path / "metrics.jsonl").exists() else []
        runs.extend(found or [RunDir.open(path)])
    records = [read_run(run) for run in runs]
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "|".join("---" for _ in COLUMNS) + "|")
    for record, summary in zip(records, summarize(records)):
        print("| " + " | ".join(row(record, summary, args.tolerance)) + " |")


if __name__ == "__main__":
    main()
