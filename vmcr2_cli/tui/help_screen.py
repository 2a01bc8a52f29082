"""The help screen (``?``): keys, what each view shows, and what the statuses and markers mean."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from vmcr2_cli.tui.formatting import EVAL_MARKER, LATCH_COLOUR, LATCH_MARKER, STATUS_STYLES
from vmcr2_cli.tui.summary import STALL_EPOCHS, STALL_FLOOR_S

KEYS = (
    ("1 2 3 4", "view: ΔR·R·R_c  ·  V-MCR² terms M, R^v, R^v/R  ·  GPU use and epoch time  ·  accuracy "
                "along the run (eval_every)"),
    ("j k  ↓ ↑  tab", "next / previous run"),
    ("a", "charts: every run overlaid, or the selected run alone"),
    ("s", "smoothing: EMA weight 0 → 0.6 → 0.8 → 0.9 → 0.95 → 0.99 (TensorBoard's, debiased)"),
    ("r", "raw curves, unsmoothed (again: back to the weight)"),
    ("l", "log y axis (values ≤ 0 left out)"),
    ("x", "x axis: epoch → step → minutes since the run started"),
    ("/", "show the runs whose name matches a regex (empty: all)"),
    ("?", "this help (esc or ? to close)"),
    ("q  ctrl+c", "quit"),
)

STATUSES = (
    ("running", "the trainer is writing lines"),
    ("stalled", f"running, but no line for max({STALL_FLOOR_S:.0f} s, {STALL_EPOCHS:.0f} × mean epoch time), "
                "or its process has exited"),
    ("finished", "trained every epoch"),
    ("interrupted", "stopped by Ctrl-C or SIGTERM; --resume continues it"),
    ("failed", "stopped by an error (a non-finite loss…)"),
)


def help_text() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_row(Text("Keys", style="bold underline"), "")
    for key, what in KEYS:
        table.add_row(key, what)
    table.add_row("", "")
    table.add_row(Text("Status", style="bold underline"), "")
    for status, what in STATUSES:
        symbol, style = STATUS_STYLES[status]
        table.add_row(Text(f"{symbol} {status}", style=style), what)
    table.add_row("", "")
    table.add_row(Text("Charts", style="bold underline"), "")
    table.add_row("colours", "one per run: MCR² runs in cyan/blue, V-MCR² in magenta/red, CE in green")
    table.add_row(Text(LATCH_MARKER, style=f"color({LATCH_COLOUR})"), "a latch (Algorithm 2) on the curve")
    table.add_row(EVAL_MARKER, "an evaluation (its accuracy is in the run's details)")
    table.add_row("x axis", "epochs done; GPU charts: time since the run started")
    table.add_row("", "")
    table.add_row(Text("Also", style="bold underline"), "")
    table.add_row("vmcr2 watch --once", "the same summary as tables, for scripts and narrow terminals (--json too)")
    return table


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
    }
    HelpScreen > VerticalScroll {
        width: 100%;
        max-width: 104;
        height: auto;
        max-height: 100%;
        border: round $foreground 50%;
        border-title-align: center;
        padding: 0 1;
    }
    """

    BINDINGS = [
        Binding("escape,question_mark,q", "dismiss_help", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "vmcr2 watch — help"
            yield Static(help_text(), id="help-text")

    def action_dismiss_help(self) -> None:
        self.dismiss(None)
