"""``vmcr2 export RUN… --csv FILE``: the runs' epoch metrics as one table for pandas, R or a spreadsheet."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vmcr2_cli.errors import BadInput


def export(
    runs: list[Path] = typer.Argument(..., help="Run directories (or folders of runs)."),
    csv_path: Optional[Path] = typer.Option(None, "--csv", help="Write the CSV to FILE ('-': stdout)."),
) -> None:
    """One CSV row per run and epoch, one column per metric; the run id, objective and dataset as columns.

    Read it with pandas.read_csv(FILE). The TensorBoard event files are in each run's tensorboard/.
    """
    from vmcr2_cli.evaluation.comparison import resolve_run_paths
    from vmcr2_cli.evaluation.export import epoch_rows, to_csv
    from vmcr2_cli.runs import atomic_write_text

    if csv_path is None:
        raise BadInput("export: say where the table goes: --csv FILE (or --csv - for stdout)")
    text = to_csv(epoch_rows(resolve_run_paths(runs)))
    if str(csv_path) == "-":
        typer.echo(text, nl=False)
        return
    if csv_path.is_dir():
        raise BadInput(f"--csv {csv_path}: is a folder; name a file")
    atomic_write_text(csv_path, text)
    typer.echo(f"wrote {csv_path} ({text.count(chr(10)) - 1} rows)")
