"""View 2: the V-MCR² terms over epochs — the matching term M, R^v (paper eq. 7) and R^v / R.

R^v / R compares the variational R with the exact R of the same batches: 1 when V-MCR² is
faithful to MCR², above 1 when Γ, A run ahead of the features (small μ).
"""

from __future__ import annotations

from vmcr2_cli.tui.chart_options import ChartOptions, x_label
from vmcr2_cli.tui.history import RunHistory
from vmcr2_cli.tui.metric_chart import ChartTrio
from vmcr2_cli.tui.series import epoch_series

NO_VARIATIONAL = "no V-MCR² run shown: R^v, R_c^v and M exist only for V-MCR² runs"


class VariationalView(ChartTrio):
    CHARTS = (("m_term", "M (matching term)"), ("r_v", "R^v"), ("r_v_over_r", "R^v / R (1 = faithful)"))

    def show_runs(self, runs: list[RunHistory], colours: dict[str, int], numbers: dict[str, int],
                  options: ChartOptions = ChartOptions()) -> None:
        variational = [run for run in runs if run.is_variational]
        note = None if variational else NO_VARIATIONAL
        for key, _ in self.CHARTS:
            self.chart(key).show(epoch_series(variational, key, colours, options=options),
                                 x_label=x_label(options), empty_note=note, log_y=options.log_y)
