"""Snapshots of the dashboard's screens at 80×24 and 200×50 (pytest-textual-snapshot).

Fixed data (``FakeRun``), fixed times and a frozen clock, so the screens are the same on
every machine. After an intended change of the look: ``pytest tests/test_watch_snapshots.py
--snapshot-update``, then look at the SVGs in ``tests/__snapshots__/``.
"""

from __future__ import annotations

import pytest

from vmcr2_cli.tui.app import WatchApp
from vmcr2_cli.tui.watcher import resolve_targets

from watch_fixtures import FakeRun, T0

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


def app_for(path, seconds_after_t0: float = 40 * 30.0 + 12) -> WatchApp:
    return WatchApp(resolve_targets([path]), interval=0.1, clock=lambda: T0 + seconds_after_t0)


async def settle(pilot) -> None:
    """Until the first read of every run is drawn."""
    for _ in range(100):
        if pilot.app.caught_up:
            break
        await pilot.pause(0.02)
    await pilot.pause()


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "200x50"])
@pytest.mark.parametrize("view", ["1", "2", "3", "4"], ids=["rate", "variational", "gpu", "accuracy"])
def test_views(snap_compare, runs, size, view):
    assert snap_compare(app_for(runs), press=[view], terminal_size=size, run_before=settle)


def test_second_run_selected_and_alone(snap_compare, runs):
    assert snap_compare(app_for(runs), press=["j", "a"], terminal_size=SMALL, run_before=settle)


def test_help(snap_compare, runs):
    assert snap_compare(app_for(runs), press=["question_mark"], terminal_size=SMALL, run_before=settle)


def test_one_stalled_cpu_run(snap_compare, tmp_path):
    run = FakeRun(tmp_path, "20261123-090000-synthetic-mcr2", objective="mcr2", epochs=50, gpu=False,
                  epoch_time=4.0, dataset="synthetic")
    run.epochs_upto(12)
    app = WatchApp(resolve_targets([run.path]), interval=0.1, clock=lambda: T0 + 12 * 4.0 + 600)
    assert snap_compare(app, press=["3"], terminal_size=SMALL, run_before=settle)


def test_smoothed_log_by_step(snap_compare, runs):
    """s s (EMA 0.8), l (log y), x (by step), at 80×24: titles say so, the latch lines stay."""
    assert snap_compare(app_for(runs), press=["s", "s", "l", "x"], terminal_size=SMALL, run_before=settle)


def test_filter_prompt(snap_compare, runs):
    assert snap_compare(app_for(runs), press=["slash", "v", "m"], terminal_size=SMALL, run_before=settle)
