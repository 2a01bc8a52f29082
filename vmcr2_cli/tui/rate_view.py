"""View 1: the rate reduction ΔR = R − R_c, and R and R_c, over epochs, every run overlaid."""

from __future__ import annotations

from vmcr2_cli.tui.chart_options import ChartOptions, x_label
from vmcr2_cli.tui.history import RunHistory
from vmcr2_cli.tui.metric_chart import ChartTrio
from vmcr2_cli.tui.series import epoch_series


class RateView(ChartTrio):
    CHARTS = (("delta_r", "ΔR = R − R_c"), ("r", "R"), ("r_c", "R_c"))

    def show_runs(self, runs: list[RunHistory], colours: dict[str, int], numbers: dict[str, int],
                  options: ChartOptions = ChartOptions()) -> None:
        for key, _ in self.CHARTS:
            self.chart(key).show(epoch_series(runs, key, colours, options=options), x_label=x_label(options),
                                 log_y=options.log_y)
