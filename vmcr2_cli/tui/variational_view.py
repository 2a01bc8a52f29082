"""View 2: the V-MCR² terms over epochs — the matching term M, R^v and R_c^v (paper eq. 7)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical

from vmcr2_cli.tui.history import RunHistory
from vmcr2_cli.tui.metric_chart import MetricChart
from vmcr2_cli.tui.series import epoch_series

CHARTS = (("m_term", "M (matching term)"), ("r_v", "R^v"), ("r_c_v", "R_c^v"))

NO_VARIATIONAL = "no V-MCR² run shown: R^v, R_c^v and M exist only for V-MCR² runs"


class VariationalView(Vertical):
    DEFAULT_CSS = """
    VariationalView > Horizontal { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        (key, title), *pair = CHARTS
        yield MetricChart(title, id=f"chart-{key}")
        with Horizontal():
            for key, title in pair:
                yield MetricChart(title, id=f"chart-{key}")

    def show_runs(self, runs: list[RunHistory], colours: dict[str, int], numbers: dict[str, int]) -> None:
        variational = [run for run in runs if run.is_variational]
        note = None if variational else NO_VARIATIONAL
        for key, _ in CHARTS:
            chart = self.query_one(f"#chart-{key}", MetricChart)
            chart.show(epoch_series(variational, key, colours), x_label="epoch", empty_note=note)
