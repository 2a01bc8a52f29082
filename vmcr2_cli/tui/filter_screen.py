"""``/``: a one-line prompt for a regular expression; the dashboard shows the runs whose name matches it."""

from __future__ import annotations

import re

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Input


class FilterScreen(ModalScreen[str | None]):
    """Returns the pattern typed (empty: every run), or None when cancelled with esc."""

    DEFAULT_CSS = """
    FilterScreen { align: center bottom; }
    FilterScreen > Input { width: 100%; margin: 0 0 1 0; }
    """
    BINDINGS = [Binding("escape", "cancel", "cancel", show=False)]

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        yield Input(value=self.current, placeholder="runs whose name matches this regex (empty: all; esc: cancel)",
                    id="filter")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


def compile_filter(text: str) -> re.Pattern | None:
    """The pattern of ``text`` (None for an empty one); re.error for a bad one."""
    return re.compile(text) if text else None
