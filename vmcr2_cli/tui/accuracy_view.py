"""View 4: the accuracies measured along a run (``eval_every``), every run overlaid.

Nearest subspace (eq. 8) and kNN on the test set (or the validation split), and the head (CE's,
or a ReduNet's memberships):
where a curve peaks, and whether nearest subspace and kNN part ways as training goes on.
"""

from __future__ import annotations

from vmcr2_cli.tui.chart_options import ChartOptions, x_label
from vmcr2_cli.tui.history import RunHistory
from vmcr2_cli.tui.metric_chart import ChartTrio
from vmcr2_cli.tui.series import eval_series

NO_EVALUATIONS = "no eval lines yet: train with --set eval_every=N to measure accuracy every N epochs"
NO_HEAD = "no run with a head shown: CE's linear head or a ReduNet's memberships π̂ (eq. 14)"


class AccuracyView(ChartTrio):
    CHARTS = (("nearest_subspace_accuracy", "nearest-subspace accuracy (eq. 8)"), ("knn_accuracy", "kNN accuracy"),
              ("head_accuracy", "head accuracy (CE's; ReduNet's π̂)"))

    def show_runs(self, runs: list[RunHistory], colours: dict[str, int], numbers: dict[str, int],
                  options: ChartOptions = ChartOptions()) -> None:
        note = None if any(run.evals for run in runs) else NO_EVALUATIONS
        for key, _ in self.CHARTS:
            series = eval_series(runs, key, colours, options=options)
            self.chart(key).show(series, x_label=x_label(options), log_y=options.log_y,
                                 empty_note=note or (NO_HEAD if key == "head_accuracy" and not series else None))
