"""The charts' legend: each run's colour and name, and the event markers."""

from __future__ import annotations

from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

from vmcr2_cli.objective_registry import objective_label
from vmcr2_cli.tui.formatting import EVAL_MARKER, LATCH_COLOUR, LATCH_MARKER
from vmcr2_cli.tui.tables import short_names


class Legend(Widget):
    """One line: ``━ 2 name`` per run drawn (2: its number in the runs table), then ``◆ latch  ● eval``
    (each only when a curve drawn has one)."""

    DEFAULT_CSS = """
    Legend {
        height: 1;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.entries: list[tuple[int, str, str | None, int]] = []
        self.note = ""
        self.latch_key = self.eval_key = False

    def show(self, entries: list[tuple[int, str, str | None, int]], note: str = "") -> None:
        """``entries``: (number, run name, objective, ANSI colour) of the runs drawn; ``note``: said after them."""
        self.entries, self.note = entries, note
        self.refresh()

    def show_markers(self, latch: bool, evaluation: bool) -> None:
        """Explain the latch and eval markers only when some curve has them."""
        self.latch_key, self.eval_key = latch, evaluation
        self.refresh()

    def render(self) -> RenderResult:
        width = max(20, self.content_region.width or self.size.width)
        keys = Text()
        if self.latch_key:
            keys.append_text(Text.assemble((LATCH_MARKER, f"color({LATCH_COLOUR})"), " latch"))
        if self.eval_key:
            keys.append_text(Text.assemble("  " if keys else "", EVAL_MARKER, " eval"))
        room = width - keys.cell_len - 1 - (len(self.note) + 2 if self.note else 0)
        # Names without their timestamp when they all fit, else the objectives: the runs
        # table above has the same numbers and colours, and the names.
        text = self._entries(by_name=True)
        if text.cell_len > room:
            text = self._entries(by_name=False)
        if self.note:
            text.append(self.note + "  ", style="dim")
        pad = width - text.cell_len - keys.cell_len
        if pad > 0:
            text.append(" " * pad)
        text.append_text(keys)
        text.truncate(width)
        return text

    def _entries(self, *, by_name: bool) -> Text:
        text = Text()
        names = short_names([name for _, name, _, _ in self.entries], 10**6, strip=True)
        for (number, _, objective, colour), name in zip(self.entries, names):
            label = name if by_name else objective_label(objective)
            text.append("━ ", style=f"color({colour})")
            text.append(f"{number} ", style="bold")
            text.append(label, style=f"color({colour})")
            text.append("  ")
        return text
