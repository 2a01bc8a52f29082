"""The per-run summary that the dashboard and ``watch --once`` share: status, stalled, epochs, ETA."""

from __future__ import annotations

import pytest

from vmcr2_cli.numbers import fmt_duration, fmt_value
from vmcr2_cli.tui.formatting import run_colours
from vmcr2_cli.tui.history import RunHistory
from vmcr2_cli.tui.summary import STALL_FLOOR_S, stall_threshold_s, summarize
from vmcr2_cli.tui.tables import fit_columns, runs_table, short_names, shorten
from vmcr2_cli.tui.watcher import Watcher, WatchTarget

from watch_fixtures import T0, FakeRun


def history_of(run: FakeRun) -> RunHistory:
    """Everything ``run`` has written so far, read the way the dashboard reads it."""
    from vmcr2_cli.tui.store import RunStore

    store = RunStore()
    store.apply(Watcher([WatchTarget(run.path, "run")]).poll())
    return next(iter(store.runs.values()))


def test_epochs_done_counts_the_zero_based_index_of_the_last_epoch_line(tmp_path):
    run = FakeRun(tmp_path, "r", epochs=20)
    run.epochs_upto(5)  # indices 0..4
    summary = summarize(history_of(run), now=run.epoch_end_time(4))
    assert (summary.epoch, summary.total_epochs) == (5, 20)
    assert summary.step == 5 * run.steps_per_epoch


def test_latest_values_come_from_the_newest_progress_line(tmp_path):
    run = FakeRun(tmp_path, "r")
    run.epochs_upto(3)
    step = run.step(3, 30)
    summary = summarize(history_of(run), now=T0 + 200)
    assert summary.delta_r == pytest.approx(step["delta_r"])
    assert summary.step == step["step"]
    assert summary.epoch == 3  # the step line is inside epoch 4, which is not done


def test_mean_epoch_time_and_eta_follow_the_clock(tmp_path):
    run = FakeRun(tmp_path, "r", epochs=10, epoch_time=30.0)
    run.epochs_upto(4)
    history = history_of(run)
    mean = history.mean_epoch_time()
    assert mean == pytest.approx((30 + 30.5 + 31 + 30) / 4)
    at_last_line = summarize(history, now=run.epoch_end_time(3))
    assert at_last_line.eta_s == pytest.approx(6 * mean)
    ten_s_later = summarize(history, now=run.epoch_end_time(3) + 10)
    assert ten_s_later.eta_s == pytest.approx(6 * mean - 10)


def test_a_running_run_that_writes_nothing_for_long_is_stalled(tmp_path):
    run = FakeRun(tmp_path, "r", epoch_time=30.0)
    run.epochs_upto(3)
    history = history_of(run)
    last = run.epoch_end_time(2)
    assert stall_threshold_s(history.mean_epoch_time()) == STALL_FLOOR_S  # 3 × 30 s < 120 s
    assert summarize(history, now=last + 119).status == "running"
    stalled = summarize(history, now=last + 121)
    assert stalled.status == "stalled"
    assert "no line for 2m01s" in stalled.stalled_reason
    assert stalled.eta_s is None


def test_slow_epochs_raise_the_stall_threshold(tmp_path):
    run = FakeRun(tmp_path, "r", epoch_time=100.0)
    run.epochs_upto(2)
    history = history_of(run)
    last = run.epoch_end_time(1)
    assert summarize(history, now=last + 250).status == "running"  # < 3 × ~100 s
    assert summarize(history, now=last + 320).status == "stalled"


def test_a_run_whose_process_has_exited_is_stalled_at_once(tmp_path):
    run = FakeRun(tmp_path, "r")
    run.epochs_upto(1)
    summary = summarize(history_of(run), now=run.epoch_end_time(0) + 1, process_alive=False)
    assert summary.status == "stalled"
    assert "has exited" in summary.stalled_reason


@pytest.mark.parametrize("status", ["finished", "interrupted", "failed"])
def test_a_run_that_ended_is_never_stalled(tmp_path, status):
    run = FakeRun(tmp_path, "r", epochs=3)
    run.epochs_upto(3)
    run.finish(status)
    summary = summarize(history_of(run), now=T0 + 10**6)
    assert summary.status == status
    assert summary.eta_s is None


def test_a_cpu_run_has_no_gpu(tmp_path):
    run = FakeRun(tmp_path, "r", gpu=False)
    run.epochs_upto(2)
    summary = summarize(history_of(run), now=T0 + 100)
    assert summary.has_gpu is False
    assert (summary.gpu_util, summary.gpu_mem_mb) == (None, None)


def test_a_gpu_run_reports_its_latest_reading(tmp_path):
    run = FakeRun(tmp_path, "r")
    run.epochs_upto(3)
    summary = summarize(history_of(run), now=T0 + 100)
    assert summary.has_gpu is True
    assert summary.gpu_util == run.values(2)["gpu_util"]


def test_variational_terms_and_eval_accuracy_are_summarized(tmp_path):
    run = FakeRun(tmp_path, "v", objective="vmcr2", epochs=2)
    run.epochs_upto(2)
    run.eval(accuracy=0.9)
    summary = summarize(history_of(run), now=T0 + 100)
    assert summary.m_term == pytest.approx(run.values(1)["m_term"])
    assert summary.eval_accuracy == pytest.approx(0.9)


def test_events_sit_after_the_epoch_line_of_their_step(tmp_path):
    run = FakeRun(tmp_path, "v", objective="vmcr2")
    run.line("latch", time=T0, epoch=0, step=0)  # Algorithm 1 line 2: before any epoch
    run.epochs_upto(4)
    run.latch(1)  # after the second epoch
    history = history_of(run)
    assert [history.event_x(event) for event in history.latches] == [0.0, 2.0]


def test_a_resumed_run_that_logs_an_epoch_again_replaces_it(tmp_path):
    run = FakeRun(tmp_path, "r")
    run.epochs_upto(4)
    run.epoch(2, delta_r=1.0)  # resumed from the checkpoint after epoch index 1
    history = history_of(run)
    xs, ys = history.series("delta_r")
    assert xs == [1, 2, 3]
    assert ys[-1] == 1.0


def test_runs_of_each_objective_get_colours_of_their_own_family():
    colours = run_colours(["mcr2", "vmcr2", "mcr2", "vmcr2", "ce"])
    assert len(set(colours)) == 5
    assert all(c < 16 for c in colours)  # 16-colour terminals show every distinction


def test_durations_and_values_are_short():
    assert [fmt_duration(s) for s in (5, 125, 3 * 3600 + 120, 2 * 86400 + 3600)] == ["5s", "2m05s", "3h02m", "2d01h"]
    assert fmt_value(44.99123) == "44.991"
    assert fmt_value(None) == "—"


def test_run_names_lose_their_timestamp_first_when_short_of_room():
    assert shorten("20261123-101502-tinyimagenet-vmcr2", 20) == "tinyimagenet-vmcr2"
    assert shorten("20261123-101502-tinyimagenet-vmcr2", 10) == "…net-vmcr2"


def test_the_runs_table_keeps_the_important_columns_at_80_and_all_at_200(tmp_path):
    run = FakeRun(tmp_path, "20261123-101502-fashion-mnist-vmcr2", objective="vmcr2")
    run.epochs_upto(3)
    summaries = [summarize(history_of(run), now=T0 + 100)]
    narrow, hidden = fit_columns(summaries, 80, lead_width=8)
    assert {"status", "epoch", "ΔR", "ETA"} <= {c.header for c, _ in narrow}
    assert hidden
    wide, hidden = fit_columns(summaries, 200, lead_width=8)
    assert not hidden
    table, _ = runs_table(summaries, 80, numbered=True, colours={})
    from rich.console import Console

    console = Console(width=80, record=True)
    console.print(table)
    lines = console.export_text().splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert "fashion-mnist-vmcr2" in lines[1]


def test_runs_whose_short_names_clash_keep_their_time_of_day():
    names = ["20261123-100640-synthetic-vmcr2", "20261123-100705-synthetic-vmcr2", "20261123-100707-synthetic-mcr2"]
    assert short_names(names, 25) == ["100640-synthetic-vmcr2", "100705-synthetic-vmcr2", "synthetic-mcr2"]
    assert short_names(names, 40) == names
    assert short_names(names, 40, strip=True)[2] == "synthetic-mcr2"


def test_chart_ticks_are_round_and_their_labels_short():
    from vmcr2_cli.tui.metric_chart import nice_ticks, tick_labels

    assert nice_ticks(1, 2000, 5, integer=True) == [500, 1000, 1500, 2000]
    assert nice_ticks(1, 3, 8, integer=True) == [1, 2, 3]  # no half epochs
    assert tick_labels(nice_ticks(5245, 161939, 4)) == ["50k", "100k", "150k"]
    assert tick_labels(nice_ticks(10.0, 11.2, 4)) == ["10.0", "10.5", "11.0"]


def test_faithfulness_is_derived_for_vmcr2_runs_that_did_not_log_it(tmp_path):
    run = FakeRun(tmp_path, "old", objective="vmcr2")
    line = {**run.values(0)}
    del line["r_v_over_r"]
    run.line("epoch", time=run.epoch_end_time(0), **line)
    xs, ys = history_of(run).series("r_v_over_r")
    assert xs == [1] and ys == [pytest.approx(line["r_v"] / line["r"])]
