"""A real TensorBoard reads a vmcr2 run: every epoch scalar, with metrics.jsonl's value."""

from __future__ import annotations

import pytest

from cli_runner import TINY_SYNTHETIC, vmcr2
from vmcr2_cli.runs import RunDir

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")

QUICK = [*TINY_SYNTHETIC, "--set", "log_every=2"]


def events(run: RunDir):
    accumulator = event_accumulator.EventAccumulator(str(run.path / "tensorboard"), size_guidance={"scalars": 0})
    accumulator.Reload()
    return accumulator


def epoch_lines(run: RunDir) -> list[dict]:
    return [line for line in run.read_metrics() if line["type"] == "epoch"]


@pytest.mark.parametrize("objective", ["mcr2", "vmcr2", "ce"])
def test_every_epoch_scalar_is_in_the_event_files_with_its_value(tmp_path, capsys, objective):
    code, _, err = vmcr2("train", *QUICK, "--objective", objective, "--epochs", "2", "--set", "eval_every=1",
                         "--runs-dir", tmp_path / "runs", capsys=capsys)
    assert code == 0, err
    run = RunDir.open(tmp_path / "runs" / "latest")
    read = events(run)
    lines = epoch_lines(run)
    assert len(lines) == 2
    for key in ("delta_r", "r", "r_c", "loss", "lr", "epoch_time_s", "images_per_s"):
        logged = read.Scalars(f"epoch/{key}")
        assert [event.step for event in logged] == [line["step"] for line in lines], key
        assert [event.value for event in logged] == pytest.approx([line[key] for line in lines], rel=1e-6), key
    if objective == "vmcr2":
        assert [event.value for event in read.Scalars("epoch/r_v_over_r")] == pytest.approx(
            [line["r_v_over_r"] for line in lines], rel=1e-6)
        assert [event.step for event in read.Scalars("latch/delta_r_v_after")] == [
            line["step"] for line in run.read_metrics() if line["type"] == "latch"]
    evals = [line for line in run.read_metrics() if line["type"] == "eval"]
    assert len(evals) == 2  # after each epoch (eval_every = 1); the last one is the end's
    for key in ("nearest_subspace_accuracy", "knn_accuracy", "exact_delta_r", "nc1"):
        logged = read.Scalars(f"eval/{key}")
        assert [event.step for event in logged] == [line["step"] for line in evals], key
        assert [event.value for event in logged] == pytest.approx([line[key] for line in evals], rel=1e-6), key
    assert "config" in read.Tags()["tensors"] or "config/text_summary" in read.Tags()["tensors"]


def test_a_resumed_run_keeps_one_value_per_step(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert vmcr2("train", *QUICK, "--objective", "mcr2", "--epochs", "1", "--runs-dir", runs, capsys=capsys)[0] == 0
    assert vmcr2("train", "--resume", runs / "latest", "--epochs", "2", capsys=capsys)[0] == 0
    run = RunDir.open(runs / "latest")
    steps = [event.step for event in events(run).Scalars("epoch/delta_r")]
    assert steps == [line["step"] for line in epoch_lines(run)] == sorted(set(steps))
