"""The dashboard's chart keys through Textual's Pilot: smoothing, raw, log y, the x axis, the run filter,
and the latch lines; the smoothing against TensorBoard's formula."""

from __future__ import annotations

import math

import pytest
from textual.widgets import Input

from vmcr2_cli.tui.chart_options import ChartOptions, ema
from vmcr2_cli.tui.filter_screen import FilterScreen
from vmcr2_cli.tui.legend import Legend

from test_watch_app import SIZE, chart, make_app, wait_until
from watch_fixtures import FakeRun, async_test


def tensorboard_smoothing(values: list[float], weight: float) -> list[float]:
    """TensorBoard's smoothing, transcribed from its scalar dashboard (``resetSmoothing``)."""
    last, accumulated, out = 0.0, 0, []
    for value in values:
        last = last * weight + (1 - weight) * value
        accumulated += 1
        debias = 1 - weight ** accumulated if weight != 1 else 1
        out.append(last / debias)
    return out


@pytest.mark.parametrize("weight", [0.0, 0.6, 0.9, 0.99])
def test_ema_is_tensorboards_debiased_smoothing(weight):
    values = [math.sin(i / 3) * 10 + i for i in range(50)]
    assert ema(values, weight) == pytest.approx(tensorboard_smoothing(values, weight) if weight else values)
    assert ema([5.0], weight) == pytest.approx([5.0])  # the debiasing keeps the first point where it is


def test_options_cycle_and_describe_themselves():
    options = ChartOptions()
    assert [options := options.next_smoothing() for _ in range(6)][-1].smoothing == 0.0
    assert ChartOptions(smoothing=0.9, log_y=True).describe() == "EMA 0.9 · log y"
    assert ChartOptions(smoothing=0.9, raw=True).weight == 0.0
    assert [ChartOptions().next_x_axis().x_axis, ChartOptions(x_axis="time").next_x_axis().x_axis] == ["step", "epoch"]


@pytest.fixture
def runs(tmp_path):
    a = FakeRun(tmp_path, "20261123-101502-fashion-mnist-mcr2", objective="mcr2", epochs=20)
    b = FakeRun(tmp_path, "20261123-101907-fashion-mnist-vmcr2", objective="vmcr2", epochs=20, gain=2.0)
    for run in (a, b):
        run.epochs_upto(8)
    b.latch(2)
    b.latch(5)
    return a, b


async def both_drawn(pilot, app) -> None:
    await wait_until(pilot, lambda: len(chart(app, "delta_r").series) == 2)


@async_test
async def test_s_smooths_r_shows_raw_and_the_title_says_so(runs, tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await both_drawn(pilot, app)
        raw = list(chart(app, "delta_r").series[-1].ys)
        await pilot.press("s")  # 0.6
        assert chart(app, "delta_r").series[-1].ys == pytest.approx(ema(raw, 0.6))
        assert "EMA 0.6" in chart(app, "delta_r").x_label
        await pilot.press("r")
        assert chart(app, "delta_r").series[-1].ys == pytest.approx(raw)
        assert "raw" in chart(app, "delta_r").x_label
        await pilot.press("r")
        assert chart(app, "delta_r").series[-1].ys == pytest.approx(ema(raw, 0.6))


@async_test
async def test_l_draws_log10_and_labels_the_values(runs, tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await both_drawn(pilot, app)
        raw = list(chart(app, "delta_r").series[-1].ys)
        await pilot.press("l")
        drawn = chart(app, "delta_r")
        assert drawn.log_y and drawn.series[-1].ys == pytest.approx([math.log10(y) for y in raw])
        assert "log y" in drawn.x_label
        await pilot.press("l")
        assert chart(app, "delta_r").series[-1].ys == pytest.approx(raw)


@async_test
async def test_x_steps_through_epoch_step_and_time(runs, tmp_path):
    a, _ = runs
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await both_drawn(pilot, app)
        assert chart(app, "delta_r").series[-1].xs == list(range(1, 9))
        await pilot.press("x")
        assert chart(app, "delta_r").series[-1].xs == [a.values(i)["step"] for i in range(8)]
        assert chart(app, "delta_r").x_label.startswith("step")
        await pilot.press("x")
        assert chart(app, "delta_r").series[-1].xs == pytest.approx([(i + 1) * 30.0 / 60 for i in range(8)])
        assert chart(app, "delta_r").x_label.startswith("min since start")
        await pilot.press("x")
        assert chart(app, "delta_r").x_label == "epoch"


@async_test
async def test_latches_give_the_top_run_its_lines(runs, tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await both_drawn(pilot, app)
        await pilot.press("j")  # the V-MCR² run on top
        top = chart(app, "delta_r").series[-1]
        assert "vmcr2" in top.label and top.latches == [3.0, 6.0]  # after epochs 3 and 6
        await pilot.press("x")
        assert chart(app, "delta_r").series[-1].latches == [runs[1].values(2)["step"], runs[1].values(5)["step"]]


@async_test
async def test_slash_filters_the_runs_by_a_regex_and_a_bad_one_is_said(runs, tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await both_drawn(pilot, app)
        await pilot.press("slash")
        assert isinstance(app.screen, FilterScreen)
        app.screen.query_one(Input).value = "vmcr2$"
        await pilot.press("enter")
        assert [s.label for s in chart(app, "delta_r").series] == [runs[1].path.name]
        assert "/vmcr2$/" in app.query_one(Legend).render().plain
        await pilot.press("slash")
        app.screen.query_one(Input).value = "["
        await pilot.press("enter")
        assert app.name_filter.pattern == "vmcr2$"  # unchanged after a bad pattern
        await pilot.press("slash")
        app.screen.query_one(Input).value = ""
        await pilot.press("enter")
        assert len(chart(app, "delta_r").series) == 2 and app.name_filter is None
