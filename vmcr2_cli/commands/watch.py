"""``vmcr2 watch``: the live dashboard of one or more runs, or their summary once (``--once``, ``--json``).

Textual is imported only when the dashboard starts, so ``vmcr2 --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import typer

from vmcr2_cli.errors import BadInput

DEFAULT_INTERVAL_S = 0.5


def watch(
    paths: list[Path] = typer.Argument(
        ..., show_default=False, metavar="RUN_OR_FOLDER...",
        help="Run directories, runs/latest (followed, also to the next run), or folders of runs "
             "(new runs join as they start)."),
    once: bool = typer.Option(False, "--once", help="Print the summary as tables and exit: for scripts "
                                                    "and narrow terminals."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as one JSON document and exit "
                                                        "(implies --once)."),
    interval: float = typer.Option(DEFAULT_INTERVAL_S, "--interval", metavar="SECONDS",
                                   help="How often the dashboard looks for new lines."),
    serve: bool = typer.Option(False, "--serve", help="Serve the dashboard to a web browser (the textual-serve "
                                                      "extra: pip install 'vmcr2[serve]'), e.g. through one "
                                                      "port forwarded over SSH."),
    host: str = typer.Option("127.0.0.1", "--host", help="--serve: the address to listen on (127.0.0.1: this "
                                                         "machine only; 0.0.0.0: every network)."),
    port: int = typer.Option(8000, "--port", help="--serve: the port to listen on."),
) -> None:
    """Watch runs live: ΔR, R, R_c, the V-MCR² terms, GPU use and epoch time, MCR² beside V-MCR²."""
    from vmcr2_cli.tui.watcher import resolve_targets

    if not interval > 0 or interval > 60:
        raise BadInput(f"--interval must be between 0 and 60 seconds, not {interval}")
    targets = resolve_targets(list(paths))
    from vmcr2_cli.tui.serve import is_served_tab, serve_dashboard, while_the_server_lives

    if serve:
        serve_dashboard([target.path for target in targets], interval=interval, host=host, port=port)
        return
    tab = is_served_tab()
    if once or json_out or not (sys.stdout.isatty() or tab):
        # Not a terminal (a pipe, a file, a CI log): a dashboard would be garbage there.
        print_once(targets, json_out=json_out)
        return

    from vmcr2_cli.tui.app import WatchApp

    WatchApp(targets, interval=interval, attended=while_the_server_lives() if tab else lambda: True).run()


def print_once(targets: list, *, json_out: bool, now: float | None = None) -> None:
    """Read every run the targets name once and print their summaries (tables or JSON)."""
    from vmcr2_cli.tui.store import RunStore
    from vmcr2_cli.tui.watcher import Watcher

    store = RunStore()
    store.apply(Watcher(targets).poll())
    now = time.time() if now is None else now
    summaries = store.summaries(now)
    if not summaries:
        folders = ", ".join(str(target.path) for target in targets)
        raise BadInput(f"no runs in {folders} yet")
    if json_out:
        typer.echo(json.dumps({"time": now, "runs": [s.to_json() for s in summaries]}, indent=2))
        return

    from rich.console import Console
    from rich.text import Text

    from vmcr2_cli.tui.tables import run_detail_table, runs_table

    console = Console()
    if len(summaries) == 1:
        console.print(run_detail_table(summaries[0]))
        return
    table, hidden = runs_table(summaries, console.width, numbered=True)
    console.print(table)
    notes = [f"{s.name}: {s.status} — {s.stalled_reason}" for s in summaries if s.stalled_reason]
    notes += [f"{s.name}: {s.corrupt_lines} corrupt line(s) skipped" for s in summaries if s.corrupt_lines]
    if hidden:
        notes.append(f"not shown at this width: {', '.join(c.header for c in hidden)} "
                     "(widen the terminal, or use --json)")
    for note in notes:
        console.print(Text(note, style="dim"))

