"""Snapshots of the dashboard's screens at 80×24 and 200×50 (pytest-textual-snapshot).

Fixed data (``FakeRun``), fixed times and a frozen clock, so the screens are the same on
every machine. After an intended change of the look: ``pytest tests/test_watch_snapshots.py
--snapshot-update``, then look at the SVGs in ``tests/__snapshots__/``.
"""

from __future__ import annotations

import pytest

from vmcr2_cli.tui.app import WatchApp
from vmcr2_cli.tui.watcher import resolve_targets

from watch_fixtures import FakeRun, T0, wait_until

SMALL, LARGE = (80, 24), (200, 50)


@pytest.fixture
def runs(tmp_path):
    """Three runs: MCR² and V-MCR² running (epoch 40 of 100, latches, evaluations every 10 epochs, a corrupt
    line), a finished CPU run."""
    folder = tmp_path / "runs"
    mcr2 = FakeRun(folder, "20261123-101502-fashion-mnist-mcr2", objective="mcr2", epochs=100, gain=1.4)
    vmcr2 = FakeRun(folder, "20261123-101907-fashion-mnist-vmcr2", objective="vmcr2", epochs=100, gain=0.8)
    cpu = FakeRun(folder, "20261122-221000-synthetic-vmcr2", objective="vmcr2", epochs=30, gpu=False,
                  epoch_time=3.0, dataset="synthetic", profile="synthetic-smoke", gain=0.5)
    vmcr2.line("latch", time=T0, epoch=0, step=0)
    for index in range(40):
        mcr2.epoch(index)
        vmcr2.epoch(index)
        if index % 15 == 14:
            vmcr2.latch(index)
        if index % 10 == 9:  # eval_every = 10: V-MCR²'s nearest subspace peaks while its kNN rises
            done = index + 1
            mcr2.eval(0.6 + 0.006 * done, done=done, knn_accuracy=0.7 + 0.004 * done)
            vmcr2.eval(0.8 - 0.0002 * (done - 20) ** 2, done=done, knn_accuracy=0.82 + 0.002 * done)
    mcr2.raw("{corrupt\n")
    cpu.epochs_upto(30)
    cpu.eval(0.874)
    cpu.finish()
    return folder


# The data are fixed and the clock frozen, so one read draws everything: no further polls, whose redraws
# could land between the key presses and the screenshot.
ONE_READ = 3600.0


def app_for(path, seconds_after_t0: float = 40 * 30.0 + 12) -> WatchApp:
    return WatchApp(resolve_targets([path]), interval=ONE_READ, clock=lambda: T0 + seconds_after_t0)


def settled_after(*keys: str):
    """What runs before the screenshot: every run read and drawn, then ``keys`` pressed, then the
    screen still — the conditions themselves, however long a loaded machine takes (fixed pauses took
    the screenshot too early there)."""

    async def run_before(pilot) -> None:
        await wait_until(pilot, lambda: pilot.app.caught_up)
        await pilot.press(*keys)
        await until_still(pilot)

    return run_before


async def until_still(pilot, frames: int = 3) -> None:
    """Until ``frames`` screens in a row (taken as ``wait_until`` polls) are the same."""
    shots: list[str] = []

    def still() -> bool:
        shots.append(pilot.app.export_screenshot())
        return len(shots) >= frames and len(set(shots[-frames:])) == 1

    await wait_until(pilot, still)


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "200x50"])
@pytest.mark.parametrize("view", ["1", "2", "3", "4"], ids=["rate", "variational", "gpu", "accuracy"])
def test_views(snap_compare, runs, size, view):
    assert snap_compare(app_for(runs), terminal_size=size, run_before=settled_after(view))


def test_second_run_selected_and_alone(snap_compare, runs):
    assert snap_compare(app_for(runs), terminal_size=SMALL, run_before=settled_after("j", "a"))


def test_help(snap_compare, runs):
    assert snap_compare(app_for(runs), terminal_size=SMALL, run_before=settled_after("question_mark"))


def test_one_stalled_cpu_run(snap_compare, tmp_path):
    run = FakeRun(tmp_path, "20261123-090000-synthetic-mcr2", objective="mcr2", epochs=50, gpu=False,
                  epoch_time=4.0, dataset="synthetic")
    run.epochs_upto(12)
    app = WatchApp(resolve_targets([run.path]), interval=ONE_READ, clock=lambda: T0 + 12 * 4.0 + 600)
    assert snap_compare(app, terminal_size=SMALL, run_before=settled_after("3"))


def test_smoothed_log_by_step(snap_compare, runs):
    """s s (EMA 0.8), l (log y), x (by step), at 80×24: titles say so, the latch lines stay."""
    assert snap_compare(app_for(runs), terminal_size=SMALL, run_before=settled_after("s", "s", "l", "x"))


def test_filter_prompt(snap_compare, runs):
    assert snap_compare(app_for(runs), terminal_size=SMALL, run_before=settled_after("slash", "v", "m"))
