"""View 2: the V-MCR² terms over epochs — the matching term M, R^v and R_c^v (paper eq. 7)."""

from __future__ import annotations

from vmcr2_cli.tui.history import RunHistory
from vmcr2_cli.tui.metric_chart import ChartTrio
from vmcr2_cli.tui.series import epoch_series

NO_VARIATIONAL = "no V-MCR² run shown: R^v, R_c^v and M exist only for V-MCR² runs"


class VariationalView(ChartTrio):
    CHARTS = (("m_term", "M (matching term)"), ("r_v", "R^v"), ("r_c_v", "R_c^v"))

    def show_runs(self, runs: list[RunHistory], colours: dict[str, int], numbers: dict[str, int]) -> None:
        variational = [run for run in runs if run.is_variational]
        note = None if variational else NO_VARIATIONAL
        for key, _ in self.CHARTS:
            self.chart(key).show(epoch_series(variational, key, colours), x_label="epoch", empty_note=note)
