"""A damaged run directory: metrics.jsonl cut, corrupt or huge, meta.json missing or garbage,
`latest` dangling, a run deleted while watched. Readers go on; what cannot go on says why in
one line."""

from __future__ import annotations

import json
import os
import shutil
import time
import tracemalloc
from pathlib import Path

import pytest

from cli_runner import vmcr2
from eval_fixtures import copy_run, train_tiny
from fixtures_data import isolate_data
from vmcr2_cli.runs import MetricsTail, RunDir
from vmcr2_cli.tui.store import RunStore
from vmcr2_cli.tui.watcher import Watcher, resolve_targets
from watch_fixtures import FakeRun, async_test


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("damaged-runs"), "--epochs", "2")


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    isolate_data(monkeypatch, tmp_path)


@pytest.fixture
def run_dir(trained, tmp_path) -> Path:
    return copy_run(trained, tmp_path / "runs" / trained.name)


def truncated_last_line(metrics: Path) -> int:
    """The writer killed inside the second epoch's line (the status line after it never written)."""
    lines = metrics.read_bytes().splitlines(keepends=True)
    last_epoch = max(i for i, line in enumerate(lines) if line.startswith(b'{"type": "epoch"'))
    metrics.write_bytes(b"".join(lines[:last_epoch]) + lines[last_epoch][:len(lines[last_epoch]) // 2])
    return 0  # as far as a reader knows the cut line is still being written: not corrupt


def corrupt_middle_line(metrics: Path) -> int:
    lines = metrics.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2][:15] + b"#!garbage" + lines[2][15:]
    metrics.write_bytes(b"".join(lines))
    return 1


def binary_garbage(metrics: Path) -> int:
    lines = metrics.read_bytes().splitlines(keepends=True)
    garbage = bytes(range(256)).replace(b"\n", b"") + b"\n" + b"\xff\xfe\x00\x01" * 50 + b"\n"
    metrics.write_bytes(b"".join(lines[:3]) + garbage + b"".join(lines[3:]))
    return 2


def zero_filled_block(metrics: Path) -> int:
    """What a crash can leave on some file systems: the file's tail as NUL bytes."""
    lines = metrics.read_bytes().splitlines(keepends=True)
    metrics.write_bytes(b"".join(lines[:4]) + b"\x00" * 4096 + b"\n" + b"".join(lines[4:]))
    return 1


DAMAGES = [truncated_last_line, corrupt_middle_line, binary_garbage, zero_filled_block]


def epochs_seen_by_watch(run_dir: Path, capsys) -> dict:
    code, out, err = vmcr2("watch", "--json", run_dir, capsys=capsys)
    assert code == 0, err
    return json.loads(out)["runs"][0]


@pytest.mark.parametrize("damage", DAMAGES, ids=[d.__name__ for d in DAMAGES])
def test_watch_compare_eval_and_resume_read_past_a_damaged_metrics_file(run_dir, capsys, damage):
    corrupt = damage(run_dir / "metrics.jsonl")
    summary = epochs_seen_by_watch(run_dir, capsys)
    assert summary["corrupt_lines"] == corrupt
    assert summary["epoch"] == (1 if damage is truncated_last_line else 2)  # the cut line was epoch 2's
    code, out, err = vmcr2("compare", run_dir, "--json", "--out", run_dir.parent / "figures", capsys=capsys)
    assert code == 0, err
    assert vmcr2("eval", run_dir, "--json", capsys=capsys)[0] == 0
    # eval's line starts on a line of its own: a cut line before it stays one corrupt line.
    corrupt += damage is truncated_last_line
    assert vmcr2("train", "--resume", run_dir, "--epochs", "3", capsys=capsys)[0] == 0
    tail = MetricsTail(run_dir / "metrics.jsonl")
    lines = tail.read_new()
    assert tail.corrupt_lines == corrupt and lines[-1]["type"] == "status" and lines[-1]["status"] == "finished"
    assert [line["type"] for line in lines].count("eval") == 1


def test_a_resume_drops_a_half_written_last_line_instead_of_fusing_it_with_the_next(run_dir, capsys):
    metrics = run_dir / "metrics.jsonl"
    whole = metrics.read_bytes()
    metrics.write_bytes(whole + b'{"type": "step", "time": 1.0, "ep')  # killed inside a write
    assert vmcr2("train", "--resume", run_dir, "--epochs", "3", capsys=capsys)[0] == 0
    assert metrics.read_bytes().startswith(whole)
    tail = MetricsTail(metrics)
    tail.read_new()
    assert tail.corrupt_lines == 0


def _remove_meta(run: Path) -> None:
    (run / "meta.json").unlink()


def _garbage_meta(run: Path) -> None:
    (run / "meta.json").write_bytes(b"\x00\x01{not json")


def _meta_not_an_object(run: Path) -> None:
    (run / "meta.json").write_text("[1, 2, 3]\n")


META_DAMAGES = {_remove_meta: "no meta.json and config.toml", _garbage_meta: "unreadable meta.json",
                _meta_not_an_object: "meta.json is not a JSON object"}
READERS = {"eval": ("eval",), "latch": ("latch",), "resume": ("train", "--resume"), "compare": ("compare",)}


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("damage", META_DAMAGES, ids=["missing", "garbage", "not-an-object"])
def test_a_missing_or_unreadable_meta_json_is_one_line(run_dir, capsys, damage, reader):
    damage(run_dir)
    before = sorted(p.name for p in run_dir.iterdir())
    code, _, err = vmcr2(*READERS[reader], run_dir, capsys=capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert META_DAMAGES[damage] in err
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_watch_shows_a_run_whose_meta_json_is_garbage(run_dir, capsys):
    _garbage_meta(run_dir)
    summary = epochs_seen_by_watch(run_dir, capsys)
    assert summary["epoch"] == 2 and summary["status"] == "finished"  # from the status line instead


@pytest.mark.parametrize("reader", [*READERS, "watch"])
def test_a_dangling_latest_link_names_where_it_points(tmp_path, capsys, reader):
    runs = tmp_path / "runs"
    runs.mkdir()
    os.symlink("20261202-gone", runs / "latest")
    code, _, err = vmcr2(*READERS.get(reader, ("watch", "--once")), runs / "latest", capsys=capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"{runs / 'latest'} points to 20261202-gone, which does not exist" in err


def test_a_run_deleted_while_watched_stays_on_the_dashboard_and_polling_goes_on(tmp_path):
    first = FakeRun(tmp_path, "a-first")
    second = FakeRun(tmp_path, "b-second")
    first.epochs_upto(2)
    second.epochs_upto(2)
    store = RunStore()
    watcher = Watcher(resolve_targets([tmp_path]))
    store.apply(watcher.poll())
    shutil.rmtree(first.path)
    second.epoch(2)
    store.apply(watcher.poll())
    summaries = {s.name: s for s in store.summaries(time.time())}
    assert summaries["a-first"].epoch == 2 and summaries["b-second"].epoch == 3


@async_test
async def test_the_dashboard_survives_a_run_deleted_under_it(tmp_path):
    from test_watch_app import SIZE, make_app, table
    from watch_fixtures import wait_until

    run = FakeRun(tmp_path, "doomed")
    run.epochs_upto(2)
    app = make_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: "doomed" in table(app))
        shutil.rmtree(run.path)
        await pilot.pause(0.5)  # five polls of a folder whose run is gone
        assert table(app)["doomed"].epoch == 2 and app.is_running


def write_long_run(folder: Path, epochs: int, steps_per_epoch: int) -> FakeRun:
    """A run of ``epochs`` × ``steps_per_epoch`` step lines, as a long GPU run leaves them."""
    run = FakeRun(folder, "long", epochs=epochs, steps_per_epoch=steps_per_epoch)
    with open(run.metrics, "w", encoding="utf-8") as file:
        for index in range(epochs):
            step = run.values(index)
            step.pop("epoch_time_s")
            for s in range(1, steps_per_epoch + 1):
                step["step"] = index * steps_per_epoch + s
                file.write(json.dumps({"type": "step", "time": run.start_time + step["step"], **step}) + "\n")
            file.write(json.dumps({"type": "epoch", "time": run.epoch_end_time(index), **run.values(index)}) + "\n")
    return run


def read_like_watch(folder: Path, *, measure_memory: bool = False) -> tuple[RunStore, float, int | None]:
    """One poll of the watcher into a store: the store, its seconds, its peak Python memory
    (tracemalloc, which slows the reading: time and memory are measured in separate reads)."""
    if measure_memory:
        tracemalloc.start()
    start = time.perf_counter()
    store = RunStore()
    store.apply(Watcher(resolve_targets([folder])).poll())
    seconds = time.perf_counter() - start
    peak = None
    if measure_memory:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return store, seconds, peak


def test_watch_reads_every_epoch_and_a_bounded_sample_of_100000_step_lines(tmp_path):
    run = write_long_run(tmp_path, epochs=100, steps_per_epoch=1000)
    store, _, peak = read_like_watch(run.path, measure_memory=True)
    history = store.runs[next(iter(store.runs))]
    assert [line["epoch"] for line in history.epochs] == list(range(100))
    assert history.last_progress["step"] == 100_000
    assert len(history.gpu) < 10_000  # a sample of the step lines' GPU readings, each epoch's among them
    assert peak < 100 << 20


@pytest.mark.slow
def test_a_run_of_a_million_lines_opens_in_under_two_seconds_in_bounded_memory(tmp_path):
    run = write_long_run(tmp_path, epochs=1000, steps_per_epoch=999)
    assert run.metrics.stat().st_size > 200 << 20  # ~220 bytes a line
    store, seconds, _ = read_like_watch(run.path)
    history = store.runs[next(iter(store.runs))]
    assert len(history.epochs) == 1000 and history.last_progress["step"] == 999_000
    assert seconds < 2.0, seconds
    assert read_like_watch(run.path, measure_memory=True)[2] < 200 << 20
    start = time.perf_counter()
    assert len(RunDir(run.path).read_metrics(skip_types=("step",))) == 1000  # what compare reads
    assert time.perf_counter() - start < 2.0


def test_a_run_whose_trainer_cannot_be_built_leaves_no_run_directory(tmp_path, capsys, monkeypatch):
    from vmcr2_cli.errors import BadInput
    from vmcr2_cli.training import trainer

    def refuse(self, *args, **kwargs):
        raise BadInput("no featurizer for this input")

    monkeypatch.setattr(trainer.Trainer, "__init__", refuse)
    code, _, err = vmcr2("train", "--profile", "synthetic", "--set", "synthetic_train_per_class=40",
                         "--batch-size", "100", "--runs-dir", tmp_path / "runs", capsys=capsys)
    assert code == 2 and err == "error: no featurizer for this input\n"
    assert list((tmp_path / "runs").iterdir()) == []  # neither the run nor a `latest` pointing at it
