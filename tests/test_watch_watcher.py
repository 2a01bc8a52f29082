"""The watcher: which paths it accepts, what it reads, and what it reports (no UI involved)."""

from __future__ import annotations

import os

import pytest

from vmcr2_cli.errors import BadInput
from vmcr2_cli.tui.watcher import RunFound, RunUpdate, Watcher, resolve_target, resolve_targets

from watch_fixtures import FakeRun


def records(events) -> list[dict]:
    return [record for event in events if isinstance(event, RunUpdate) for record in event.records]


# ----------------------------------------------------------------------------- paths

def test_a_run_directory_is_watched_as_a_run(tmp_path):
    run = FakeRun(tmp_path, "r")
    assert resolve_target(run.path).kind == "run"


def test_latest_is_a_link_followed_at_every_poll(tmp_path):
    FakeRun(tmp_path, "a")
    os.symlink("a", tmp_path / "latest")
    assert resolve_target(tmp_path / "latest").kind == "link"


def test_a_folder_of_runs_and_an_empty_folder_are_folders(tmp_path):
    FakeRun(tmp_path / "runs", "a")
    (tmp_path / "empty").mkdir()
    assert resolve_target(tmp_path / "runs").kind == "folder"
    assert resolve_target(tmp_path / "empty").kind == "folder"


def test_a_file_of_a_run_means_its_run(tmp_path):
    run = FakeRun(tmp_path, "r")
    target = resolve_target(run.metrics)
    assert (target.path, target.kind) == (run.path, "run")


def _missing(folder):
    return folder / "missing"


def _a_file(folder):
    (folder / "notes.txt").write_text("hi")
    return folder / "notes.txt"


def _a_source_folder(folder):
    (folder / "src").mkdir()
    (folder / "src" / "x.py").write_text("")
    return folder / "src"


@pytest.mark.parametrize("make, message", [
    (_missing, "no such file or folder"),
    (_a_file, "(a file)"),
    (_a_source_folder, "no meta.json and config.toml"),
])
def test_a_path_that_is_not_a_run_nor_a_folder_of_runs_is_bad_input(tmp_path, make, message):
    with pytest.raises(BadInput, match="not a run directory or a folder of runs") as error:
        resolve_target(make(tmp_path))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_dangling_latest_link_is_bad_input(tmp_path):
    os.symlink("gone", tmp_path / "latest")
    with pytest.raises(BadInput, match="which does not exist"):
        resolve_target(tmp_path / "latest")


def test_no_path_at_all_is_bad_input():
    with pytest.raises(BadInput):
        resolve_targets([])


# ----------------------------------------------------------------------------- reading

def test_the_first_poll_finds_the_run_and_reads_every_line(tmp_path):
    run = FakeRun(tmp_path, "r")
    run.epochs_upto(3)
    watcher = Watcher(resolve_targets([run.path]))
    events = watcher.poll()
    found = [e for e in events if isinstance(e, RunFound)]
    assert [f.run.name for f in found] == ["r"]
    assert found[0].meta["objective"] == "mcr2" and found[0].config["epochs"] == 20
    assert [r["epoch"] for r in records(events)] == [0, 1, 2]


def test_later_polls_report_only_new_lines_and_nothing_when_idle(tmp_path):
    run = FakeRun(tmp_path, "r")
    watcher = Watcher(resolve_targets([run.path]))
    watcher.poll()
    run.epoch(0)
    assert [r["epoch"] for r in records(watcher.poll())] == [0]
    assert watcher.poll() == []


def test_a_partial_last_line_is_held_until_its_newline(tmp_path):
    run = FakeRun(tmp_path, "r")
    watcher = Watcher(resolve_targets([run.path]))
    watcher.poll()
    run.raw('{"type": "epoch", "time": 1, "epoch": 0, "st')
    assert records(watcher.poll()) == []
    run.raw('ep": 60, "delta_r": 3.5}\n')
    assert records(watcher.poll()) == [{"type": "epoch", "time": 1, "epoch": 0, "step": 60, "delta_r": 3.5}]


def test_a_corrupt_line_is_skipped_and_counted(tmp_path):
    run = FakeRun(tmp_path, "r")
    run.epoch(0)
    run.raw("{this is not json\n")
    run.epoch(1)
    watcher = Watcher(resolve_targets([run.path]))
    events = watcher.poll()
    assert [r["epoch"] for r in records(events)] == [0, 1]
    assert [e.corrupt_lines for e in events if isinstance(e, RunUpdate)] == [1]


def test_a_rewritten_meta_json_is_reported(tmp_path):
    run = FakeRun(tmp_path, "r")
    watcher = Watcher(resolve_targets([run.path]))
    watcher.poll()
    run.finish()
    updates = [e for e in watcher.poll() if isinstance(e, RunUpdate)]
    assert updates[0].meta["status"] == "finished"


def test_a_run_that_starts_in_a_watched_folder_joins(tmp_path):
    FakeRun(tmp_path, "20261123-100000-a")
    watcher = Watcher(resolve_targets([tmp_path]))
    assert [e.run.name for e in watcher.poll() if isinstance(e, RunFound)] == ["20261123-100000-a"]
    (tmp_path / "20261123-110000-b").mkdir()  # created, meta.json not written yet: not a run yet
    assert not [e for e in watcher.poll() if isinstance(e, RunFound)]
    FakeRun(tmp_path, "20261123-110000-b")
    assert [e.run.name for e in watcher.poll() if isinstance(e, RunFound)] == ["20261123-110000-b"]


def test_latest_pointing_to_a_new_run_brings_that_run_in(tmp_path):
    FakeRun(tmp_path, "a")
    os.symlink("a", tmp_path / "latest")
    watcher = Watcher(resolve_targets([tmp_path / "latest"]))
    assert [e.run.name for e in watcher.poll() if isinstance(e, RunFound)] == ["a"]
    FakeRun(tmp_path, "b")
    os.symlink("b", tmp_path / "latest.tmp")
    os.replace(tmp_path / "latest.tmp", tmp_path / "latest")
    assert [e.run.name for e in watcher.poll() if isinstance(e, RunFound)] == ["b"]


def test_the_same_run_named_twice_is_watched_once(tmp_path):
    FakeRun(tmp_path, "a")
    os.symlink("a", tmp_path / "latest")
    watcher = Watcher(resolve_targets([tmp_path / "latest", tmp_path / "a", tmp_path]))
    assert len([e for e in watcher.poll() if isinstance(e, RunFound)]) == 1


def test_the_callback_gets_the_events(tmp_path):
    run = FakeRun(tmp_path, "r")
    run.epoch(0)
    received = []
    Watcher(resolve_targets([run.path]), on_events=received.append).poll()
    assert len(received) == 1 and isinstance(received[0][0], RunFound)


def test_a_running_run_whose_process_is_gone_is_reported(tmp_path):
    import socket
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a pid that no longer runs
    run = FakeRun(tmp_path, "r")
    run.write_meta(pid=child.pid, host=socket.gethostname())
    events = Watcher(resolve_targets([run.path])).poll()
    assert [e.process_alive for e in events if isinstance(e, RunUpdate)] == [False]
