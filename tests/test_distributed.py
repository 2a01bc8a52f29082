"""Distributed training on CPU processes (gloo): the global batch is what the objective sees.

The scenarios run once on two processes (see distributed_workers.py); each test compares
what they saved with one process, or the processes with each other. The featurizer of the
equality tests is the synthetic profile's MNIST CNN: no BatchNorm (per-process on the CPU,
where PyTorch has no SyncBatchNorm) and its dropout switched off (streams differ per rank).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from distributed_workers import (OBJECTIVES, STEP_VARIANTS, NeverStop, epoch_latch_trainer, latch_features,
                                 one_step_config, run_on_processes, trained_state, without_dropout)

from cli_runner import TINY_SYNTHETIC, vmcr2
from training_processes import wait_for_step
from vmcr2_cli.distributed import FollowerRun
from vmcr2_cli.distributed.launcher import exit_code_of
from vmcr2_cli.objectives import ClassPartition, VariationalMCR2
from vmcr2_cli.runs import RunDir
from vmcr2_cli.training.latching import latch_over_dataset
from vmcr2_cli.training.setup import load_training_data
from vmcr2_cli.training.trainer import Trainer

CPU = torch.device("cpu")
QUICK = [*TINY_SYNTHETIC, "--set", "log_every=1", "--set", "precision=fp32"]


def reference_trainer(objective: str, out: Path) -> Trainer:
    """One process, dropout off, from the state the processes start from."""
    config = one_step_config(objective)
    trainer = without_dropout(Trainer(config, load_training_data(config), FollowerRun(RunDir(out)), CPU))
    initial = out / f"{objective}-initial.pt"
    if initial.exists():
        trainer.load_state_dict(torch.load(initial, weights_only=True))
    return trainer


@pytest.fixture(scope="module")
def processes(tmp_path_factory) -> Path:
    """Run every scenario on 2 processes; the folder of what they saved."""
    out = tmp_path_factory.mktemp("distributed")
    for objective in OBJECTIVES:
        trainer = reference_trainer(objective, out)
        if objective.startswith("vmcr2"):
            trainer.latch()  # Γ, A as a run has them before its first step
        torch.save(trainer.state_dict(), out / f"{objective}-initial.pt")
    run_on_processes(out, world_size=2)
    return out


def load(path: Path):
    return torch.load(path, weights_only=True)


def assert_same_change(before: dict, single: dict, distributed: dict) -> None:
    """Each tensor moved by the same step: ‖Δ_distributed − Δ_single‖ ≤ 1e-4·‖Δ_single‖."""
    assert single.keys() == distributed.keys()
    moved = 0
    for key in single:
        if not single[key].is_floating_point():
            continue
        expected, got = single[key] - before[key], distributed[key] - before[key]
        error = (got - expected).norm().item()
        assert error <= 1e-4 * expected.norm().item() + 1e-7, f"{key}: |Δ| {expected.norm():.3g}, error {error:.3g}"
        moved += expected.norm().item() > 0
    assert moved >= 2  # the step did change the featurizer (and Γ, A or the head)


@pytest.mark.parametrize("variant", STEP_VARIANTS)  # the processes' step whole, and in chunks (micro_batch)
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_one_step_on_two_processes_equals_one_process_on_the_whole_batch(processes, objective, variant):
    trainer = reference_trainer(objective, processes)
    before = trained_state(trainer)
    _, batch = next(iter(trainer.loader.epoch(0)))
    result = trainer.train_step(batch.images, ClassPartition(batch.labels_cpu, trainer.dataset.num_classes))
    single = trained_state(trainer)
    for rank in (0, 1):
        got = load(processes / f"{objective}{variant}-one-step-rank{rank}.pt")
        assert got["rows"] == batch.labels_cpu.numel() // 2  # each process had half the batch
        torch.testing.assert_close(got["loss"], result.loss.detach(), rtol=1e-5, atol=1e-6)
        assert got["metrics"].keys() == result.metrics.keys()
        for key, value in result.metrics.items():
            torch.testing.assert_close(got["metrics"][key], value, rtol=1e-5, atol=1e-5, msg=key)
        assert_same_change(before, single, got["state"])


def test_gamma_and_A_stay_identical_on_every_process_through_steps_and_latches(processes):
    rank0, rank1 = (load(processes / f"gamma-A-rank{rank}.pt") for rank in (0, 1))
    assert torch.equal(rank0["gamma"], rank1["gamma"]) and torch.equal(rank0["A"], rank1["A"])
    assert not torch.equal(rank0["gamma"], rank0["latched_gamma"])  # the step after the latch moved Γ


def test_latching_a_dataset_split_across_processes_equals_latching_it_whole(processes):
    features, labels = latch_features()
    whole = VariationalMCR2(16, 4, 8)
    latch_over_dataset(whole, features, labels, 4, batch_size=50)
    rank0, rank1 = (load(processes / f"latch-rank{rank}.pt") for rank in (0, 1))
    assert torch.equal(rank0["gamma"], rank1["gamma"]) and torch.equal(rank0["A"], rank1["A"])
    # Γ Diag(A_j) Γᵀ: each class's latched second moment, free of the eigenvectors' signs.
    def class_moments(gamma, A):
        return torch.einsum("dl,lj,el->jde", gamma, A, gamma)
    torch.testing.assert_close(class_moments(rank0["gamma"], rank0["A"]), class_moments(whole.gamma, whole.A),
                               rtol=1e-4, atol=1e-5)


def test_latching_from_the_epochs_batches_on_two_processes_equals_one_process_latching_by_a_pass(processes, tmp_path):
    """Each process adds its half of every batch; the latch sums the halves: the whole epoch's moments."""
    single = epoch_latch_trainer(tmp_path, latch_source="pass")
    single.fit(NeverStop())
    rank0, rank1 = (load(processes / f"epoch-latch-rank{rank}.pt") for rank in (0, 1))
    assert torch.equal(rank0["gamma"], rank1["gamma"]) and torch.equal(rank0["A"], rank1["A"])

    def class_moments(gamma, A):
        return torch.einsum("dl,lj,el->jde", gamma.double(), A.double(), gamma.double())
    variational = single.objective.variational
    torch.testing.assert_close(class_moments(rank0["gamma"], rank0["A"]), class_moments(variational.gamma, variational.A),
                               rtol=1e-4, atol=1e-5)


def test_a_stop_seen_by_one_process_stops_every_process_after_the_same_step(processes):
    rank0, rank1 = (load(processes / f"resume-rank{rank}.pt") for rank in (0, 1))
    assert rank0["stopped_at"] == rank1["stopped_at"] == 3  # rank 1 alone saw the request
    assert rank0["checkpoint_step"] == 3


def test_a_resumed_distributed_run_ends_where_the_uninterrupted_one_does(processes):
    rank0, rank1 = (load(processes / f"resume-rank{rank}.pt") for rank in (0, 1))
    for result in (rank0, rank1):
        for key, value in result["whole"].items():
            torch.testing.assert_close(result["resumed"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    for key, value in rank0["whole"].items():  # DDP keeps the featurizers equal, rank 0's broadcast Γ, A
        assert torch.equal(rank1["whole"][key], value), key


def test_rank_0_alone_writes_the_run_directory(processes):
    run = RunDir(Path(load(processes / "resume-rank0.pt")["run"]))
    lines = run.read_metrics()
    assert [line["step"] for line in lines if line["type"] == "step"] == list(range(1, 9))  # each step once
    assert [line["type"] for line in lines].count("latch") == 3  # before training, after epochs 1 and 2
    step = next(line for line in lines if line["type"] == "step")
    assert step["gpu_util_per_rank"] == [None, None] and step["gpu_util"] is None  # CPU processes
    assert sorted(path.name for path in run.path.parent.iterdir()) == ["stopped", "whole"]


def test_a_failure_on_rank_1_is_recorded_by_rank_0_alone(processes):
    outcomes = [load(processes / f"failure-rank{rank}.pt") for rank in (0, 1)]
    assert all(outcome and outcome.startswith("non-finite loss at step 2") for outcome in outcomes), outcomes
    (run_dir,) = [path for path in (processes / "failing").iterdir() if not path.is_symlink()]
    run = RunDir(run_dir)
    assert run.read_meta()["status"] == "failed" and run.read_meta()["failed_step"] == 2
    statuses = [line["status"] for line in run.read_metrics() if line["type"] == "status"]
    assert statuses == ["failed"]  # once: rank 1's record went to its follower, which writes nothing


def test_a_bad_input_on_one_process_ends_every_process_with_its_message(processes):
    expected = ["rank 1 has no data", "rank 0 cannot read the run"]
    assert load(processes / "agreement-rank0.pt") == load(processes / "agreement-rank1.pt") == expected


def test_leaving_the_group_ends_gloos_threads_after_ddp_trained_in_it(processes):
    # Threads left alive into interpreter shutdown abort the process there now and then
    # (SIGABRT, "terminate called without an active exception"): see process_group_from_environment.
    for rank in range(2):
        left = load(processes / f"gloo-threads-after-rank{rank}.pt")
        if left is None:
            pytest.skip("no /proc/self/task here to list a process's threads")
        assert left == [], f"rank {rank}"


# ---------------------------------------------------------------------------------- the command line

@pytest.mark.parametrize("args, environment, message", [
    (["--nproc", "0"], {}, "error: --nproc must be at least 1, not 0"),
    (["--nproc", "2"], {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "do not combine it with torchrun"),
])
def test_bad_nproc_is_one_line_and_exit_code_2(tmp_path, capsys, monkeypatch, args, environment, message):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    code, _, err = vmcr2("train", *QUICK, "--runs-dir", str(tmp_path / "runs"), *args, capsys=capsys)
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_the_launcher_exits_with_the_workers_code_and_names_a_crash(capsys):
    assert exit_code_of({1: 130, 0: 2}, first_rank=1) == 2  # rank 0's, which printed why
    assert exit_code_of({1: 130}, first_rank=1) == 130
    assert exit_code_of({1: -9, 0: -15}, first_rank=1) == 1
    assert capsys.readouterr().err == ("error: training process 1 died first (exit code -9); "
                                       "the launcher stopped the others\n")
    # Rank 0 failed on its dead peer before the launcher saw the peer die: the peer is still named.
    assert exit_code_of({0: 1, 1: -9}, first_rank=0) == 1
    assert capsys.readouterr().err == ("error: training process 1 died first (exit code -9); "
                                       "the launcher stopped the others\n")


def _train_nproc(tmp_path: Path, *extra: str, processes: int = 2, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vmcr2_cli", "train", "--nproc", str(processes), *QUICK,
                             "--runs-dir", str(tmp_path / "runs"), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def test_train_nproc_1_runs_the_data_parallel_path_in_a_process_group(tmp_path):
    # What a one-GPU machine checks NCCL with (benchmarks/gpu_check.sh); gloo here.
    process = _train_nproc(tmp_path, "--epochs", "1", processes=1)
    _, err = process.communicate(timeout=240)
    assert process.returncode == 0, err.decode()
    meta = RunDir.open(tmp_path / "runs" / "latest").read_meta()
    assert meta["status"] == "finished" and meta["world_size"] == 1 and meta["backend"] == "gloo"


def test_train_nproc_2_leaves_one_run_directory_with_the_global_metrics(tmp_path):
    process = _train_nproc(tmp_path, "--epochs", "1", "--json")
    out, err = process.communicate(timeout=240)
    assert process.returncode == 0, err.decode()
    result = json.loads(out)  # rank 0's document alone
    run = RunDir.open(tmp_path / "runs" / "latest")
    assert result["run_dir"].endswith(run.name) and result["status"] == "finished"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted([run.name, "latest"])
    meta = run.read_meta()
    assert meta["status"] == "finished" and meta["world_size"] == 2 and len(meta["ranks"]) == 2
    lines = run.read_metrics()
    assert [line["step"] for line in lines if line["type"] == "step"] == [1, 2, 3, 4]
    epoch = next(line for line in lines if line["type"] == "epoch")
    assert epoch["images_per_s"] > 0 and epoch["gpu_util_per_rank"] == [None, None]
    assert err.count(b"epoch 1/1") == 1 and b"Traceback" not in err  # rank 0 alone prints


def _model_state(run_dir: Path) -> dict[str, torch.Tensor]:
    state = RunDir.open(run_dir).load_checkpoint()
    return {**state["model"], **{f"objective.{k}": v for k, v in state["objective"].items()}}


@pytest.mark.slow
def test_ctrl_c_then_resume_of_a_2_process_run_gives_the_uninterrupted_parameters(tmp_path):
    epochs = ["--epochs", "3", "--set", "latch_every=1"]
    whole = _train_nproc(tmp_path / "whole", *epochs)
    assert whole.wait(timeout=300) == 0, whole.communicate()[1].decode()

    process = _train_nproc(tmp_path, *epochs)
    wait_for_step(tmp_path / "runs" / "latest" / "metrics.jsonl", 5, process)
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends the launcher
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err.decode()
    run = RunDir.open(tmp_path / "runs" / "latest")
    assert run.read_meta()["status"] == "interrupted" and b"--resume" in err
    assert 5 <= run.load_checkpoint()["global_step"] < 12

    resumed = subprocess.run([sys.executable, "-m", "vmcr2_cli", "train", "--nproc", "2", "--resume", str(run.path)],
                             capture_output=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert run.read_meta()["status"] == "finished"
    expected, got = _model_state(tmp_path / "whole" / "runs" / "latest"), _model_state(run.path)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6, msg=key)


def test_rank_0_keeps_the_one_process_dropout_stream_and_other_ranks_draw_their_own():
    from vmcr2_cli.data.seeding import step_seed

    assert step_seed(3, 10, rank=0) == step_seed(3, 10) == (3 * 1_000_003 + 10) % (2**63 - 1)
    assert len({step_seed(3, 10, rank) for rank in range(4)} | {step_seed(3, 11, 1)}) == 5


def _workers_of(launcher: subprocess.Popen) -> dict[int, int]:
    """Global rank → pid of the training processes the launcher started (children with RANK set)."""
    workers = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        rank = [entry[5:] for entry in environ if entry.startswith(b"RANK=")]
        if parent == launcher.pid and rank:
            workers[int(rank[0])] = int(stat.parent.name)
    return workers


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the workers through /proc")
def test_a_worker_killed_mid_epoch_is_named_the_others_stop_and_the_run_resumes(tmp_path):
    # A checkpoint at every epoch's end: the automatic cadence (2% of the time) skips one when a loaded
    # machine makes the write slow against the tiny epoch, and the check below needs epoch 0's.
    process = _train_nproc(tmp_path, "--epochs", "3", "--set", "synthetic_train_per_class=100",
                           "--set", "checkpoint_minutes=0.00001")
    wait_for_step(tmp_path / "runs" / "latest" / "metrics.jsonl", 13, process)  # inside epoch 1
    workers = _workers_of(process)
    assert sorted(workers) == [0, 1], workers
    killed_at = time.monotonic()
    os.kill(workers[1], signal.SIGKILL)
    _, err = process.communicate(timeout=60)  # rank 0 must not wait forever for its dead peer
    stopped_within = time.monotonic() - killed_at
    assert process.returncode == 1 and stopped_within < 45, (process.returncode, stopped_within)
    assert "error: training process 1 died first (exit code -9); the launcher stopped the others" in err.decode()
    with pytest.raises(ProcessLookupError):
        os.kill(workers[0], 0)
    run = RunDir.open(tmp_path / "runs" / "latest")
    assert run.load_checkpoint()["epoch"] == 1  # epoch 0's checkpoint: only the epoch in progress is lost
    resumed = subprocess.run([sys.executable, "-m", "vmcr2_cli", "train", "--nproc", "2", "--resume", str(run.path)],
                             capture_output=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert run.read_meta()["status"] == "finished"


def test_a_follower_run_has_the_training_interface_alone_and_writes_nothing(tmp_path):
    from vmcr2_cli.distributed.run_access import TrainingRun
    from vmcr2_cli.runner.mirrors import MirroredRun

    interface = {name for name in vars(TrainingRun) if not name.startswith("_")}
    follower = FollowerRun(RunDir(tmp_path / "run"))
    public = {name for name in dir(follower) if not name.startswith("_")}
    assert public == interface  # nothing forwarded: a new RunDir method is not a follower's
    for run in (RunDir(tmp_path), MirroredRun(tmp_path), follower):
        assert all(callable(getattr(run, name)) or name in ("path", "name") for name in interface)
    follower.set_status("failed", meta={"error": "x"}, step=3)  # what lifecycle's _record does on every rank
    follower.append_metrics("epoch", step=1)
    follower.save_checkpoint({"epoch": 1})
    assert not (tmp_path / "run").exists()
    assert follower.name == "run" and follower.checkpoint_file("best") == tmp_path / "run" / "checkpoints/best.pt"
    with pytest.raises(AttributeError):
        follower.write_meta({})  # RunDir's other writes are rank 0's
