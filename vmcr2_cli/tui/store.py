"""Every watched run's history, kept up to date from the watcher's events.

Shared by the dashboard (which applies events as they come) and ``--once`` (which
applies one poll's worth). No Textual here.
"""

from __future__ import annotations

from vmcr2_cli.tui.history import RunHistory
from vmcr2_cli.tui.summary import RunSummary, summarize
from vmcr2_cli.tui.watcher import RunFound, RunUpdate, WatchEvent


class RunStore:
    """The watched runs in the order they joined, by key."""

    def __init__(self) -> None:
        self.runs: dict[str, RunHistory] = {}
        self.process_alive: dict[str, bool | None] = {}

    def __len__(self) -> int:
        return len(self.runs)

    def keys(self) -> list[str]:
        return list(self.runs)

    def apply(self, events: list[WatchEvent]) -> tuple[list[RunFound], set[str]]:
        """Fold events in; returns (the runs that joined, keys of runs that changed)."""
        joined: list[RunFound] = []
        changed: set[str] = set()
        for event in events:
            if isinstance(event, RunFound):
                if event.key in self.runs:
                    continue
                self.runs[event.key] = RunHistory(key=event.key, name=event.run.name, path=event.run.path,
                                                  meta=event.meta, config=event.config)
                joined.append(event)
                changed.add(event.key)
            elif isinstance(event, RunUpdate):
                history = self.runs.get(event.key)
                if history is None:
                    continue
                if event.meta is not None:
                    history.meta = event.meta
                history.apply(event.records)
                history.corrupt_lines = event.corrupt_lines
                self.process_alive[event.key] = event.process_alive
                changed.add(event.key)
        return joined, changed

    def summary(self, key: str, now: float) -> RunSummary:
        return summarize(self.runs[key], now, process_alive=self.process_alive.get(key))

    def summaries(self, now: float) -> list[RunSummary]:
        return [self.summary(key, now) for key in self.runs]
