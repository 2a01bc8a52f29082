"""View 1: the rate reduction ΔR = R − R_c, and R and R_c, over epochs, every run overlaid."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical

from vmcr2_cli.tui.history import RunHistory
from vmcr2_cli.tui.metric_chart import MetricChart
from vmcr2_cli.tui.series import epoch_series

# (metric key, chart title): the first chart spans the width, the others share a row.
CHARTS = (("delta_r", "ΔR = R − R_c"), ("r", "R"), ("r_c", "R_c"))


class RateView(Vertical):
    DEFAULT_CSS = """
    RateView > Horizontal { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        (key, title), *pair = CHARTS
        yield MetricChart(title, id=f"chart-{key}")
        with Horizontal():
            for key, title in pair:
                yield MetricChart(title, id=f"chart-{key}")

    def show_runs(self, runs: list[RunHistory], colours: dict[str, int], numbers: dict[str, int]) -> None:
        for key, _ in CHARTS:
            self.query_one(f"#chart-{key}", MetricChart).show(epoch_series(runs, key, colours), x_label="epoch")
