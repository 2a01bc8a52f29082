"""The list of watched runs: one row each, the selected one in reverse video.

The columns fit the width (see ``tables.runs_table``); with more runs than rows to
spare, a window of rows follows the selection and the header says how many are hidden.
"""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual import events
from textual.app import RenderResult
from textual.widget import Widget

from vmcr2_cli.tui.messages import RunClicked
from vmcr2_cli.tui.summary import RunSummary
from vmcr2_cli.tui.tables import runs_table


class RunsTable(Widget):
    """Shows ``summaries``; ``selected`` is a run key. Clicking a row posts ``RunClicked``."""

    DEFAULT_CSS = """
    RunsTable {
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.summaries: list[RunSummary] = []
        self.colours: dict[str, int] = {}
        self.selected: str | None = None
        self.max_rows = 3
        self._first_row = 0

    def show(self, summaries: list[RunSummary], colours: dict[str, int], selected: str | None,
             max_rows: int) -> None:
        self.summaries, self.colours, self.selected = summaries, colours, selected
        self.max_rows = max(1, max_rows)
        # A new layout only when the height the screen gave the table is not the one it needs (a full
        # repaint costs): compared with the laid-out height, not with the last call's lines, so that a
        # layout that has not happened yet — the first read's runs arrive before the first layout — is
        # asked for again rather than left at the empty table's one line.
        self.refresh(layout=self._lines() != self.size.height)

    def _lines(self) -> int:
        """Lines the table takes: a header, a row per run shown, and the 'more' note."""
        if not self.summaries:
            return 1
        shown = min(len(self.summaries), self.max_rows)
        return 1 + shown + (1 if shown < len(self.summaries) else 0)

    def _window(self) -> tuple[int, int]:
        """The rows shown: ``max_rows`` of them, the selected one among them."""
        n = len(self.summaries)
        if n <= self.max_rows:
            return 0, n
        index = next((i for i, s in enumerate(self.summaries) if s.key == self.selected), 0)
        first = min(max(self._first_row, index - self.max_rows + 1), index)
        self._first_row = max(0, min(first, n - self.max_rows))
        return self._first_row, self._first_row + self.max_rows

    def render(self) -> RenderResult:
        if not self.summaries:
            return Text("waiting for runs to start…", style="dim")
        first, last = self._window()
        width = max(20, self.content_region.width or self.size.width)
        table, _hidden = runs_table(self.summaries[first:last], width, colours=self.colours,
                                    selected=self.selected, numbered=True, first_number=first + 1)
        hidden = len(self.summaries) - (last - first)
        if not hidden:
            return table
        above, below = first, len(self.summaries) - last
        where = ", ".join(part for part in (f"{above} more above" if above else "",
                                             f"{below} more below" if below else "") if part)
        note = Text(f"{where} (j/k)", style="dim", justify="right")
        return Group(table, note)

    def on_click(self, event: events.Click) -> None:
        first, last = self._window()
        row = first + event.y - 1  # the header is line 0
        if first <= row < last:
            self.post_message(RunClicked(self.summaries[row].key))
