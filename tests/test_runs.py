"""The run directory contract: atomic files, tolerant readers, the latest link."""

import json
import os

import pytest

from vmcr2_cli.errors import BadInput
from vmcr2_cli.runs import MetricsTail, RunDir, point_latest, read_metrics, runs_in


def make_run(tmp_path, name="r1") -> RunDir:
    run = RunDir.create(tmp_path, name)
    run.config_path.write_text('objective = "vmcr2"\n')
    run.write_meta({"status": "running"})
    return run


def test_create_adds_a_suffix_when_the_name_is_taken(tmp_path):
    assert RunDir.create(tmp_path, "a").name == "a"
    assert RunDir.create(tmp_path, "a").name == "a-2"


def test_open_rejects_what_is_not_a_run(tmp_path):
    with pytest.raises(BadInput, match="no such folder"):
        RunDir.open(tmp_path / "missing")
    with pytest.raises(BadInput, match="not a run directory"):
        RunDir.open(tmp_path)


def test_latest_is_a_relative_symlink_replaced_atomically(tmp_path):
    first, second = make_run(tmp_path, "a"), make_run(tmp_path, "b")
    point_latest(first)
    point_latest(second)
    link = tmp_path / "latest"
    assert os.readlink(link) == "b"
    assert RunDir.open(link).path == second.path
    assert [run.name for run in runs_in(tmp_path)] == ["a", "b"]


def test_meta_rejects_an_unknown_status(tmp_path):
    run = make_run(tmp_path)
    with pytest.raises(ValueError):
        run.update_meta(status="sleeping")
    assert run.read_meta()["status"] == "running"


def test_metrics_lines_have_type_and_time_and_no_nan(tmp_path):
    run = make_run(tmp_path)
    run.append_metrics("epoch", epoch=0, delta_r=float("nan"), gpu_util=None)
    (record,) = run.read_metrics()
    assert record["type"] == "epoch" and isinstance(record["time"], float)
    assert record["delta_r"] is None and record["gpu_util"] is None


def test_tail_returns_only_new_lines_and_holds_a_partial_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"type": "epoch", "epoch": 0}\n{"type": "ep')
    tail = MetricsTail(path)
    assert [r["epoch"] for r in tail.read_new()] == [0]
    assert tail.read_new() == []
    with open(path, "a") as file:
        file.write('och", "epoch": 1}\n')
    assert [r["epoch"] for r in tail.read_new()] == [1]


def test_tail_skips_and_counts_corrupt_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"type": "epoch", "epoch": 0}\nnot json\n[1, 2]\n{"type": "step", "step": 5}\n')
    tail = MetricsTail(path)
    assert [r["type"] for r in tail.read_new()] == ["epoch", "step"]
    assert tail.corrupt_lines == 2


def test_read_metrics_of_a_missing_file_is_empty(tmp_path):
    assert read_metrics(tmp_path / "none.jsonl") == []


def test_checkpoint_round_trip_and_missing_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    run = make_run(tmp_path)
    with pytest.raises(BadInput, match="no checkpoint"):
        run.load_checkpoint()
    run.save_checkpoint({"epoch": 3, "w": torch.ones(2)})
    state = run.load_checkpoint()
    assert state["epoch"] == 3 and torch.equal(state["w"], torch.ones(2))
    assert not any(p.name.endswith(".tmp") for p in run.checkpoint_path.parent.iterdir())


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    run = make_run(tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    torch.save({"x": Evil()}, run.checkpoint_path)
    with pytest.raises(BadInput, match="unreadable checkpoint"):
        run.load_checkpoint()


def test_eval_json_round_trip(tmp_path):
    run = make_run(tmp_path)
    assert run.read_eval() is None
    run.write_eval({"accuracy": 0.5})
    assert json.loads(run.eval_path.read_text()) == {"accuracy": 0.5}


def test_writer_alive_tells_live_dead_and_unknown_writers():
    import socket
    import subprocess
    import sys

    from vmcr2_cli.runs import writer_alive

    here = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: its pid names no process now
    assert writer_alive({"status": "running", "pid": os.getpid(), "host": here}) is True
    assert writer_alive({"status": "running", "pid": dead.pid, "host": here}) is False
    assert writer_alive({"status": "running", "pid": os.getpid(), "host": here + "-elsewhere"}) is None
    assert writer_alive({"status": "finished", "pid": os.getpid(), "host": here}) is None
    assert writer_alive({"status": "running", "host": here}) is None


def test_set_status_writes_meta_and_one_status_line(tmp_path):
    run = RunDir.create(tmp_path, "r")
    run.write_meta({"status": "running", "start_time": 1.0})
    run.set_status("failed", meta={"error": "boom"}, step=7, error="boom")
    meta = run.read_meta()
    assert meta["status"] == "failed" and meta["error"] == "boom" and meta["end_time"] >= meta["start_time"]
    (line,) = [line for line in run.read_metrics() if line["type"] == "status"]
    assert line["status"] == "failed" and line["step"] == 7
    run.set_status("running")
    assert run.read_meta()["end_time"] is None
    with pytest.raises(ValueError):
        run.set_status("paused")


def test_a_resumed_runs_repeated_epochs_replace_what_followed():
    from vmcr2_cli.runs import add_epoch_line, epoch_number

    epochs: list = []
    for epoch, value in [(0, "a"), (1, "b"), (2, "c"), (1, "B"), (2, "C"), (3, "D")]:
        add_epoch_line(epochs, {"epoch": epoch, "v": value})
    assert [line["v"] for line in epochs] == ["a", "B", "C", "D"]
    assert [epoch_number(line) for line in epochs] == [1, 2, 3, 4]


def test_config_table_of_a_damaged_run_is_one_line_bad_input(tmp_path):
    run = RunDir.create(tmp_path, "r", config_text="epochs = 3\n", meta={"status": "running"})
    assert run.read_config_table() == {"epochs": 3}
    run.config_path.write_bytes(b"epochs = \xff\n")
    with pytest.raises(BadInput, match=r"config.toml: TOML syntax error") as raised:
        run.read_config_table()
    assert "\n" not in str(raised.value)
