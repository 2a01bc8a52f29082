"""The messages between the watcher, the widgets and the app."""

from __future__ import annotations

from textual.message import Message

from vmcr2_cli.tui.watcher import WatchEvent


class WatchEventsArrived(Message):
    """The watcher found new runs or new lines (posted by the app's watcher callback).

    Posting a message is thread-safe, so the watcher could as well be polled from a
    worker thread: the app's state is only changed in the handler, on the app's loop.
    """

    def __init__(self, events: list[WatchEvent]) -> None:
        super().__init__()
        self.events = events


class RunClicked(Message):
    """A row of the runs table was clicked: select that run."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key


class ViewClicked(Message):
    """A view's tab in the title bar was clicked."""

    def __init__(self, view: str) -> None:
        super().__init__()
        self.view = view
