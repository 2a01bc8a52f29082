"""The dashboard driven by Textual's Pilot while the test writes to the run directories.

Each test starts the app on run directories it writes itself, then appends lines and
checks what the widgets hold. The poll interval is 0.1 s; ``wait_until`` gives the
timer up to a second, the dashboard's promise.
"""

from __future__ import annotations

import pytest
from textual.widgets import ContentSwitcher, Static

from vmcr2_cli.tui.app import WatchApp
from vmcr2_cli.tui.help_screen import HelpScreen
from vmcr2_cli.tui.legend import Legend
from vmcr2_cli.tui.metric_chart import MetricChart
from vmcr2_cli.tui.run_detail import RunDetail
from vmcr2_cli.tui.runs_table import RunsTable
from vmcr2_cli.tui.title_bar import TitleBar
from vmcr2_cli.tui.watcher import resolve_targets

from watch_fixtures import FakeRun, async_test, at, wait_until

SIZE = (100, 30)


def make_app(*paths, clock=at(200.0)) -> WatchApp:
    return WatchApp(resolve_targets(list(paths)), interval=0.1, clock=clock)


def table(app: WatchApp) -> dict:
    """Run name → its summary in the runs table."""
    return {s.name: s for s in app.query_one(RunsTable).summaries}


def chart(app: WatchApp, key: str) -> MetricChart:
    return app.query_one(f"#chart-{key}", MetricChart)


def detail_text(app: WatchApp) -> str:
    return app.query_one(RunDetail).render().plain


@pytest.fixture
def mcr2_run(tmp_path):
    run = FakeRun(tmp_path, "20261123-101502-fashion-mnist-mcr2", objective="mcr2", epochs=20)
    run.epochs_upto(3)
    return run


@pytest.fixture
def vmcr2_run(tmp_path):
    run = FakeRun(tmp_path, "20261123-101907-fashion-mnist-vmcr2", objective="vmcr2", epochs=20)
    run.epochs_upto(3)
    return run


@async_test
async def test_new_lines_appear_within_a_second(mcr2_run):
    app = make_app(mcr2_run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: mcr2_run.path.name in table(app))
        assert table(app)[mcr2_run.path.name].epoch == 3
        assert chart(app, "delta_r").series[0].xs == [1, 2, 3]
        new = mcr2_run.epoch(3)
        await wait_until(pilot, lambda: table(app)[mcr2_run.path.name].epoch == 4)
        assert table(app)[mcr2_run.path.name].delta_r == pytest.approx(new["delta_r"])
        assert chart(app, "delta_r").series[0].xs == [1, 2, 3, 4]
        step = mcr2_run.step(4, 30)
        await wait_until(pilot, lambda: table(app)[mcr2_run.path.name].step == step["step"])
        assert f"step {step['step']:,}" in detail_text(app)


@async_test
async def test_number_keys_switch_the_view(mcr2_run):
    app = make_app(mcr2_run.path)
    async with app.run_test(size=SIZE) as pilot:
        switcher = app.query_one(ContentSwitcher)
        assert switcher.current == "rate"
        for key, view in (("2", "variational"), ("3", "system"), ("1", "rate")):
            await pilot.press(key)
            assert switcher.current == view
            assert app.query_one(TitleBar).view == view


@async_test
async def test_clicking_a_tab_switches_the_view(mcr2_run):
    app = make_app(mcr2_run.path)
    async with app.run_test(size=SIZE) as pilot:
        title = app.query_one(TitleBar)
        start, _, _ = next(span for span in title._tab_spans if span[2] == "system")
        await pilot.click(TitleBar, offset=(start + 1, 0))
        assert app.query_one(ContentSwitcher).current == "system"


@async_test
async def test_keys_switch_the_selected_run_and_wrap_around(mcr2_run, vmcr2_run, tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: len(table(app)) == 2)
        first, second = mcr2_run.path.name, vmcr2_run.path.name
        selected = lambda: app.query_one(RunDetail).summary.name  # noqa: E731
        assert selected() == first
        for key, expected in (("j", second), ("j", first), ("k", second), ("tab", first),
                              ("shift+tab", second), ("down", first), ("up", second)):
            await pilot.press(key)
            assert selected() == expected, key
            assert app.query_one(RunsTable).selected == app.selected


@async_test
async def test_the_selected_run_is_drawn_last_and_alone_after_a(mcr2_run, vmcr2_run, tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: len(chart(app, "delta_r").series) == 2)
        assert chart(app, "delta_r").series[-1].label == mcr2_run.path.name
        await pilot.press("j")
        assert chart(app, "delta_r").series[-1].label == vmcr2_run.path.name
        await pilot.press("a")
        assert [s.label for s in chart(app, "delta_r").series] == [vmcr2_run.path.name]
        assert "selected run only" in app.query_one(Legend).render().plain
        await pilot.press("a")
        assert len(chart(app, "delta_r").series) == 2


@async_test
async def test_mcr2_and_vmcr2_runs_are_drawn_in_their_own_colours(mcr2_run, vmcr2_run, tmp_path):
    vmcr2_run.latch(1)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: len(chart(app, "r").series) == 2)
        colours = {s.label: s.colour for s in chart(app, "r").series}
        assert colours[mcr2_run.path.name] != colours[vmcr2_run.path.name]
        legend = app.query_one(Legend).render().plain
        assert "1 fashion-mnist-mcr2" in legend and "2 fashion-mnist-vmcr2" in legend
        assert "◆ latch" in legend and "eval" not in legend  # a marker is explained when drawn


@async_test
async def test_a_corrupt_line_is_skipped_counted_and_shown(mcr2_run):
    app = make_app(mcr2_run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: mcr2_run.path.name in table(app))
        mcr2_run.raw("{\"type\": \"epoch\", oops\n")
        mcr2_run.epoch(3)
        await wait_until(pilot, lambda: table(app)[mcr2_run.path.name].corrupt_lines == 1)
        assert table(app)[mcr2_run.path.name].epoch == 4  # the next good line still counts
        assert "1 corrupt line skipped" in detail_text(app)


@async_test
async def test_a_partial_last_line_is_held_until_completed(mcr2_run):
    app = make_app(mcr2_run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: mcr2_run.path.name in table(app))
        line = mcr2_run.values(3)
        mcr2_run.raw('{"type": "epoch", "time": %r, "epoch": 3, "step": %d, "delta_r": ' % (
            mcr2_run.epoch_end_time(3), line["step"]))
        await pilot.pause(0.3)  # three polls
        assert table(app)[mcr2_run.path.name].epoch == 3
        assert table(app)[mcr2_run.path.name].corrupt_lines == 0
        mcr2_run.raw("12.5}\n")
        await wait_until(pilot, lambda: table(app)[mcr2_run.path.name].epoch == 4)
        assert table(app)[mcr2_run.path.name].delta_r == 12.5


@async_test
async def test_a_run_that_starts_in_the_watched_folder_is_picked_up(mcr2_run, tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: len(table(app)) == 1)
        new = FakeRun(tmp_path, "20261123-120000-cifar10-vmcr2", objective="vmcr2")
        new.epoch(0)
        await wait_until(pilot, lambda: len(table(app)) == 2)
        assert table(app)[new.path.name].epoch == 1
        assert app.query_one(RunDetail).summary.name == mcr2_run.path.name  # the selection stays
        assert any(new.path.name in str(n.message) for n in app._notifications)


@async_test
async def test_an_empty_folder_waits_for_its_first_run(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert "waiting for runs" in app.query_one(RunsTable).render().plain
        FakeRun(tmp_path, "20261123-120000-a").epoch(0)
        await wait_until(pilot, lambda: len(table(app)) == 1)
        assert app.query_one(RunDetail).summary.name == "20261123-120000-a"


@async_test
async def test_a_run_that_stops_writing_turns_stalled_as_the_clock_moves(mcr2_run):
    now = [mcr2_run.epoch_end_time(2) + 10]
    app = make_app(mcr2_run.path, clock=lambda: now[0])
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: mcr2_run.path.name in table(app))
        assert table(app)[mcr2_run.path.name].status == "running"
        now[0] += 300
        # Without new lines the clock-driven parts are redrawn once a second.
        await wait_until(pilot, lambda: table(app)[mcr2_run.path.name].status == "stalled")
        assert "stalled: no line for" in detail_text(app)


@async_test
async def test_a_finished_run_shows_finished(mcr2_run):
    app = make_app(mcr2_run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: mcr2_run.path.name in table(app))
        mcr2_run.finish()
        await wait_until(pilot, lambda: table(app)[mcr2_run.path.name].status == "finished")


@async_test
async def test_latch_and_eval_events_are_marked_on_the_curves(vmcr2_run):
    vmcr2_run.latch(1)
    app = make_app(vmcr2_run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: bool(chart(app, "delta_r").series))
        markers = chart(app, "delta_r").series[0].markers
        assert [(m.x, m.symbol) for m in markers] == [(2.0, "◆")]
        vmcr2_run.eval(accuracy=0.5)
        await wait_until(pilot, lambda: len(chart(app, "delta_r").series[0].markers) == 2)
        assert chart(app, "delta_r").series[0].markers[-1].symbol == "●"
        await pilot.press("2")
        assert [m.symbol for m in chart(app, "m_term").series[0].markers] == ["◆", "●"]


@async_test
async def test_the_variational_view_draws_vmcr2_runs_only(mcr2_run, vmcr2_run, tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: len(table(app)) == 2)
        await pilot.press("2")
        for key in ("m_term", "r_v", "r_v_over_r"):
            assert [s.label for s in chart(app, key).series] == [vmcr2_run.path.name]


@async_test
async def test_the_variational_view_says_why_it_is_empty_for_mcr2(mcr2_run):
    app = make_app(mcr2_run.path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("2")
        assert "exist only for V-MCR²" in chart(app, "m_term").render().plain


@async_test
async def test_the_gpu_view_says_no_gpu_for_a_cpu_run(tmp_path):
    run = FakeRun(tmp_path, "cpu-run", gpu=False)
    run.epochs_upto(3)
    app = make_app(run.path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await wait_until(pilot, lambda: app.query_one("#no-gpu").display)
        assert "no GPU" in str(app.query_one("#no-gpu", Static).render())
        assert not app.query_one("#gpu-charts").display
        assert len(chart(app, "epoch_time_s").series[0].xs) == 3


@async_test
async def test_the_gpu_view_draws_utilization_memory_and_epoch_time(mcr2_run):
    app = make_app(mcr2_run.path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await wait_until(pilot, lambda: bool(chart(app, "gpu_util").series))
        assert chart(app, "gpu_util").series[0].ys == [80.0, 81.0, 82.0]
        assert chart(app, "gpu_mem").series[0].ys[0] == pytest.approx(10.0)  # GiB
        assert chart(app, "gpu_util").x_label == "min since start"
        assert not app.query_one("#no-gpu").display


@async_test
async def test_help_opens_with_question_mark_and_closes_with_escape(mcr2_run):
    app = make_app(mcr2_run.path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


@async_test
async def test_q_quits(mcr2_run):
    app = make_app(mcr2_run.path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert app._exit


@async_test
async def test_an_80_by_24_terminal_shows_every_part(mcr2_run, vmcr2_run, tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(table(app)) == 2)
        for widget in (app.query_one(TitleBar), app.query_one(RunsTable), app.query_one(RunDetail),
                       app.query_one(Legend), chart(app, "delta_r"), chart(app, "r"), chart(app, "r_c")):
            assert widget.region.height >= 1 and widget.region.right <= 80 and widget.region.bottom <= 23
        assert chart(app, "r").region.height >= 5

@async_test
async def test_lines_keep_arriving_while_help_is_open(mcr2_run):
    app = make_app(mcr2_run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: bool(app.runs_table.summaries))
        await pilot.press("question_mark")
        mcr2_run.epoch(3)
        await wait_until(pilot, lambda: app.runs_table.summaries[0].epoch == 4)
        assert isinstance(app.screen, HelpScreen)


@async_test
async def test_watching_latest_follows_it_to_the_next_run(tmp_path):
    import os

    FakeRun(tmp_path, "20261123-100000-a").epoch(0)
    os.symlink("20261123-100000-a", tmp_path / "latest")
    app = make_app(tmp_path / "latest")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: len(table(app)) == 1)
        FakeRun(tmp_path, "20261123-110000-b").epoch(0)
        os.symlink("20261123-110000-b", tmp_path / "latest.tmp")
        os.replace(tmp_path / "latest.tmp", tmp_path / "latest")
        await wait_until(pilot, lambda: len(table(app)) == 2)
        assert app.run_detail.summary.name == "20261123-110000-b"


@async_test
async def test_at_start_the_first_running_run_is_selected_and_nothing_is_announced(tmp_path):
    done = FakeRun(tmp_path, "20261122-000000-done", epochs=2)
    done.epochs_upto(2)
    done.finish()
    FakeRun(tmp_path, "20261123-000000-live").epoch(0)
    app = make_app(tmp_path, clock=at(40.0))
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.caught_up)
        assert app.run_detail.summary.name == "20261123-000000-live"
        assert not app._notifications


@async_test
async def test_a_failing_read_is_reported_once_and_the_app_keeps_going(mcr2_run, monkeypatch):
    app = make_app(mcr2_run.path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.caught_up)

        def broken():
            raise OSError("disk went away")

        monkeypatch.setattr(app.watcher, "poll", broken)
        await wait_until(pilot, lambda: bool(app._notifications))
        await pilot.pause(0.3)
        assert ["disk went away" in str(n.message) for n in app._notifications] == [True]
        monkeypatch.undo()
        mcr2_run.epoch(3)
        await wait_until(pilot, lambda: table(app)[mcr2_run.path.name].epoch == 4)


@async_test
async def test_with_no_run_running_the_newest_is_selected(tmp_path):
    for name in ("20261121-000000-old", "20261122-000000-new"):
        run = FakeRun(tmp_path, name, epochs=1)
        run.epoch(0)
        run.finish()
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.caught_up)
        assert app.run_detail.summary.name == "20261122-000000-new"
