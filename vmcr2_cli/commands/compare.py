"""``vmcr2 compare RUN RUN…``: one table and overlaid ΔR, R, R_c curves; ``--train`` runs the experiment first."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from vmcr2_cli.errors import BadInput
from vmcr2_cli.objective_registry import SUPERVISED
from vmcr2_cli.runs import atomic_write_text

FIGURE_FILE = "compare.png"
ACCURACY_FIGURE_FILE = "compare-accuracy.png"  # when the runs measured accuracy along the way (eval_every)


def compare(
    runs: Optional[list[Path]] = typer.Argument(None, help="Run directories (or folders of runs); the first is "
                                                           "the reference of the speedup."),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for the PNG (default: the first run's figures/)."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Also write the comparison to FILE.md."),
    json_out: bool = typer.Option(False, "--json", help="Print the comparison as one JSON document on stdout."),
    mixed: bool = typer.Option(False, "--mixed", help="Compare runs of different datasets, class counts or d."),
    train: bool = typer.Option(False, "--train", help="First train the runs of --objectives that are not given "
                                                      "(same profile, seed and data order)."),
    profile: Optional[str] = typer.Option(None, "--profile", "-p", help="With --train: the profile to train."),
    objectives: str = typer.Option(",".join(SUPERVISED), "--objectives",
                                   help="With --train: comma-separated objectives to compare (the self-supervised "
                                        "mcr2-ssl and tcr need a profile with their views, e.g. fashion-mnist-ssl)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="With --train: epochs of each new run."),
    seed: Optional[int] = typer.Option(None, "--seed", help="With --train: the seed of every new run "
                                                            "(default: the first given run's, else the profile's)."),
    overrides: list[str] = typer.Option([], "--set", help="With --train: key=value for every new run (repeatable)."),
    device: Optional[str] = typer.Option(None, "--device", help="With --train: auto, cpu, cuda or cuda:N."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="With --train: folder with the dataset."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="With --train: where new runs are created."),
    sweeps: list[str] = typer.Option([], "--sweep", help="With --train: key=v1,v2,… trains every combination of "
                                                        "the swept values for each objective (repeatable)."),
) -> None:
    """Compare runs side by side: one table and overlaid ΔR, R, R_c curves (PNG).

    Table: objective, profile, dataset, classes, epochs, final and best ΔR, R, R_c, test accuracy, epoch times.

    Speedup: the first run's median epoch time over each run's.

    With --train, the objectives of --objectives that no given run has are trained first (same seed and data order).
    """
    from rich.console import Console

    from vmcr2_cli.evaluation.comparison import (check_compatible, curves, read_run, resolve_run_paths, summarize,
                                                 to_markdown)
    from vmcr2_cli.runner.missing_runs import TrainRequest, plan_missing_runs, train_planned_runs
    from vmcr2_cli.plots.curves import plot_accuracy_curves, plot_rate_curves

    given = resolve_run_paths(list(runs or []))
    if train:
        request = TrainRequest(profile, objectives, epochs, seed, list(overrides), device, data_root, list(sweeps))
        plans = plan_missing_runs(given, request, mixed=mixed)
        messages = Console(stderr=True, highlight=False)
        given += train_planned_runs(plans, runs_dir, log=messages.print)
    elif profile is not None or epochs is not None or seed is not None or overrides or device or data_root or sweeps:
        raise BadInput("compare: --profile, --epochs, --seed, --set, --sweep, --device and --data-root go with "
                       "--train")
    if not given:
        raise BadInput("compare: give at least one run directory (or --train --profile P)")

    records = [read_run(run) for run in given]
    notes = [] if mixed else check_compatible(records)
    if mixed:
        notes.append("--mixed: the runs may solve different tasks; their ΔR values are not comparable")
    rows = summarize(records)
    folder = out if out is not None else given[0].figures_dir
    series = curves(records)
    figure = plot_rate_curves(series, Path(folder) / FIGURE_FILE, title=_figure_title(rows))
    accuracy_figure = None
    if any(len(points) > 1 for curve in series for points in curve.accuracy.values()):
        splits = {line.get("split", "test") for record in records for line in record.evals}
        accuracy_figure = str(plot_accuracy_curves(series, Path(folder) / ACCURACY_FIGURE_FILE,
                                                   title=_figure_title(rows, "Accuracy"),
                                                   split="/".join(sorted(splits))))
    document: dict[str, Any] = {"runs": rows, "figure": str(figure), "accuracy_figure": accuracy_figure,
                                "notes": notes, "markdown": None}
    if markdown is not None:
        try:
            atomic_write_text(markdown, to_markdown(rows, figure.resolve(), notes, markdown,
                                                    Path(accuracy_figure).resolve() if accuracy_figure else None))
        except OSError as error:
            raise BadInput(f"--markdown {markdown}: cannot write: {error.strerror or error}") from None
        document["markdown"] = str(markdown)
    if json_out:
        typer.echo(json.dumps(document, indent=2))
    else:
        render_comparison(document, Console(highlight=False))


def render_comparison(document: dict[str, Any], console) -> None:
    from rich.measure import Measurement
    from rich.table import Table

    from vmcr2_cli.evaluation.comparison import table_cells

    rows = document["runs"]
    title = f"{len(rows)} run{'s' if len(rows) != 1 else ''}"
    columns = [("run", "left"), ("objective", "left"), ("profile", "left"), ("dataset", "left"),
               ("k", "right"), ("status", "left"), ("epochs", "right"), ("final ΔR", "right"),
               ("best ΔR @epoch", "right"), ("R", "right"), ("R_c", "right"), ("test acc.", "right"),
               ("epoch s mean/median", "right"), ("speedup", "right")]
    styles = {"running": "yellow", "failed": "red", "interrupted": "magenta"}
    all_cells = []
    for row, cells in zip(rows, table_cells(rows)):
        cells[5] = f"[{styles[row['status']]}]{cells[5]}[/]" if row["status"] in styles else cells[5]
        all_cells.append(cells)
    table = Table(title=title, title_justify="left")
    for name, justify in columns:
        table.add_column(name, justify=justify, no_wrap=True)
    for cells in all_cells:
        table.add_row(*cells)
    if Measurement.get(console, console.options.update_width(10_000), table).maximum > console.width:
        # Too wide for the terminal (80 columns over SSH): one column per run instead of one per figure.
        table = Table(title=title, title_justify="left")
        table.add_column("", style="bold")
        for cells in all_cells:
            table.add_column(cells[0], justify="right", overflow="fold")
        for index, (name, _) in enumerate(columns[1:], start=1):
            table.add_row(name, *(cells[index] for cells in all_cells))
    console.print(table)
    console.print("[dim]ΔR, R, R_c: means over each epoch's training batches, as logged. speedup: the first "
                  "run's median epoch time / each run's. test acc.: nearest subspace (eq. 8) from eval.json"
                  "; † from the evaluation at the end of training.[/]")
    for note in document["notes"]:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"figure: {document['figure']}", soft_wrap=True)
    if document.get("accuracy_figure"):
        console.print(f"accuracy along the runs: {document['accuracy_figure']}", soft_wrap=True)
    if document["markdown"]:
        console.print(f"markdown: {document['markdown']}", soft_wrap=True)


def _figure_title(rows: list[dict[str, Any]], what_is_drawn: str = r"Training $\Delta R$, $R$ and $R_c$") -> str:
    datasets = sorted({str(row["dataset"]) for row in rows if row["dataset"]})
    classes = sorted({row["num_classes"] for row in rows if row["num_classes"]})
    what = ", ".join(datasets) or "runs"
    if len(classes) == 1:
        what += f" ({classes[0]} classes)"
    return f"{what_is_drawn} over epochs: {what}"
