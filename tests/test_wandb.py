"""Weights & Biases, offline: one W&B run per vmcr2 run across a resume, every epoch's ΔR at its step
(read back from the .wandb files by tests/wandb_records.py), and training that goes on without it."""

from __future__ import annotations

import sys

import pytest

from cli_runner import TINY_SYNTHETIC, vmcr2
from vmcr2_cli.runs import RunDir

pytest.importorskip("wandb")
from wandb_records import history, run_ids  # noqa: E402 — needs wandb's protobuf classes

OFFLINE = [*TINY_SYNTHETIC, "--set", "wandb=offline", "--set", "eval_every=1"]


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    # Offline mode must not need these; they keep a stray login or proxy setting from mattering.
    monkeypatch.setenv("WANDB_API_KEY", "")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there


def test_a_resumed_offline_run_is_one_wandb_run_holding_every_epochs_delta_r_at_its_step(tmp_path, capsys):
    runs = tmp_path / "runs"
    code, _, err = vmcr2("train", *OFFLINE, "--epochs", "2", "--runs-dir", runs, capsys=capsys)
    assert code == 0, err
    run = RunDir.open(runs / "latest")
    first_id = run.read_meta()["wandb_run_id"]
    code, _, err = vmcr2("train", "--resume", run.path, "--set", "epochs=3", capsys=capsys)
    assert code == 0, err
    assert run.read_meta()["wandb_run_id"] == first_id
    assert len(list(run.path.glob("wandb/offline-run-*"))) == 2  # one a process, for `wandb sync`
    assert run_ids(run.path) == {first_id}
    rows = history(run.path)
    epochs = [line for line in run.read_metrics() if line["type"] == "epoch"]
    assert [line["epoch"] for line in epochs] == [0, 1, 2]
    for line in epochs:
        assert rows[line["step"]]["epoch/delta_r"] == pytest.approx(line["delta_r"], rel=1e-12)
    evals = [line for line in run.read_metrics() if line["type"] == "eval"]
    assert rows[evals[-1]["step"]]["eval/knn_accuracy"] == evals[-1]["knn_accuracy"]


def test_without_the_package_one_line_says_how_and_training_goes_on(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    code, _, err = vmcr2("train", *OFFLINE, "--epochs", "1", "--runs-dir", tmp_path / "runs", capsys=capsys)
    assert code == 0, err
    assert err.count("pip install 'vmcr2[wandb]'") == 1
    assert RunDir.open(tmp_path / "runs" / "latest").read_meta()["status"] == "finished"


def test_a_failing_logger_is_one_warning_and_training_goes_on(tmp_path, capsys, monkeypatch):
    from vmcr2_cli.runner.wandb_mirror import WandbMirror

    def full_disk(self, scalars, step):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(WandbMirror, "log", full_disk)
    code, _, err = vmcr2("train", *OFFLINE, "--epochs", "2", "--runs-dir", tmp_path / "runs", capsys=capsys)
    assert code == 0, err
    assert err.count("warning: Weights & Biases stopped logging") == 1 and "No space left" in err
    run = RunDir.open(tmp_path / "runs" / "latest")
    assert run.read_meta()["status"] == "finished"
    assert len([line for line in run.read_metrics() if line["type"] == "epoch"]) == 2  # metrics.jsonl whole


@pytest.mark.parametrize("setting, message", [
    ("wandb=maybe", "wandb"),
    ("wandb_project=x", "has no effect with wandb = 'off'"),
])
def test_bad_wandb_settings_are_one_line_and_exit_code_2(tmp_path, capsys, setting, message):
    code, _, err = vmcr2("train", *TINY_SYNTHETIC, "--set", setting, "--runs-dir", tmp_path / "runs", capsys=capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()


def test_under_ddp_only_rank_0_logs(tmp_path):
    import subprocess

    process = subprocess.run([sys.executable, "-m", "vmcr2_cli", "train", "--nproc", "2", *OFFLINE, "--epochs", "1",
                              "--set", "precision=fp32", "--runs-dir", str(tmp_path / "runs")],
                             capture_output=True, timeout=240)
    assert process.returncode == 0, process.stderr.decode()
    run = RunDir.open(tmp_path / "runs" / "latest")
    assert len(list(run.path.glob("wandb/offline-run-*"))) == 1
    assert run_ids(run.path) == {run.read_meta()["wandb_run_id"]}


def test_a_wandb_that_cannot_start_is_one_line_and_training_goes_on(tmp_path, capsys, monkeypatch):
    import wandb

    def not_logged_in(**settings):
        raise wandb.errors.UsageError("api_key not configured (no-tty). call wandb.login(key=[your_api_key])")

    monkeypatch.setattr(wandb, "init", not_logged_in)
    code, _, err = vmcr2("train", *TINY_SYNTHETIC, "--set", "wandb=online", "--epochs", "1",
                         "--runs-dir", tmp_path / "runs", capsys=capsys)
    assert code == 0, err
    assert err.count("Weights & Biases did not start (api_key not configured") == 1
    assert RunDir.open(tmp_path / "runs" / "latest").read_meta()["status"] == "finished"
