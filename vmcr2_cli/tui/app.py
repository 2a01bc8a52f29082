"""The ``vmcr2 watch`` dashboard: runs table, selected run, and four views of charts.

::

    ┌ vmcr2 watch   1 ΔR · R · R_c   2 V-MCR² terms   3 GPU & time   4 accuracy  ? help ┐
    │  # ━━ run                     status      epoch      ΔR     ETA …                 │  RunsTable
    │ ━━ name · V-MCR² · profile … / step … · loss … · GPU … · last line 3s ago         │  RunDetail
    │ ━ run-a (MCR²)  ━ run-b (V-MCR²)                                ◆ latch  ● eval   │  Legend
    │ [ one of: RateView | VariationalView | SystemView | AccuracyView ]                │  charts
    └ key hints                                                                         ┘  Footer

The app owns the state (a ``RunStore``) and the selection; a ``Watcher``, polled in a
worker thread that an interval timer starts, reports what is new through a message;
widgets only draw what they are handed. The clock is injectable so that tests and snapshots do not depend on
the wall time ("stalled" and the ETA are computed from it).
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from typing import Callable

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import ContentSwitcher, Footer
from textual.worker import Worker, WorkerState

from vmcr2_cli.tui.accuracy_view import AccuracyView
from vmcr2_cli.tui.chart_options import ChartOptions
from vmcr2_cli.tui.filter_screen import FilterScreen, compile_filter
from vmcr2_cli.tui.formatting import run_colours
from vmcr2_cli.tui.help_screen import HelpScreen
from vmcr2_cli.tui.history import RunHistory
from vmcr2_cli.tui.legend import Legend
from vmcr2_cli.tui.messages import RunClicked, ViewClicked, WatchEventsArrived
from vmcr2_cli.tui.rate_view import RateView
from vmcr2_cli.tui.run_detail import RunDetail
from vmcr2_cli.tui.runs_table import RunsTable
from vmcr2_cli.tui.store import RunStore
from vmcr2_cli.tui.system_view import SystemView
from vmcr2_cli.tui.title_bar import VIEWS, TitleBar
from vmcr2_cli.tui.variational_view import VariationalView
from vmcr2_cli.tui.watcher import WatchEvent, Watcher, WatchTarget

# The ANSI themes draw in the terminal's own 16 colours: right over SSH, in tmux, in
# light and dark terminals. Another theme can still be picked from the command palette.
DEFAULT_THEME = "ansi-dark"
CLOCK_REFRESH_S = 1.0
"""Without new lines, what depends on the clock (ETA, 'last line … ago', stalled) is redrawn this often."""


class WatchApp(App[None]):
    """Watches ``targets`` (see ``watcher.resolve_targets``), polling every ``interval`` seconds."""

    TITLE = "vmcr2 watch"
    CSS = """
    Screen { layout: vertical; }
    #views { height: 1fr; }
    #views > * { height: 1fr; }
    #views Horizontal > MetricChart:first-child { margin-right: 2; }
    """

    BINDINGS = [
        Binding("1", "show_view('rate')", "ΔR R R_c", show=False),
        Binding("2", "show_view('variational')", "V-MCR²", show=False),
        Binding("3", "show_view('system')", "GPU & time", show=False),
        Binding("4", "show_view('accuracy')", "accuracy", show=False),
        Binding("j,down", "next_run", "next run", key_display="j/k"),
        Binding("k,up", "previous_run", "previous run", show=False),
        Binding("tab", "next_run", "next run", show=False, priority=True),
        Binding("shift+tab", "previous_run", "previous run", show=False, priority=True),
        Binding("a", "toggle_overlay", "all runs / one"),
        Binding("s", "next_smoothing", "smooth", show=False),
        Binding("r", "toggle_raw", "raw", show=False),
        Binding("l", "toggle_log", "log y", show=False),
        Binding("x", "next_x_axis", "x axis", show=False),
        Binding("slash", "filter_runs", "filter", key_display="/"),
        Binding("question_mark", "help", "help", key_display="?"),
        Binding("q", "quit", "quit"),
        Binding("ctrl+c", "quit", "quit", show=False, priority=True),
    ]

    def __init__(self, targets: list[WatchTarget], *, interval: float = 0.5,
                 clock: Callable[[], float] = time.time, attended: Callable[[], bool] = lambda: True) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self.attended = attended  # false once nobody can see the dashboard: it then exits
        self.store = RunStore()
        self.watcher = Watcher(targets, on_events=self._post_events)
        self.selected: str | None = None
        self.view = VIEWS[0][0]
        self.overlay_all = True
        self.chart_options = ChartOptions()
        self.name_filter: re.Pattern | None = None
        self.colours: dict[str, int] = {}
        self._stale_views: set[str] = {view for view, _, _ in VIEWS}
        self._first_poll_done = False
        self._poll_in_flight = False
        self._poll_error_shown = False
        self._initial_read_done = False
        self._user_selected = False
        self._last_refresh = 0.0
        self.theme = DEFAULT_THEME

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        # Kept by reference, not looked up: ``query_one`` searches the current screen,
        # which is the help screen while it is open, and the timer keeps ticking then.
        self.title_bar = TitleBar(id="title")
        self.runs_table = RunsTable(id="runs")
        self.run_detail = RunDetail(id="detail")
        self.legend = Legend(id="legend")
        self.views = {"rate": RateView(id="rate"), "variational": VariationalView(id="variational"),
                      "system": SystemView(id="system"), "accuracy": AccuracyView(id="accuracy")}
        self.switcher = ContentSwitcher(initial="rate", id="views")
        yield self.title_bar
        yield self.runs_table
        yield self.run_detail
        yield self.legend
        with self.switcher:
            yield from self.views.values()
        yield Footer()

    def on_mount(self) -> None:
        self.poll()
        self.set_interval(self.interval, self.poll, name="poll")

    def on_resize(self) -> None:
        self.refresh_panels()

    # ------------------------------------------------------------------ watching
    def poll(self) -> None:
        """Start reading what is new, unless the last read is still going; then redraw
        what depends on the clock (status, ETA, 'last line … ago').

        The reading runs in a worker thread so that a long history (a run with 100 000
        lines, a folder of 50 runs) never freezes the screen; the watcher reports through
        ``_post_events``, and posting a message is safe from any thread.
        """
        if not self.attended():
            self.exit()
            return
        if not self._poll_in_flight:
            self._poll_in_flight = True
            self.run_worker(self.watcher.poll, name="poll", group="poll", thread=True, exit_on_error=False)
        if self._first_poll_done and time.monotonic() - self._last_refresh >= CLOCK_REFRESH_S:
            self.refresh_panels()

    @property
    def caught_up(self) -> bool:
        """Whether every line read so far is shown: no read in flight, none waiting to be drawn."""
        return self._initial_read_done and not self._poll_in_flight and \
            len(self.store) == len(self.watcher.tails)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "poll" or not event.worker.is_finished:
            return
        self._poll_in_flight = False
        self._initial_read_done = True
        if event.state == WorkerState.ERROR and not self._poll_error_shown:
            self._poll_error_shown = True  # say it once, keep trying at every tick
            self.notify(f"reading the runs failed: {event.worker.error}", severity="error", timeout=10)

    def _post_events(self, events: list[WatchEvent]) -> None:
        self.post_message(WatchEventsArrived(events))

    def on_watch_events_arrived(self, message: WatchEventsArrived) -> None:
        joined, changed = self.store.apply(message.events)
        if joined:
            self.colours = dict(zip(self.store.keys(),
                                    run_colours([run.objective for run in self.store.runs.values()])))
            if not self._initial_read_done:
                # The first read reports run by run: choose once all are in, unless the user has.
                if not self._user_selected:
                    self.selected = self._first_selection()
            else:
                for found in joined:
                    self.notify(f"new run: {found.run.name}", timeout=4)
                    if found.via == "link" or self.selected is None:  # runs/latest moved on: so do we
                        self.selected = found.key
        self._first_poll_done = True
        if joined or changed & {run.key for run in self.shown_runs()}:
            self._stale_views = {view for view, _, _ in VIEWS}
        self.refresh_panels()

    def _first_selection(self) -> str | None:
        """The first running run, else the newest (the last: folders list runs oldest first)."""
        summaries = self.store.summaries(self.clock())
        running = [s.key for s in summaries if s.status == "running"]
        return (running or [s.key for s in summaries][-1:] or [None])[0]

    # ------------------------------------------------------------------ drawing
    def shown_runs(self) -> list[RunHistory]:
        """The runs the charts draw: every one (whose name matches the filter), or the selected one alone;
        the selected one last (on top)."""
        runs = [run for run in self.store.runs.values()
                if self.name_filter is None or self.name_filter.search(run.name)]
        if not self.overlay_all:
            return [run for run in runs if run.key == self.selected]
        return [run for run in runs if run.key != self.selected] + \
               [run for run in runs if run.key == self.selected]

    def refresh_panels(self) -> None:
        """Redraw the table, the details, the title and legend, and the current view if stale."""
        if not self.is_mounted or not self.runs_table.is_mounted:
            return
        self._last_refresh = time.monotonic()
        summaries = self.store.summaries(self.clock())
        max_rows = max(2, self.size.height // 7)
        self.runs_table.show(summaries, self.colours, self.selected, max_rows)
        selected = next((s for s in summaries if s.key == self.selected), None)
        self.run_detail.show(selected, self.colours.get(self.selected or "", 7),
                             max_lines=2 if self.size.height < 40 else 3)
        running = sum(s.status == "running" for s in summaries)
        count = f"{len(summaries)} run{'s' if len(summaries) != 1 else ''}"
        self.title_bar.show(self.view, f"{count} · {running} running" if len(summaries) > 1 else count)
        shown = self.shown_runs()
        note = "" if self.overlay_all or len(summaries) < 2 else "(selected run only: a for all)"
        if self.name_filter is not None and self.overlay_all:
            note = f"(runs matching /{self.name_filter.pattern}/: / to change)"
        numbers = {key: n for n, key in enumerate(self.store.keys(), start=1)}
        self.legend.show([(numbers[run.key], run.name, run.objective, self.colours.get(run.key, 7))
                          for run in sorted(shown, key=lambda run: numbers[run.key])], note)
        self.legend.show_markers(any(run.latches for run in shown), any(run.evals for run in shown))
        if self.view in self._stale_views:
            self._stale_views.discard(self.view)
            self.views[self.view].show_runs(shown, self.colours, numbers, self.chart_options)

    # ------------------------------------------------------------------ actions
    def action_show_view(self, view: str) -> None:
        self.view = view
        self.switcher.current = view
        self.refresh_panels()

    def on_view_clicked(self, message: ViewClicked) -> None:
        self.action_show_view(message.view)

    def _move_selection(self, step: int) -> None:
        keys = self.store.keys()
        if not keys:
            return
        index = keys.index(self.selected) if self.selected in keys else 0
        self.select_run(keys[(index + step) % len(keys)])

    def select_run(self, key: str) -> None:
        self._user_selected = True
        if key == self.selected:
            return
        self.selected = key
        self._stale_views = {view for view, _, _ in VIEWS}  # the selected run is drawn on top, or alone
        self.refresh_panels()

    def action_next_run(self) -> None:
        self._move_selection(+1)

    def action_previous_run(self) -> None:
        self._move_selection(-1)

    def on_run_clicked(self, message: RunClicked) -> None:
        self.select_run(message.key)

    def action_toggle_overlay(self) -> None:
        self.overlay_all = not self.overlay_all
        self._stale_views = {view for view, _, _ in VIEWS}
        self.refresh_panels()

    def _redraw_charts(self, options: ChartOptions) -> None:
        self.chart_options = options
        self._stale_views = {view for view, _, _ in VIEWS}
        self.refresh_panels()

    def action_next_smoothing(self) -> None:
        self._redraw_charts(self.chart_options.next_smoothing())

    def action_toggle_raw(self) -> None:
        self._redraw_charts(replace(self.chart_options, raw=not self.chart_options.raw))

    def action_toggle_log(self) -> None:
        self._redraw_charts(replace(self.chart_options, log_y=not self.chart_options.log_y))

    def action_next_x_axis(self) -> None:
        self._redraw_charts(self.chart_options.next_x_axis())

    def action_filter_runs(self) -> None:
        def apply(text: str | None) -> None:
            if text is None:
                return
            try:
                self.name_filter = compile_filter(text)
            except re.error as error:
                self.notify(f"not a regular expression: {text!r} ({error})", severity="error", timeout=6)
                return
            self._redraw_charts(self.chart_options)

        self.push_screen(FilterScreen(self.name_filter.pattern if self.name_filter else ""), apply)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())
