"""Signals at the awkward moments, NaN features mid-run, and a second writer: each produced for
real in a `vmcr2 train` process (tests/faulty_vmcr2.py), each leaving a run that resumes to
the parameters an uninterrupted run ends with, or a clear refusal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cli_runner import TINY_SYNTHETIC, vmcr2
from fixtures_data import isolate_data
from training_processes import process_holding_the_lock, spawn_vmcr2, wait_for_step
from vmcr2_cli.evaluation.comparison import read_run
from vmcr2_cli.runs import RunDir

WRAPPER = Path(__file__).with_name("faulty_vmcr2.py")
# Synthetic, 10 classes, 4 steps an epoch, three epochs, a latch at every epoch's end.
# checkpoint_minutes: a checkpoint at every epoch's end (epochs of ~0.3 s, far above 6 ms); the automatic
# cadence would skip some, as a write costs more than 2% of such an epoch, and the faults are placed by checkpoint.
QUICK = [*TINY_SYNTHETIC, "--set", "log_every=1", "--epochs", "3", "--set", "latch_every=1",
         "--set", "checkpoint_minutes=0.0001"]


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    isolate_data(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The run every interrupted one must end up equal to, and its final accuracy."""
    root = tmp_path_factory.mktemp("whole")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate_data(monkeypatch, root)
        code, out, err = vmcr2("train", *QUICK, "--runs-dir", str(root / "runs"), "--json")
    assert code == 0, err
    return (root / "runs" / "latest").resolve(), json.loads(out)


def faulty_train(tmp_path: Path, fault: str, *extra: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(WRAPPER), fault, "--", "train", *QUICK, "--runs-dir",
                           str(tmp_path / "runs"), *extra], capture_output=True, text=True, timeout=timeout)


def parameters(run_dir: Path) -> dict[str, torch.Tensor]:
    state = RunDir.open(run_dir).load_checkpoint()
    return {**state["model"], **{f"objective.{k}": v for k, v in state["objective"].items()}}


def assert_resumes_to_the_uninterrupted_run(run: RunDir, uninterrupted, capsys) -> str:
    """Resume ``run`` to its end and compare it with the uninterrupted run; the resume's stderr."""
    code, out, err = vmcr2("train", "--resume", run.path, "--json", capsys=capsys)
    assert code == 0, err
    whole_dir, whole_result = uninterrupted
    resumed, whole = parameters(run.path), parameters(whole_dir)
    assert resumed.keys() == whole.keys()
    for key in whole:
        torch.testing.assert_close(resumed[key], whole[key], rtol=1e-5, atol=1e-6, msg=key)
    # Every epoch once, as the readers see them (an epoch re-done after a resume replaces its first line).
    assert [line["epoch"] for line in read_run(run).epochs] == [0, 1, 2]
    assert run.read_meta()["status"] == "finished"
    result = json.loads(out)
    assert result["nearest_subspace_accuracy"] == pytest.approx(whole_result["nearest_subspace_accuracy"], abs=1e-6)
    return err


def no_temporary_files(run: RunDir) -> bool:
    return not [p for p in run.path.rglob("*") if p.name.endswith(".tmp")]


def test_sigterm_during_the_first_latch_stops_before_the_first_step(tmp_path, capsys, uninterrupted):
    done = faulty_train(tmp_path, "signal-in-latch:SIGTERM")
    assert done.returncode == 130, done.stderr
    run = RunDir.open(tmp_path / "runs" / "latest")
    assert run.read_meta()["status"] == "interrupted"
    state = run.load_checkpoint()
    assert state["latched"] and state["global_step"] == 0
    assert_resumes_to_the_uninterrupted_run(run, uninterrupted, capsys)


def test_sigterm_during_the_final_evaluation_leaves_a_run_that_resume_evaluates(tmp_path, capsys, uninterrupted):
    done = faulty_train(tmp_path, "signal-in-eval:SIGTERM")
    assert done.returncode == 130, done.stderr
    assert "during the final evaluation (training is complete)" in done.stderr and "Traceback" not in done.stderr
    run = RunDir.open(tmp_path / "runs" / "latest")
    assert run.read_meta()["status"] == "interrupted"
    assert not [line for line in run.read_metrics() if line["type"] == "eval"]
    assert run.load_checkpoint()["epoch"] == 3
    assert_resumes_to_the_uninterrupted_run(run, uninterrupted, capsys)


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_a_signal_during_a_checkpoint_write_lets_the_write_finish(tmp_path, capsys, uninterrupted, signal_name):
    done = faulty_train(tmp_path, f"signal-in-checkpoint:{signal_name}:2")  # the end of epoch 1
    assert done.returncode == 130, done.stderr
    run = RunDir.open(tmp_path / "runs" / "latest")
    assert run.read_meta()["status"] == "interrupted" and no_temporary_files(run)
    assert run.load_checkpoint()["epoch"] == 1  # the checkpoint that was being written, whole
    assert_resumes_to_the_uninterrupted_run(run, uninterrupted, capsys)


def test_a_second_ctrl_c_during_the_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, capsys, uninterrupted):
    done = faulty_train(tmp_path, "double-sigint-in-checkpoint:3")  # the end of epoch 2
    assert done.returncode == 130, done.stderr
    assert "interrupted again" in done.stderr and "Traceback" not in done.stderr
    run = RunDir.open(tmp_path / "runs" / "latest")
    assert run.read_meta()["status"] == "interrupted" and no_temporary_files(run)
    assert run.load_checkpoint()["epoch"] == 1  # the write was abandoned: the one before it is intact
    assert_resumes_to_the_uninterrupted_run(run, uninterrupted, capsys)


def test_nan_features_mid_run_fail_the_run_at_that_step_with_the_last_good_checkpoint(tmp_path, capsys,
                                                                                       uninterrupted):
    done = faulty_train(tmp_path, "nan-features-at-step:6")  # in epoch 1 (4 steps an epoch)
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: non-finite loss at step 6;") and "(epoch 1, step 4)" in last, done.stderr
    run = RunDir.open(tmp_path / "runs" / "latest")
    meta = run.read_meta()
    assert meta["status"] == "failed" and meta["failed_step"] == 6
    state = run.load_checkpoint()
    assert state["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert_resumes_to_the_uninterrupted_run(run, uninterrupted, capsys)  # the fault was transient


def test_a_resume_of_a_run_that_is_still_training_is_refused_naming_its_process(tmp_path, capsys):
    process = spawn_vmcr2("train", *QUICK, "--runs-dir", tmp_path / "runs", "--set", "synthetic_train_per_class=400",
                          "--epochs", "50")
    try:
        wait_for_step(tmp_path / "runs" / "latest" / "metrics.jsonl", 2, process)
        run = RunDir.open(tmp_path / "runs" / "latest")
        meta_before = run.meta_path.read_bytes()
        code, _, err = vmcr2("train", "--resume", run.path, capsys=capsys)
        assert code == 2 and err.count("\n") == 1
        assert f"the run is in use by pid {process.pid} on" in err and "vmcr2 train" in err
        assert run.meta_path.read_bytes() == meta_before
        code, _, err = vmcr2("latch", run.path, "--write", capsys=capsys)
        assert code == 2 and f"in use by pid {process.pid}" in err
    finally:
        process.kill()
        process.communicate()


def test_the_lock_of_a_killed_process_does_not_block_a_resume(tmp_path, capsys):
    assert vmcr2("train", *QUICK, "--epochs", "1", "--runs-dir", tmp_path / "runs", capsys=capsys)[0] == 0
    run = RunDir.open(tmp_path / "runs" / "latest")
    with process_holding_the_lock(run.path) as holder:
        assert f"pid {holder.pid}" in vmcr2("train", "--resume", run.path, capsys=capsys)[2]
    # The holder was SIGKILLed: its lock went with it, though the lock file still names it.
    assert f"pid {holder.pid}" in run.lock_path.read_text()
    assert vmcr2("train", "--resume", run.path, "--epochs", "2", capsys=capsys)[0] == 0
    assert run.load_checkpoint()["epoch"] == 2


def test_a_run_killed_before_its_first_checkpoint_resumes_from_step_0(tmp_path, capsys, uninterrupted):
    done = faulty_train(tmp_path, "signal-in-latch:SIGKILL")  # dead inside the first latch
    assert done.returncode == -9
    run = RunDir.open(tmp_path / "runs" / "latest")  # whole: config.toml and meta.json were there first
    assert not run.checkpoint_path.exists() and run.read_meta()["status"] == "running"
    err = assert_resumes_to_the_uninterrupted_run(run, uninterrupted, capsys)
    assert "stopped before its first checkpoint: it starts again at step 0" in " ".join(err.split())
