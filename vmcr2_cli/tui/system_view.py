"""View 3: GPU utilization and memory over time, and the time each epoch took.

A CPU run has no GPU readings (its lines carry ``gpu_util: null``): the view says
"no GPU" in words rather than drawing empty charts.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from vmcr2_cli.tui.chart_options import ChartOptions, x_label
from vmcr2_cli.tui.history import RunHistory
from vmcr2_cli.tui.metric_chart import MetricChart
from vmcr2_cli.tui.series import epoch_series, time_series
from vmcr2_cli.tui.tables import shorten


class SystemView(Vertical):
    DEFAULT_CSS = """
    SystemView > Horizontal { height: 1fr; }
    SystemView > #no-gpu { height: auto; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="no-gpu")
        with Horizontal(id="gpu-charts"):
            yield MetricChart("GPU utilization (%)", integer_x=False, id="chart-gpu_util",
                              waiting="waiting for the first GPU reading…")
            yield MetricChart("GPU memory (GiB)", integer_x=False, id="chart-gpu_mem",
                              waiting="waiting for the first GPU reading…")
        yield MetricChart("epoch time (s)", id="chart-epoch_time_s")

    def show_runs(self, runs: list[RunHistory], colours: dict[str, int], numbers: dict[str, int],
                  options: ChartOptions = ChartOptions()) -> None:
        gpu_state = {run.key: run.has_gpu for run in runs}
        cpu_runs = [run for run in runs if gpu_state[run.key] is False]
        gpu_runs = [run for run in runs if gpu_state[run.key] is not False]
        no_gpu = self.query_one("#no-gpu", Static)
        if cpu_runs:
            devices = sorted({str(run.meta.get("device") or "cpu") for run in cpu_runs})
            if len(runs) == 1:
                who = "this run"
            elif not gpu_runs:
                who = "these runs"
            else:
                who = ", ".join(f"{numbers.get(run.key, '?')} {shorten(run.name, 24)}" for run in cpu_runs)
            no_gpu.update(Text.assemble(("no GPU", "bold"), f" — {who} ran on {', '.join(devices)}"))
        no_gpu.display = bool(cpu_runs)
        self.query_one("#gpu-charts").display = bool(gpu_runs) or not runs
        util, unit = time_series(gpu_runs, "util", colours)
        memory, _ = time_series(gpu_runs, "mem_mb", colours, scale=1 / 1024)
        self.query_one("#chart-gpu_util", MetricChart).show(util, x_label=unit)
        self.query_one("#chart-gpu_mem", MetricChart).show(memory, x_label=unit)
        self.query_one("#chart-epoch_time_s", MetricChart).show(
            epoch_series(runs, "epoch_time_s", colours, markers=False, options=options), x_label=x_label(options),
            log_y=options.log_y)
