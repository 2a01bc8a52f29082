"""End-to-end: the real `vmcr2 train` on small data, and the run directory it leaves."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fixtures_data import isolate_data, write_cifar10, write_cifar100, write_idx_dataset, write_tinyimagenet

from cli_runner import TINY_SYNTHETIC, vmcr2
from training_processes import spawn_vmcr2, wait_for_step
from vmcr2_cli.config import load_config_file
from vmcr2_cli.metric_keys import EPOCH_KEYS, VARIATIONAL_KEYS
from vmcr2_cli.runs import RunDir

# A few seconds on a laptop CPU: 10 synthetic classes, 4 steps an epoch.
QUICK = [*TINY_SYNTHETIC, "--set", "log_every=1"]


def train_quick(tmp_path: Path, *extra: str, capsys=None) -> tuple[int, str, str]:
    return vmcr2("train", *QUICK, "--runs-dir", str(tmp_path / "runs"), *extra, capsys=capsys)


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """Never download, never read the user's cache or the machine's datasets."""
    isolate_data(monkeypatch, tmp_path)


# Each real on-disk format, small: (dataset, fixture writer, extra settings).
REAL_FORMATS = [
    ("mnist", lambda root: write_idx_dataset(root, name="mnist", n_train=200, n_test=40), []),
    ("fashion-mnist", lambda root: write_idx_dataset(root, name="fashion-mnist", n_train=200, n_test=40), []),
    ("cifar10", lambda root: write_cifar10(root, n_train=200, n_test=40), []),
    ("cifar100", lambda root: write_cifar100(root, n_train=400, n_test=100), ["--set", "atoms_per_class=1"]),
    ("tinyimagenet", lambda root: write_tinyimagenet(root, n_classes=5, per_class=40, val_per_class=4),
     ["--set", "augment=flip"]),
]


@pytest.mark.parametrize("objective", ["mcr2", "vmcr2", "ce"])
@pytest.mark.parametrize("dataset, write, extra", REAL_FORMATS, ids=[f[0] for f in REAL_FORMATS])
def test_every_objective_trains_on_every_real_file_format(tmp_path, capsys, dataset, write, extra, objective):
    write(tmp_path / "data")
    code, out, err = vmcr2("train", "--profile", dataset, "--objective", objective, "--data-root",
                           str(tmp_path / "data"), "--runs-dir", str(tmp_path / "runs"), "--epochs", "1",
                           "--batch-size", "200", "--set", "model=mnist-cnn", "--set", "width=0.25",
                           "--set", "feature_dim=16", "--set", "atoms_per_class=2", *extra, "--json",
                           capsys=capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "finished" and 0.0 <= result["nearest_subspace_accuracy"] <= 1.0
    epoch = next(line for line in RunDir.open(result["run_dir"]).read_metrics() if line["type"] == "epoch")
    assert all(epoch[key] is not None for key in ("delta_r", "r", "r_c", "loss"))


@pytest.mark.parametrize("objective", ["mcr2", "vmcr2", "ce"])
def test_each_objective_trains_and_leaves_a_run_directory_of_the_contract(tmp_path, capsys, objective):
    code, out, _ = train_quick(tmp_path, "--objective", objective, "--epochs", "2", "--json", capsys=capsys)
    assert code == 0
    result = json.loads(out)
    run = RunDir.open(tmp_path / "runs" / "latest")
    assert str(run.path) == result["run_dir"]
    assert os.readlink(tmp_path / "runs" / "latest") == run.name  # relative link
    assert load_config_file(run.config_path).objective == objective
    meta = run.read_meta()
    assert meta["status"] == "finished" and meta["end_time"] >= meta["start_time"]
    assert meta["seed"] == 0 and meta["versions"]["torch"] == torch.__version__
    assert meta["command"].startswith("vmcr2 train --profile synthetic ") and f"--objective {objective}" in meta["command"]
    lines = run.read_metrics()
    epochs = [line for line in lines if line["type"] == "epoch"]
    assert [line["epoch"] for line in epochs] == [0, 1]
    expected = set(EPOCH_KEYS) | (set(VARIATIONAL_KEYS) if objective == "vmcr2" else set())
    assert all(expected <= set(line) for line in epochs)
    assert all(line["gpu_util"] is None for line in epochs)  # CPU run
    assert any(line["type"] == "step" for line in lines)
    assert (objective == "vmcr2") == any(line["type"] == "latch" for line in lines)
    assert lines[-1] == {**lines[-1], "type": "status", "status": "finished"}
    assert 0.0 <= result["nearest_subspace_accuracy"] <= 1.0
    state = run.load_checkpoint()
    assert state["epoch"] == 2 and state["global_step"] == 8


def test_vmcr2_checkpoint_holds_gamma_and_A(tmp_path, capsys):
    assert train_quick(tmp_path, "--epochs", "1", capsys=capsys)[0] == 0
    objective = RunDir.open(tmp_path / "runs" / "latest").load_checkpoint()["objective"]
    gamma, A = objective["variational.gamma"], objective["variational.A"]
    assert gamma.shape == (32, 40) and A.shape == (40, 10)
    assert torch.allclose(gamma.norm(dim=0), torch.ones(40), atol=1e-5) and (A >= 0).all()


@pytest.mark.parametrize("objective", ["mcr2", "vmcr2"])
def test_logged_delta_r_is_the_exact_delta_r_of_the_batch(tmp_path, capsys, objective):
    """Rebuild step 0 from the seed: its batch, its dropout, the initial weights."""
    from vmcr2_cli.objectives import rate_reduction
    from vmcr2_cli.training.setup import load_training_data
    from vmcr2_cli.data.seeding import step_seed
    from vmcr2_cli.training.trainer import Trainer

    assert train_quick(tmp_path, "--objective", objective, "--epochs", "1", capsys=capsys)[0] == 0
    run = RunDir.open(tmp_path / "runs" / "latest")
    logged = next(line for line in run.read_metrics() if line["type"] == "step" and line["step"] == 1)
    config = load_config_file(run.config_path)
    trainer = Trainer(config, load_training_data(config), run, torch.device("cpu"))
    _, batch = next(iter(trainer.loader.epoch(0)))
    torch.manual_seed(step_seed(config.seed, 0))
    with trainer.autocast:  # as the step ran it: bf16 on a CPU that computes it natively
        Z = trainer.model(batch.images).float()
    exact = rate_reduction(Z.detach().double(), batch.labels, num_classes=10, eps2=config.eps2)
    assert logged["delta_r"] == pytest.approx(exact.delta_r.item(), rel=1e-4, abs=1e-5)
    assert logged["r"] == pytest.approx(exact.r.item(), rel=1e-4)


def _spawn_train(tmp_path: Path, *extra: str) -> subprocess.Popen:
    return spawn_vmcr2("train", *QUICK, "--runs-dir", tmp_path / "runs", *extra)


def _model_state(run_dir: Path) -> dict[str, torch.Tensor]:
    state = RunDir.open(run_dir).load_checkpoint()
    return {**state["model"], **{f"objective.{k}": v for k, v in state["objective"].items()}}


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGTERM])
def test_resume_after_an_interrupt_gives_the_parameters_of_an_uninterrupted_run(tmp_path, capsys, how):
    epochs = ["--epochs", "3", "--set", "latch_every=1"]
    assert vmcr2("train", *QUICK, "--runs-dir", str(tmp_path / "whole"), *epochs, capsys=capsys)[0] == 0
    whole = _model_state(tmp_path / "whole" / "latest")

    process = _spawn_train(tmp_path, *epochs)
    wait_for_step(tmp_path / "runs" / "latest" / "metrics.jsonl", 5, process)
    process.send_signal(how)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err.decode()
    run = RunDir.open(tmp_path / "runs" / "latest")
    assert run.read_meta()["status"] == "interrupted"
    assert b"--resume" in err and b"Traceback" not in err
    stopped_at = run.load_checkpoint()["global_step"]
    assert 5 <= stopped_at < 12

    assert vmcr2("train", "--resume", str(run.path), capsys=capsys)[0] == 0
    assert run.read_meta()["status"] == "finished"
    resumed = _model_state(run.path)
    assert resumed.keys() == whole.keys()
    for key in whole:
        torch.testing.assert_close(resumed[key], whole[key], rtol=1e-5, atol=1e-6, msg=key)
    epochs_logged = [line["epoch"] for line in run.read_metrics() if line["type"] == "epoch"]
    assert epochs_logged == [0, 1, 2]


def test_a_run_killed_at_any_moment_is_readable_and_resumable(tmp_path, capsys):
    process = _spawn_train(tmp_path, "--epochs", "3")
    wait_for_step(tmp_path / "runs" / "latest" / "metrics.jsonl", 6, process)
    process.kill()  # SIGKILL: no handler runs
    process.communicate(timeout=60)
    run = RunDir.open(tmp_path / "runs" / "latest")
    assert run.read_meta()["status"] == "running"  # what the dead process left
    assert run.read_metrics() and run.load_checkpoint()["epoch"] >= 0
    assert vmcr2("train", "--resume", str(run.path), capsys=capsys)[0] == 0
    assert run.read_meta()["status"] == "finished"


def test_a_non_finite_loss_fails_the_run_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    code, _, err = train_quick(tmp_path, "--set", "lr=1e30", capsys=capsys)
    assert code == 1
    assert err.splitlines()[-1].startswith("error: non-finite loss at step") and "Traceback" not in err
    run = RunDir.open(tmp_path / "runs" / "latest")
    meta = run.read_meta()
    assert meta["status"] == "failed" and isinstance(meta["failed_step"], int)
    state = run.load_checkpoint()  # the checkpoint written after the initial latch
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_resume_refuses_to_change_what_defines_the_run(tmp_path, capsys):
    assert train_quick(tmp_path, "--epochs", "1", capsys=capsys)[0] == 0
    run_dir = str(tmp_path / "runs" / "latest")
    code, _, err = vmcr2("train", "--resume", run_dir, "--set", "lr=0.5", capsys=capsys)
    assert code == 2 and "cannot change lr" in err
    code, _, _ = vmcr2("train", "--resume", run_dir, "--epochs", "2", capsys=capsys)
    assert code == 0
    assert RunDir.open(run_dir).load_checkpoint()["epoch"] == 2


@pytest.mark.parametrize("args, message", [
    (["--profile", "cifar1O"], "unknown profile 'cifar1O' (did you mean 'cifar10'?)"),
    (["--set", "batchsize=3"], "unknown key 'batchsize' (did you mean 'batch_size'?)"),
    (["--set", "epochs=two"], "'epochs' must be an integer"),
    (["--set", "label_noise=2"], "'label_noise' must be <= 1.0"),
    (["--objective", "mcr3"], "'objective' must be one of mcr2, vmcr2, ce"),
    (["--set", "epochs"], "expected key=value"),
    (["--no-such-flag"], "No such option"),
    (["--resume", "/nonexistent/run"], "not a run directory"),
    (["--set", "atoms_per_class=100"], "atoms_per_class = 100 exceeds feature_dim = 64"),
])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, args, message):
    code, out, err = vmcr2("train", "--runs-dir", str(tmp_path / "runs"), *args, capsys=capsys)
    assert code == 2
    assert message in err and err.startswith("error: ")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # no run directory for a run that never started


def test_a_toml_syntax_error_names_the_file(tmp_path, capsys):
    profile = tmp_path / "mine.toml"
    profile.write_text("epochs = = 1\n")
    code, _, err = vmcr2("train", "--profile", str(profile), capsys=capsys)
    assert code == 2 and "mine.toml: TOML syntax error" in err


def test_a_missing_dataset_says_which_files_go_where(tmp_path, capsys):
    code, _, err = vmcr2("train", "--profile", "fashion-mnist", "--data-root", str(tmp_path / "empty"),
                         "--runs-dir", str(tmp_path / "runs"), capsys=capsys)
    assert code == 2 and err.count("\n") == 1
    assert "train-images-idx3-ubyte" in err and str(tmp_path / "empty") in err


def test_profiles_lists_every_profile_with_its_description(capsys):
    code, out, _ = vmcr2("profiles", "--json", capsys=capsys)
    profiles = json.loads(out)
    assert code == 0 and {"default", "tinyimagenet", "cifar100-recipe"} <= set(profiles)
    assert all(profiles.values())


def test_version_and_help(capsys):
    assert vmcr2("--version", capsys=capsys)[1].startswith("vmcr2 ")
    code, out, _ = vmcr2("--help", capsys=capsys)
    assert code == 0 and "train" in out


def test_at_80_columns_the_printed_lines_keep_brackets_and_break_between_fields(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # the tensorboard extra is missing
    code, _, err = train_quick(tmp_path, "--epochs", "2", capsys=capsys)
    assert code == 0, err
    assert "TensorBoard logs: pip install 'vmcr2[tensorboard]'" in err  # not swallowed as markup
    lines = err.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    first = next(index for index, line in enumerate(lines) if line.startswith("epoch 1/2"))
    epoch = " ".join(lines[first:first + 2])  # a V-MCR² epoch line takes two lines at 80 columns
    for label in ("ΔR", "R", "R_c", "R^v", "R_c^v", "M", "ETA"):
        assert re.search(rf"(^|  ){re.escape(label)} +[-\d]", epoch), label  # each label beside its value
    assert lines[first + 1].startswith("  ") and not re.fullmatch(r"\s*[-\d.e+]+\s*", lines[first + 1])
