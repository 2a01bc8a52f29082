"""The top line: the app's name, the views as tabs (with their keys), and the run count."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import RenderResult
from textual.widget import Widget

from vmcr2_cli.tui.messages import ViewClicked

# (view id, key, label): the order of the tabs and of the number keys.
VIEWS = (
    ("rate", "1", "ΔR · R · R_c"),
    ("variational", "2", "V-MCR²"),
    ("system", "3", "GPU & time"),
    ("accuracy", "4", "accuracy"),
)


class TitleBar(Widget):
    """Shows ``view`` as the active tab; clicking a tab posts ``ViewClicked``."""

    DEFAULT_CSS = """
    TitleBar {
        height: 1;
        background: $panel;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view = VIEWS[0][0]
        self.status = ""
        self._tab_spans: list[tuple[int, int, str]] = []

    def show(self, view: str, status: str) -> None:
        self.view, self.status = view, status
        self.refresh()

    def render(self) -> RenderResult:
        text = Text(" vmcr2 watch ", style="bold")
        self._tab_spans = []
        for view, key, label in VIEWS:
            text.append(" ")
            start = text.cell_len
            style = "reverse bold" if view == self.view else ""
            text.append(f" {key} {label} ", style=style)
            self._tab_spans.append((start, text.cell_len, view))
        width = self.size.width
        for status in (f"{self.status}  ? help ", f"{self.status.split(' · ')[0]}  ? help ", "? help "):
            pad = width - text.cell_len - len(status)
            if pad >= 1:
                text.append(" " * pad)
                text.append(status, style="dim")
                break
        return text

    def on_click(self, event: events.Click) -> None:
        for start, end, view in self._tab_spans:
            if start <= event.x < end:
                self.post_message(ViewClicked(view))
