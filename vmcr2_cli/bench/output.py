"""Where a bench's results go: a new ``runs/bench-<timestamp>/`` with bench.json, bench.csv, bench.png."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import time
from pathlib import Path

from vmcr2_cli.runs import atomic_write_json, atomic_write_text

JSON_FILE, CSV_FILE, PLOT_FILE = "bench.json", "bench.csv", "bench.png"
# Said in the report when the figure cannot be drawn (e.g. a GPU image without matplotlib).
NO_FIGURE_NOTE = "bench.png was not drawn: matplotlib is not installed (pip install matplotlib)."


def can_draw_figure() -> bool:
    """Whether matplotlib is importable; the JSON and CSV are written either way."""
    return importlib.util.find_spec("matplotlib") is not None


def bench_dir(runs_dir: Path) -> Path:
    """A new, empty ``runs_dir/bench-<timestamp>`` folder (``-2``, ``-3`` … when taken)."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    name = base = f"bench-{time.strftime('%Y%m%d-%H%M%S')}"
    suffix = 1
    while True:
        try:
            (runs_dir / name).mkdir()
            return runs_dir / name
        except FileExistsError:
            suffix += 1
            name = f"{base}-{suffix}"


def file_paths(folder: Path, *, figure: bool = True) -> dict[str, str]:
    """Where :func:`write_files` puts the JSON, the CSV and (with ``figure``) the PNG, by kind."""
    paths = {"json": str(folder / JSON_FILE), "csv": str(folder / CSV_FILE)}
    return {**paths, "png": str(folder / PLOT_FILE)} if figure else paths


def write_files(report: dict, folder: Path) -> None:
    """The files ``report["files"]`` names (see :func:`file_paths`), each written atomically."""
    paths = {kind: Path(path) for kind, path in report["files"].items()}
    atomic_write_json(paths["json"], report)
    atomic_write_text(paths["csv"], to_csv(report))
    if "png" in paths:
        from vmcr2_cli.plots.style import save_png

        from .figure import time_vs_classes_figure

        save_png(time_vs_classes_figure(report), paths["png"])


def to_csv(report: dict) -> str:
    """One line per row of the report, a column per key of its rows (empty for None)."""
    buffer = io.StringIO()
    columns = list(report["rows"][0]) if report["rows"] else []
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in report["rows"]:
        writer.writerow({key: "" if value is None else value for key, value in row.items()})
    return buffer.getvalue()


def dumps(report: dict) -> str:
    """The report as the JSON document ``--json`` prints."""
    return json.dumps(report, indent=2, ensure_ascii=False)
